// The agent's live figures: counters and histograms the pipeline threads update, rendered as
// Prometheus text for GET /metrics, and the inputs of GET /healthz. Thread-safe (atomics, and a
// mutex for the strings and histograms).
#pragma once

#include <atomic>
#include <boost/json.hpp>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace civishare {

class Histogram {
 public:
  explicit Histogram(std::vector<double> bounds)
      : bounds_(std::move(bounds)), counts_(bounds_.size() + 1) {}
  void observe(double value);
  // Prometheus text lines for `name` (buckets, sum, count).
  std::string render(const std::string& name, const std::string& help) const;

 private:
  std::vector<double> bounds_;
  mutable std::mutex mu_;
  std::vector<std::uint64_t> counts_;
  double sum_ = 0;
  std::uint64_t count_ = 0;
};

struct ComponentHealth {
  std::atomic<std::int64_t> last_ok_at{0};
  std::atomic<std::int64_t> last_error_at{0};
  void ok(std::int64_t now) { last_ok_at = now; }
  void error(std::int64_t now, const std::string& message);
  std::string last_error() const;
  bool failing() const { return last_error_at.load() > last_ok_at.load(); }

 private:
  mutable std::mutex mu_;
  std::string last_error_;
};

struct Metrics {
  struct Peer {
    std::atomic<std::uint64_t> sent{0};
    std::atomic<std::uint64_t> send_errors{0};
  };
  explicit Metrics(const std::vector<std::string>& peer_names);

  std::atomic<std::uint64_t> captured{0};
  std::atomic<std::uint64_t> capture_errors{0};
  std::atomic<std::uint64_t> applied{0};
  std::atomic<std::uint64_t> unchanged{0};
  std::atomic<std::uint64_t> refused{0};
  std::atomic<std::uint64_t> apply_errors{0};
  std::map<std::string, std::unique_ptr<Peer>> peers;
  Histogram capture_to_send{{0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 3600}};
  Histogram receive_to_apply{{0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 60, 300}};
  ComponentHealth capture;
  ComponentHealth applier;

  // Prometheus text: the counters above plus the gauges of a status object (see Agent).
  std::string render(const boost::json::object& status) const;
};

}  // namespace civishare
