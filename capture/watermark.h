// The log-table watermark: a time W such that no log row stamped before W can still appear.
// Follows LOG_TABLE_CURSOR.md: statement starts from PROCESSLIST (now - TIME_MS), transaction
// starts from INNODB_TRX, per-connection memory of the earliest statement start while the
// connection executes or holds a transaction (covers statements that waited on a metadata lock),
// and no advance while transactions that were open when tracking began are still open.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>

#include "schemas/db/mariadb.h"
#include "schemas/result.h"

namespace civishare {

// One look at the server.
struct WatermarkSample {
  double now = 0;                                // server time, unix seconds
  std::map<std::uint64_t, double> executing;     // thread id -> statement start
  std::map<std::uint64_t, double> transactions;  // thread id -> transaction start
  bool has_process = true;  // false: INNODB_TRX was refused and PROCESSLIST shows only our own
};

// Pure bookkeeping over samples; not thread-safe.
class WatermarkTracker {
 public:
  explicit WatermarkTracker(int fallback_lag_s = 10) : fallback_lag_s_(fallback_lag_s) {}
  void observe(const WatermarkSample& sample);
  // floor(min(now, remembered statement starts, transaction starts)) - 1; nullopt before the
  // first sample or while a transaction open at the first sample is still open. Never decreases.
  std::optional<std::int64_t> watermark() const;

 private:
  int fallback_lag_s_;
  bool first_ = true;
  std::set<std::uint64_t> preexisting_;
  std::map<std::uint64_t, double> memory_;
  std::optional<std::int64_t> last_;
};

// Samples the server every `interval_ms` on its own connection and thread, feeding a tracker.
// Thread-safe. The destructor stops the thread.
class WatermarkSampler {
 public:
  // `ignore` lists connection ids that must not hold the watermark back (our own reader).
  static Result<std::unique_ptr<WatermarkSampler>> start(const db::ConnectionOptions& options,
                                                         std::set<std::uint64_t> ignore,
                                                         int interval_ms, int fallback_lag_s);
  ~WatermarkSampler();

  // The current watermark, nullopt = "do not advance yet", or the sampler's last error.
  Result<std::optional<std::int64_t>> watermark();
  // Waits until the sampler has taken a sample newer than this call.
  Status wait_fresh();
  bool has_process_privilege() const { return has_process_; }

 private:
  WatermarkSampler() = default;
  void loop();
  Result<WatermarkSample> sample();

  db::Connection* db_ = nullptr;
  std::unique_ptr<db::Connection> owned_;
  std::set<std::uint64_t> ignore_;
  int interval_ms_ = 100;
  WatermarkTracker tracker_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::uint64_t samples_ = 0;
  std::optional<Error> error_;
  std::atomic<bool> has_process_{true};
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

}  // namespace civishare
