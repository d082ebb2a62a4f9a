// A TCP proxy on loopback for fault tests: forwards a local port to a target port and can cut
// the network between the two sides. Modes: pass (forward, optionally with a delay per chunk)
// and refuse (accept and reset at once: connections are dropped). cut() drops every open
// connection. Thread-safe.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <set>
#include <thread>
#include <vector>

namespace civishare::testing {

class TcpProxy {
 public:
  enum class Mode { pass, refuse };

  explicit TcpProxy(std::uint16_t target_port);
  ~TcpProxy();
  TcpProxy(const TcpProxy&) = delete;
  TcpProxy& operator=(const TcpProxy&) = delete;

  std::uint16_t port() const { return port_; }
  void set_mode(Mode mode) { mode_ = mode; }
  void set_delay_ms(int ms) { delay_ms_ = ms; }
  void cut();  // closes every open connection (both sides see it end)
  std::uint64_t connections() const { return accepted_; }

 private:
  void accept_loop();
  void pump(int client);

  std::uint16_t target_port_;
  std::uint16_t port_ = 0;
  int listen_fd_ = -1;
  std::atomic<Mode> mode_{Mode::pass};
  std::atomic<int> delay_ms_{0};
  std::atomic<bool> stop_{false};
  std::atomic<std::uint64_t> accepted_{0};
  std::mutex mu_;
  std::set<int> open_;  // sockets of live connections (both ends)
  std::vector<std::thread> threads_;
  std::thread acceptor_;
};

}  // namespace civishare::testing
