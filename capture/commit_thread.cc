#include "capture/commit_thread.h"

#include <pthread.h>

namespace civishare {

CommitThread::CommitThread(std::string name)
    : name_(std::move(name)), thread_([this] { loop(); }) {}

CommitThread::~CommitThread() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_one();
  thread_.join();
}

void CommitThread::loop() {
  pthread_setname_np(pthread_self(), name_.substr(0, 15).c_str());
  for (;;) {
    std::packaged_task<Status()> job;
    {
      std::unique_lock lock(mutex_);
      wake_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
      if (queue_.empty()) return;  // stopping, nothing left
      job = std::move(queue_.front());
      queue_.pop_front();
    }
    job();  // an exception thrown by the task reaches its future
  }
}

}  // namespace civishare
