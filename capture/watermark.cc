#include "capture/watermark.h"

#include <algorithm>
#include <chrono>
#include <cmath>

#include "schemas/log.h"

namespace civishare {

void WatermarkTracker::observe(const WatermarkSample& s) {
  if (first_) {
    for (const auto& [id, start] : s.transactions) preexisting_.insert(id);
    first_ = false;
  }
  // A pre-existing transaction is over once its thread neither executes nor holds a transaction.
  for (auto it = preexisting_.begin(); it != preexisting_.end();) {
    if (!s.transactions.count(*it) && !s.executing.count(*it))
      it = preexisting_.erase(it);
    else
      ++it;
  }
  for (const auto& [id, start] : s.executing) {
    auto it = memory_.find(id);
    if (it == memory_.end())
      memory_[id] = start;
    else
      it->second = std::min(it->second, start);
  }
  for (auto it = memory_.begin(); it != memory_.end();) {
    if (!s.executing.count(it->first) && !s.transactions.count(it->first))
      it = memory_.erase(it);
    else
      ++it;
  }
  double low = s.now;
  if (!s.has_process) low = s.now - fallback_lag_s_;
  for (const auto& [id, start] : memory_) low = std::min(low, start);
  for (const auto& [id, start] : s.transactions) low = std::min(low, start);
  std::int64_t w = static_cast<std::int64_t>(std::floor(low)) - 1;
  if (!last_ || w > *last_) last_ = w;
}

std::optional<std::int64_t> WatermarkTracker::watermark() const {
  if (first_ || !preexisting_.empty()) return std::nullopt;
  return last_;
}

Result<std::unique_ptr<WatermarkSampler>> WatermarkSampler::start(
    const db::ConnectionOptions& options, std::set<std::uint64_t> ignore, int interval_ms,
    int fallback_lag_s) {
  auto conn = db::Connection::open(options);
  if (!conn) return conn.error();
  // trx_started is shown in the server's OS time zone: read it in that zone.
  if (auto s = conn->exec("SET time_zone = 'SYSTEM'"); !s) return s.error();
  std::unique_ptr<WatermarkSampler> w(new WatermarkSampler());
  w->owned_ = std::make_unique<db::Connection>(std::move(*conn));
  w->db_ = w->owned_.get();
  w->ignore_ = std::move(ignore);
  w->interval_ms_ = interval_ms;
  w->tracker_ = WatermarkTracker(fallback_lag_s);
  auto first = w->sample();
  if (!first) return first.error();
  w->tracker_.observe(*first);
  w->samples_ = 1;
  WatermarkSampler* raw = w.get();
  w->thread_ = std::thread([raw] { raw->loop(); });
  return w;
}

WatermarkSampler::~WatermarkSampler() {
  stop_ = true;
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

Result<WatermarkSample> WatermarkSampler::sample() {
  WatermarkSample s;
  auto procs = db_->query(
      "SELECT UNIX_TIMESTAMP(NOW(6)), p.ID, p.COMMAND, p.TIME_MS FROM (SELECT 1) AS one "
      "LEFT JOIN information_schema.PROCESSLIST AS p ON p.ID <> CONNECTION_ID()");
  if (!procs) return procs.error();
  for (const auto& r : procs->rows) {
    s.now = std::stod(r[0].value_or("0"));
    if (!r[1] || !r[2] || !r[3]) continue;
    const std::string& cmd = *r[2];
    if (cmd == "Sleep" || cmd == "Daemon" || cmd == "Binlog Dump" || cmd == "Binlog Dump GTID") {
      continue;
    }
    std::uint64_t id = std::stoull(*r[1]);
    if (ignore_.count(id)) continue;
    s.executing[id] = s.now - std::stod(*r[3]) / 1000.0;
  }
  auto trx = db_->query(
      "SELECT trx_mysql_thread_id, UNIX_TIMESTAMP(trx_started) FROM information_schema.INNODB_TRX");
  if (trx) {
    for (const auto& r : trx->rows) {
      if (!r[0] || !r[1]) continue;
      std::uint64_t id = std::stoull(*r[0]);
      if (ignore_.count(id)) continue;
      double start = std::stod(*r[1]);
      auto it = s.transactions.find(id);
      s.transactions[id] = it == s.transactions.end() ? start : std::min(it->second, start);
    }
  } else {
    s.has_process = false;
    if (has_process_.exchange(false)) {
      log_warn("capture", "no PROCESS privilege (" + trx.error().message +
                              "): the watermark falls back to a fixed lag; grant PROCESS to the "
                              "civishare user for gap-free capture");
    }
  }
  return s;
}

void WatermarkSampler::loop() {
  while (!stop_) {
    {
      std::unique_lock lock(mu_);
      cv_.wait_for(lock, std::chrono::milliseconds(interval_ms_), [&] { return stop_.load(); });
    }
    if (stop_) break;
    auto s = sample();
    std::lock_guard lock(mu_);
    if (s) {
      tracker_.observe(*s);
      error_.reset();
    } else {
      error_ = s.error();
    }
    ++samples_;
    cv_.notify_all();
  }
}

Result<std::optional<std::int64_t>> WatermarkSampler::watermark() {
  std::lock_guard lock(mu_);
  if (error_) return *error_;
  return tracker_.watermark();
}

Status WatermarkSampler::wait_fresh() {
  std::unique_lock lock(mu_);
  const std::uint64_t target = samples_ + 1;
  cv_.wait_for(lock, std::chrono::seconds(10), [&] { return samples_ > target || stop_.load(); });
  if (error_) return *error_;
  return ok_status();
}

}  // namespace civishare
