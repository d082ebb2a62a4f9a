// One long-lived thread that runs capture commits in the order they are handed over, each
// answering through a future. Capture used to start a thread per chunk (std::async): 200 threads
// per million rows, each new one on a fresh jemalloc arena and cache, so the memory RocksDB's
// memtables were written into was never the memory just freed (page faults on every page;
// bench/README.md, session 12).
#pragma once

#include <condition_variable>
#include <deque>
#include <future>
#include <mutex>
#include <string>
#include <thread>

#include "schemas/result.h"

namespace civishare {

class CommitThread {
 public:
  explicit CommitThread(std::string name);
  // Runs what was handed over before, then ends the thread.
  ~CommitThread();
  CommitThread(const CommitThread&) = delete;
  CommitThread& operator=(const CommitThread&) = delete;

  // Queues `task` behind those handed over before; the future carries its Status.
  template <class F>
  std::future<Status> run(F&& task) {
    std::packaged_task<Status()> job(std::forward<F>(task));
    auto done = job.get_future();
    {
      std::lock_guard lock(mutex_);
      queue_.push_back(std::move(job));
    }
    wake_.notify_one();
    return done;
  }

 private:
  void loop();
  std::string name_;
  std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<std::packaged_task<Status()>> queue_;
  bool stopping_ = false;
  std::thread thread_;  // last: started once the members above exist
};

}  // namespace civishare
