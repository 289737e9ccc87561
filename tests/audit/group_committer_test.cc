// GroupCommitter against MemoryWritableFile (no disk): lines queued before the
// writer runs go out in one write and one sync, a waiter returns only once
// its line is synced, completions run exactly once after the sync, a sync or
// write failure fails every waiting and later line, rotation moves the
// following lines to the fresh file, and without durability nothing is synced.
#include "signer/audit/group_commit.h"

#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "signer/audit/std_mutex.h"
#include "signer/audit/writable_file.h"
#include "tests/audit/audit_test_util.h"

namespace tokensign::audit {
namespace {

using Contents = MemoryWritableFile::Contents;

class GroupCommitterTest : public ::testing::Test {
 protected:
  // Opens a committer on a memory file; rotations open files_[1], [2], ...
  void Start(bool sync = true) {
    GroupCommitter::Options o;
    o.sync = sync;
    committer_ = std::make_unique<GroupCommitter>(&mu_, o, [this] {
      files_.push_back(std::make_shared<Contents>());
      return absl::StatusOr<std::unique_ptr<WritableFile>>(
          std::make_unique<MemoryWritableFile>(files_.back()));
    });
    files_.push_back(std::make_shared<Contents>());
  }
  void Run(int64_t durable_seq = -1) {
    StdMutexLock lock(&mu_);
    committer_->StartLocked(std::make_unique<MemoryWritableFile>(files_[0]),
                            durable_seq);
  }
  // Queues "line-<seq>\n" (a decision) and returns its seq.
  int64_t Add(int64_t seq, GroupCommitter::Callback done = nullptr) {
    StdMutexLock lock(&mu_);
    committer_->BufferLocked()->append("line-" + std::to_string(seq) + "\n");
    committer_->LineAddedLocked(seq, /*decision=*/true);
    if (done != nullptr) committer_->AddCallbackLocked(std::move(done));
    return seq;
  }
  absl::Status Wait(int64_t seq) {
    StdMutexLock lock(&mu_);
    return committer_->WaitDurableLocked(seq);
  }
  GroupCommitter::Stats Stats() {
    StdMutexLock lock(&mu_);
    return committer_->stats_locked();
  }

  StdMutex mu_;
  std::vector<std::shared_ptr<Contents>> files_;
  std::unique_ptr<GroupCommitter> committer_;
};

TEST_F(GroupCommitterTest, LinesQueuedTogetherShareOneWriteAndOneSync) {
  Start();
  for (int64_t seq = 0; seq < 5; ++seq) Add(seq);
  Run();
  ASSERT_TRUE(Wait(4).ok());
  EXPECT_EQ(files_[0]->Synced(), "line-0\nline-1\nline-2\nline-3\nline-4\n");
  EXPECT_EQ(files_[0]->Syncs(), 1);
  EXPECT_EQ(Stats().commits, 1);
  EXPECT_EQ(Stats().records, 5);
  EXPECT_EQ(Stats().bytes, 35);
}

TEST_F(GroupCommitterTest, CompletionRunsOnceAfterItsLineIsSynced) {
  Start();
  Run();
  std::atomic<int> calls{0};
  testing::Notification done;
  std::string synced_at_completion;
  Add(0, [&](absl::Status s) {
    EXPECT_TRUE(s.ok()) << s;
    synced_at_completion = files_[0]->Synced();
    ++calls;
    done.Notify();
  });
  done.WaitForNotification();
  ASSERT_TRUE(Wait(0).ok());
  committer_->Stop();
  EXPECT_EQ(calls.load(), 1);
  EXPECT_EQ(synced_at_completion, "line-0\n");
}

TEST_F(GroupCommitterTest, SyncFailureFailsWaitersCompletionsAndLaterLines) {
  Start();
  {
    StdMutexLock lock(&files_[0]->mu);
    files_[0]->fail_sync = absl::ResourceExhaustedError("fdatasync x: ENOSPC");
  }
  absl::Status completed;
  testing::Notification done;
  Add(0, [&](absl::Status s) {
    completed = s;
    done.Notify();
  });
  Run();
  absl::Status waited = Wait(0);
  done.WaitForNotification();
  for (const absl::Status& s : {waited, completed}) {
    EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable);
    EXPECT_NE(s.message().find("no token may be released"), std::string::npos);
    EXPECT_NE(s.message().find("ENOSPC"), std::string::npos) << s;
  }
  // The log stays stopped: nothing reports a later line durable.
  StdMutexLock lock(&mu_);
  EXPECT_EQ(committer_->failure_locked().code(),
            absl::StatusCode::kUnavailable);
  EXPECT_EQ(committer_->durable_seq_locked(), -1);
}

TEST_F(GroupCommitterTest, WriteFailureIsFinal) {
  Start();
  {
    StdMutexLock lock(&files_[0]->mu);
    files_[0]->fail_append = absl::InternalError("write x: EIO");
  }
  Run();
  Add(0);
  EXPECT_EQ(Wait(0).code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(files_[0]->Syncs(), 0);
}

TEST_F(GroupCommitterTest, RotationSendsTheFollowingLinesToTheFreshFile) {
  Start();
  Add(0);
  {
    StdMutexLock lock(&mu_);
    committer_->NewFileLocked();
  }
  Add(1);
  Add(2);
  Run();
  ASSERT_TRUE(Wait(2).ok());
  ASSERT_EQ(files_.size(), 2u);
  EXPECT_EQ(files_[0]->Synced(), "line-0\n");
  EXPECT_EQ(files_[1]->Synced(), "line-1\nline-2\n");
  {
    StdMutexLock lock(&files_[0]->mu);
    EXPECT_TRUE(files_[0]->closed);
  }
  EXPECT_EQ(Stats().rotations, 1);
  EXPECT_EQ(Stats().commits, 2);
}

TEST_F(GroupCommitterTest, WithoutDurabilityNothingIsSynced) {
  Start(/*sync=*/false);
  Run();
  for (int64_t seq = 0; seq < 3; ++seq) ASSERT_TRUE(Wait(Add(seq)).ok());
  committer_->Stop();
  EXPECT_EQ(files_[0]->Syncs(), 0);
  StdMutexLock lock(&files_[0]->mu);
  EXPECT_EQ(files_[0]->data, "line-0\nline-1\nline-2\n");
}

TEST_F(GroupCommitterTest, StopDrainsWhatWasQueued) {
  Start();
  std::atomic<int> ok{0};
  for (int64_t seq = 0; seq < 50; ++seq) {
    Add(seq, [&](absl::Status s) { ok += s.ok() ? 1 : 0; });
  }
  Run();
  committer_->Stop();
  EXPECT_EQ(ok.load(), 50);
  EXPECT_EQ(Stats().records, 50);
}

// StdCondVar keeps absl::CondVar's contract, which the writer's linger and the
// checkpointer rely on: WaitWithDeadline says whether the deadline passed, and
// an infinite deadline waits for a Signal instead of overflowing the clock.
TEST(StdCondVarTest, WaitWithDeadlineReportsTimeoutAndWakesOnSignal) {
  StdMutex mu;
  StdCondVar cv;
  {
    StdMutexLock lock(&mu);
    EXPECT_TRUE(cv.WaitWithDeadline(&mu, absl::Now() - absl::Seconds(1)));
  }
  bool ready = false;
  std::thread waker([&] {
    StdMutexLock lock(&mu);
    ready = true;
    cv.Signal();
  });
  {
    StdMutexLock lock(&mu);
    while (!ready) {
      EXPECT_FALSE(cv.WaitWithDeadline(&mu, absl::InfiniteFuture()));
    }
  }
  waker.join();
  StdMutexLock lock(&mu);  // the waits handed the mutex back held
  EXPECT_TRUE(ready);
}

}  // namespace
}  // namespace tokensign::audit
