// Runs the real `civishare` binary for integration tests: output goes to a log file that tests
// read; the destructor stops the process (SIGTERM, then SIGKILL).
#pragma once

#include <sys/types.h>

#include <chrono>
#include <functional>
#include <string>
#include <vector>

namespace civishare::testing {

class AgentProcess {
 public:
  // `env`: extra NAME=value entries on top of this process's environment.
  AgentProcess(std::vector<std::string> args, std::string log_path,
               std::vector<std::string> env = {});
  ~AgentProcess();
  AgentProcess(const AgentProcess&) = delete;
  AgentProcess& operator=(const AgentProcess&) = delete;

  // SIGKILL, no grace: for crash tests.
  void kill();
  // Sends SIGTERM and waits; returns the exit code (or -1 if it had to be killed). After the
  // process ended by itself (running() said false), returns its exit code.
  int stop(std::chrono::seconds grace = std::chrono::seconds(20));
  bool running();
  pid_t pid() const { return pid_; }
  std::string log() const;

 private:
  pid_t pid_ = -1;
  int exit_code_ = -1;
  std::string log_path_;
};

// Runs civishare to completion; returns the exit code, output in *output. `env`: extra NAME=value
// entries; *max_rss_kb receives the process's peak resident set (kB).
int run_civishare(const std::vector<std::string>& args, std::string* output,
                  const std::vector<std::string>& env = {}, long* max_rss_kb = nullptr);

// Polls `condition` every 100 ms until it holds or `timeout` passes.
bool wait_until(const std::function<bool()>& condition,
                std::chrono::milliseconds timeout = std::chrono::seconds(30));

std::string temp_dir(const std::string& prefix);
void write_file(const std::string& path, const std::string& text);

}  // namespace civishare::testing
