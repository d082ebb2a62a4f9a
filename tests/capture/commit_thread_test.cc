// CommitThread: capture's chunks are committed in the order they were handed over, on one thread
// (a later chunk's images overwrite an earlier one's), a failed commit reaches the capture as its
// Status, and nothing handed over is dropped when the thread ends.
#include "capture/commit_thread.h"

#include <gtest/gtest.h>

#include <chrono>
#include <set>
#include <thread>
#include <vector>

namespace civishare {
namespace {

TEST(CommitThreadTest, RunsEveryTaskInOrderOnOneThreadAndAnswersEachThroughItsFuture) {
  std::vector<int> order;
  std::set<std::thread::id> threads;
  std::vector<std::future<Status>> done;
  {
    CommitThread committer("test-commit");
    for (int i = 0; i < 50; ++i) {
      done.push_back(committer.run([&, i]() -> Status {
        if (i == 0) std::this_thread::sleep_for(std::chrono::milliseconds(20));  // others queue
        order.push_back(i);
        threads.insert(std::this_thread::get_id());
        if (i == 7) return make_error(Errc::internal, "chunk 7 failed");
        return ok_status();
      }));
    }
    // Leaving the scope ends the thread: what was handed over still runs first.
  }
  ASSERT_EQ(order.size(), 50u);
  for (int i = 0; i < 50; ++i) EXPECT_EQ(order[static_cast<std::size_t>(i)], i);
  EXPECT_EQ(threads.size(), 1u);
  EXPECT_NE(*threads.begin(), std::this_thread::get_id());
  for (int i = 0; i < 50; ++i) {
    auto s = done[static_cast<std::size_t>(i)].get();
    if (i == 7) {
      ASSERT_FALSE(s);
      EXPECT_NE(s.error().message.find("chunk 7 failed"), std::string::npos);
    } else {
      EXPECT_TRUE(s) << i;
    }
  }
}

TEST(CommitThreadTest, AnExceptionInATaskReachesItsFutureAndLaterTasksStillRun) {
  CommitThread committer("test-commit");
  auto bad = committer.run([]() -> Status { throw std::runtime_error("boom"); });
  auto good = committer.run([]() -> Status { return ok_status(); });
  EXPECT_THROW(bad.get(), std::runtime_error);
  EXPECT_TRUE(good.get());
}

}  // namespace
}  // namespace civishare
