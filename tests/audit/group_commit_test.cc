// Group commit (AuditLogOptions.commit_linger / commit_batch_records): many
// records share one fdatasync under concurrent load, every record still
// completes only once durable and exactly once, and bad options are refused.
#include <atomic>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "signer/audit/audit_log.h"
#include "signer/audit/audit_verify.h"
#include "tests/audit/audit_test_util.h"

namespace tokensign::audit {
namespace {

using testing::MakeRecord;
using testing::ReadLines;
using testing::TempDir;

TEST(GroupCommitTest, LingerGroupsManyRecordsPerCommitAndLosesNone) {
  TempDir dir;
  AuditLogOptions o{.path = dir.File("audit.log")};
  o.commit_linger = absl::Milliseconds(200);  // generous: no timing flakes
  o.commit_batch_records = 64;
  constexpr int kThreads = 2, kPerThread = 512;
  std::atomic<int> ok{0}, failed{0};
  std::atomic<int64_t> max_seen_durable{0};
  AuditLogStats stats;
  {
    auto opened = AuditLog::Open(o);
    ASSERT_TRUE(opened.ok()) << opened.status();
    AuditLog& log = **opened;
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&, t] {
        for (int i = 0; i < kPerThread; ++i) {
          log.AppendAsync(
              MakeRecord("g" + std::to_string(t) + "-" + std::to_string(i)),
              [&](absl::Status s) {
                (s.ok() ? ok : failed)++;
                // Completion means durable: the log says so too.
                int64_t d = log.last_durable_seq();
                int64_t prev = max_seen_durable.load();
                while (d > prev &&
                       !max_seen_durable.compare_exchange_weak(prev, d)) {
                }
              });
        }
      });
    }
    for (auto& th : threads) th.join();
    // A synchronous Append after the burst still completes (no stuck linger).
    EXPECT_TRUE(log.Append(MakeRecord("sync-after")).ok());
    stats = log.stats();
  }
  EXPECT_EQ(ok.load(), kThreads * kPerThread);
  EXPECT_EQ(failed.load(), 0);
  EXPECT_GE(max_seen_durable.load(), kThreads * kPerThread);
  EXPECT_EQ(stats.records, kThreads * kPerThread + 1);
  // Full batches of 64 (or the linger) bound the commits far below one per
  // record; without grouping this burst takes hundreds of fdatasyncs.
  EXPECT_LE(stats.commits, (kThreads * kPerThread) / 8);
  EXPECT_EQ(ReadLines(o.path).size(),
            static_cast<size_t>(kThreads * kPerThread + 2));
  auto report = VerifyAuditChain(o.path);
  ASSERT_TRUE(report.ok()) << report.status();
  EXPECT_TRUE(report->ok) << FormatVerifyReport(*report);
}

TEST(GroupCommitTest, LoneSynchronousAppendsCommitOneByOne) {
  TempDir dir;
  AuditLogOptions o{.path = dir.File("audit.log")};
  o.commit_linger = absl::Seconds(30);  // would hang the test if applied
  auto log = AuditLog::Open(o);
  ASSERT_TRUE(log.ok()) << log.status();
  for (int i = 0; i < 5; ++i) {
    ASSERT_TRUE((*log)->Append(MakeRecord("s" + std::to_string(i))).ok());
  }
  EXPECT_EQ((*log)->stats().commits, 5 + 1);  // + the genesis commit
  EXPECT_EQ((*log)->last_durable_seq(), 5);
}

TEST(GroupCommitTest, ConcurrentSynchronousAppendersAllComplete) {
  TempDir dir;
  AuditLogOptions o{.path = dir.File("audit.log")};
  o.commit_linger = absl::Milliseconds(300);
  constexpr int kThreads = 4, kPerThread = 25;
  std::atomic<int> ok{0};
  {
    auto log = AuditLog::Open(o);
    ASSERT_TRUE(log.ok()) << log.status();
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&, t] {
        for (int i = 0; i < kPerThread; ++i) {
          auto rec =
              MakeRecord("y" + std::to_string(t) + "-" + std::to_string(i));
          if ((*log)->Append(rec).ok()) ++ok;
        }
      });
    }
    for (auto& th : threads) th.join();
    EXPECT_EQ((*log)->stats().records, kThreads * kPerThread);
  }
  EXPECT_EQ(ok.load(), kThreads * kPerThread);
  auto report = VerifyAuditChain(o.path);
  ASSERT_TRUE(report.ok()) << report.status();
  EXPECT_TRUE(report->ok) << FormatVerifyReport(*report);
}

// With announcements (ExpectRecords) the writer lingers exactly while an
// announced record is outstanding: never when nothing is announced (a 30 s
// linger would hang the test), and until the last announced one is released.
TEST(GroupCommitTest, AnnouncedRecordsDecideTheLinger) {
  TempDir dir;
  AuditLogOptions o{.path = dir.File("audit.log")};
  o.commit_linger = absl::Seconds(30);
  auto opened = AuditLog::Open(o);
  ASSERT_TRUE(opened.ok()) << opened.status();
  AuditLog& log = **opened;
  auto append_and_wait = [&](const std::string& jti) {
    testing::Notification done;
    absl::Status result;
    log.AppendAsync(MakeRecord(jti), [&](absl::Status s) {
      result = s;
      done.Notify();
    });
    done.WaitForNotification();
    return result;
  };
  // Announced, released just before the append (as the service does): each
  // record is synced at once.
  for (int i = 0; i < 4; ++i) {
    log.ExpectRecords(+1);
    log.ExpectRecords(-1);
    ASSERT_TRUE(append_and_wait("a" + std::to_string(i)).ok());
  }
  EXPECT_EQ(log.stats().lingered, 0);

  // One record appended while another is still announced: it waits for that
  // one (not durable after 100 ms of a 30 s linger) and is synced as soon as
  // the announcement is withdrawn.
  log.ExpectRecords(+2);
  log.ExpectRecords(-1);
  testing::Notification durable;
  log.AppendAsync(MakeRecord("b"), [&](absl::Status s) {
    EXPECT_TRUE(s.ok()) << s;
    durable.Notify();
  });
  EXPECT_FALSE(durable.WaitForNotificationWithTimeout(absl::Milliseconds(100)));
  log.ExpectRecords(-1);
  durable.WaitForNotification();
  EXPECT_EQ(log.stats().lingered, 1);
  EXPECT_EQ(log.stats().records, 5);
}

// The linger waits for the records announced when it began, not for ones
// announced while it runs: under a steady stream of sign requests the commit
// would otherwise wait until the signing queue drains, and every call in
// flight would then wait for the same fdatasync with the signers idle.
TEST(GroupCommitTest, RecordsAnnouncedDuringTheLingerDoNotExtendIt) {
  TempDir dir;
  AuditLogOptions o{.path = dir.File("audit.log")};
  o.commit_linger = absl::Seconds(30);  // only the rule can end it in time
  auto opened = AuditLog::Open(o);
  ASSERT_TRUE(opened.ok()) << opened.status();
  AuditLog& log = **opened;
  log.ExpectRecords(+1);  // token A is being signed
  testing::Notification durable;
  log.AppendAsync(MakeRecord("b"), [&](absl::Status s) {
    EXPECT_TRUE(s.ok()) << s;
    durable.Notify();
  });
  // The writer lingers for A (not durable after 100 ms of a 30 s linger).
  EXPECT_FALSE(durable.WaitForNotificationWithTimeout(absl::Milliseconds(100)));
  log.ExpectRecords(+1);  // token C starts while it lingers
  log.ExpectRecords(-1);  // A is done: b is synced although C is not
  EXPECT_TRUE(durable.WaitForNotificationWithTimeout(absl::Seconds(10)));
  log.ExpectRecords(-1);
  EXPECT_EQ(log.stats().lingered, 1);
  EXPECT_EQ(log.stats().records, 1);
}

TEST(GroupCommitTest, RefusesNegativeLingerAndEmptyBatch) {
  TempDir dir;
  AuditLogOptions o{.path = dir.File("audit.log")};
  o.commit_linger = absl::Milliseconds(-1);
  EXPECT_EQ(AuditLog::Open(o).status().code(),
            absl::StatusCode::kInvalidArgument);
  o.commit_linger = absl::ZeroDuration();
  o.commit_batch_records = 0;
  auto s = AuditLog::Open(o).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("commit_batch_records"), std::string::npos);
}

}  // namespace
}  // namespace tokensign::audit
