// AuditLog: format, durability, resume, torn tail, concurrency, rotation,
// failures.
#include "signer/audit/audit_log.h"

#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>

#include <filesystem>
#include <mutex>
#include <set>
#include <thread>

#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "signer/audit/audit_format.h"
#include "signer/audit/audit_verify.h"
#include "tests/audit/audit_test_util.h"

namespace tokensign::audit {
namespace {

using testing::MakeRecord;
using testing::ReadAll;
using testing::ReadLines;
using testing::TempDir;

std::unique_ptr<AuditLog> OpenOrDie(const AuditLogOptions& o) {
  auto log = AuditLog::Open(o);
  EXPECT_TRUE(log.ok()) << log.status();
  return log.ok() ? *std::move(log) : nullptr;
}

VerifyReport VerifyOrDie(const std::string& path) {
  auto r = VerifyAuditChain(path);
  EXPECT_TRUE(r.ok()) << r.status();
  return r.ok() ? *r : VerifyReport{};
}

TEST(AuditLogTest, AppendThenVerifyAndExactFormat) {
  TempDir dir;
  AuditLogOptions o{.path = dir.File("audit.log"), .log_name = "replica-a"};
  {
    auto log = OpenOrDie(o);
    ASSERT_TRUE(log);
    EXPECT_FALSE(log->torn_tail_repaired());
    for (int i = 0; i < 5; ++i)
      ASSERT_TRUE(log->Append(MakeRecord("j" + std::to_string(i))).ok());
    EXPECT_EQ(log->last_durable_seq(), 5);
    EXPECT_EQ(log->stats().records, 5);
  }
  std::vector<std::string> lines = ReadLines(o.path);
  ASSERT_EQ(lines.size(), 6u);
  auto g = nlohmann::ordered_json::parse(lines[0]);
  std::vector<std::string> gkeys;
  for (auto& [k, v] : g.items()) gkeys.push_back(k);
  EXPECT_EQ(gkeys, (std::vector<std::string>{"v", "genesis", "log", "log_id",
                                             "created", "prev"}));
  EXPECT_EQ(g["log_id"].get<std::string>().size(), 32u);  // 128 random bits
  EXPECT_EQ(g["log"], "replica-a");
  EXPECT_EQ(g["prev"], "");

  auto d = nlohmann::ordered_json::parse(lines[1]);
  std::vector<std::string> keys;
  for (auto& [k, v] : d.items()) keys.push_back(k);
  EXPECT_EQ(keys,
            (std::vector<std::string>{
                "v", "seq", "time", "caller", "issuer", "kind", "kid", "jti",
                "sub", "client_id", "act", "aud", "scope", "exp", "parent_jti",
                "token_sha256", "outcome", "reason", "prev"}));
  EXPECT_EQ(d["seq"], 1);
  EXPECT_EQ(d["time"], "2024-05-01T12:00:00.123Z");
  EXPECT_EQ(
      d["act"].dump(),
      R"([{"sub":"agent-7"},{"sub":"planner","iss":"https://idp.example"}])");
  EXPECT_EQ(d["prev"], Sha256Hex(lines[0]));
  EXPECT_EQ(nlohmann::json::parse(lines[5])["prev"], Sha256Hex(lines[4]));

  VerifyReport r = VerifyOrDie(o.path);
  EXPECT_TRUE(r.ok) << FormatVerifyReport(r);
  EXPECT_EQ(r.records, 5);
  EXPECT_EQ(r.lines, 6);
  EXPECT_EQ(r.last_seq, 5);
  EXPECT_EQ(r.head_sha256, Sha256Hex(lines[5]));
}

TEST(AuditLogTest, JsonEscapingOfHostileStrings) {
  TempDir dir;
  AuditLogOptions o{.path = dir.File("audit.log")};
  AuditRecord rec = MakeRecord("j\"1\n");
  rec.reason = "line1\nline2\t\"quoted\" \\ \x01 \xff";
  rec.outcome = "denied";
  {
    auto log = OpenOrDie(o);
    ASSERT_TRUE(log->Append(rec).ok());
  }
  std::vector<std::string> lines = ReadLines(o.path);
  ASSERT_EQ(lines.size(), 2u);  // the newline inside the record is escaped
  auto p = ParseAuditLine(lines[1]);
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(p->record.jti, "j\"1\n");
  // Invalid UTF-8 (\xff) becomes U+FFFD; everything else round-trips.
  EXPECT_EQ(p->record.reason, "line1\nline2\t\"quoted\" \\ \x01 \xef\xbf\xbd");
  EXPECT_TRUE(VerifyOrDie(o.path).ok);
}

TEST(AuditLogTest, FileModeIs0600AndExistingFileIsTightened) {
  TempDir dir;
  AuditLogOptions o{.path = dir.File("audit.log")};
  { ASSERT_TRUE(OpenOrDie(o)); }
  struct stat st;
  ASSERT_EQ(stat(o.path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600);
  ASSERT_EQ(chmod(o.path.c_str(), 0644), 0);
  { ASSERT_TRUE(OpenOrDie(o)); }
  ASSERT_EQ(stat(o.path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600);
}

TEST(AuditLogTest, ReopenResumesSeqAndChain) {
  TempDir dir;
  AuditLogOptions o{.path = dir.File("audit.log")};
  for (int round = 0; round < 3; ++round) {
    auto log = OpenOrDie(o);
    ASSERT_TRUE(log);
    for (int i = 0; i < 4; ++i) {
      ASSERT_TRUE(log->Append(MakeRecord(std::to_string(round) + "-" +
                                         std::to_string(i)))
                      .ok());
    }
  }
  std::vector<std::string> lines = ReadLines(o.path);
  ASSERT_EQ(lines.size(), 13u);  // one genesis only
  EXPECT_EQ(nlohmann::json::parse(lines[12])["seq"], 12);
  VerifyReport r = VerifyOrDie(o.path);
  EXPECT_TRUE(r.ok) << FormatVerifyReport(r);
  EXPECT_EQ(r.records, 12);
}

TEST(AuditLogTest, TornTailIsTruncatedRecordedAndChainResumes) {
  TempDir dir;
  AuditLogOptions o{.path = dir.File("audit.log")};
  {
    auto log = OpenOrDie(o);
    for (int i = 0; i < 3; ++i)
      ASSERT_TRUE(log->Append(MakeRecord("a" + std::to_string(i))).ok());
  }
  std::string complete = ReadAll(o.path);
  const std::string torn = R"({"v":1,"seq":4,"time":"2024-05-01T12:0)";
  testing::WriteAll(o.path, complete + torn);
  {
    VerifyReport before = VerifyOrDie(o.path);
    EXPECT_FALSE(before.ok);
    ASSERT_TRUE(before.first_break);
    EXPECT_EQ(before.first_break->kind, BreakKind::kTornTail);
    EXPECT_EQ(before.first_break->line, 5);
  }
  {
    auto log = OpenOrDie(o);
    ASSERT_TRUE(log);
    EXPECT_TRUE(log->torn_tail_repaired());
    EXPECT_EQ(log->torn_tail_bytes(), static_cast<int64_t>(torn.size()));
    ASSERT_TRUE(log->Append(MakeRecord("b0")).ok());
  }
  std::string after = ReadAll(o.path);
  EXPECT_EQ(after.substr(0, complete.size()), complete);
  std::vector<std::string> lines = ReadLines(o.path);
  ASSERT_EQ(lines.size(), 6u);
  auto repair = nlohmann::json::parse(lines[4]);
  EXPECT_EQ(repair["repair"], "torn_tail");
  EXPECT_EQ(repair["seq"], 4);
  EXPECT_EQ(repair["dropped_bytes"], torn.size());
  EXPECT_EQ(repair["dropped_sha256"], Sha256Hex(torn));
  VerifyReport r = VerifyOrDie(o.path);
  EXPECT_TRUE(r.ok) << FormatVerifyReport(r);
  EXPECT_EQ(r.records, 4);
}

TEST(AuditLogTest, OpenRefusesTamperedTail) {
  TempDir dir;
  AuditLogOptions o{.path = dir.File("audit.log")};
  {
    auto log = OpenOrDie(o);
    for (int i = 0; i < 3; ++i)
      ASSERT_TRUE(log->Append(MakeRecord("a" + std::to_string(i))).ok());
  }
  std::vector<std::string> lines = ReadLines(o.path);
  lines[2][lines[2].find("user-a1")] = 'X';  // the second-to-last line changes
  testing::WriteLines(o.path, lines);
  auto log = AuditLog::Open(o);
  ASSERT_FALSE(log.ok());
  EXPECT_EQ(log.status().code(), absl::StatusCode::kDataLoss) << log.status();
  EXPECT_NE(log.status().message().find("does not match"), std::string::npos);
}

TEST(AuditLogTest, EightThreadsAppendEveryRecordExactlyOnce) {
  TempDir dir;
  AuditLogOptions o{.path = dir.File("audit.log")};
  constexpr int kThreads = 8, kPerThread = 500;
  {
    auto log = OpenOrDie(o);
    ASSERT_TRUE(log);
    std::vector<std::thread> threads;
    std::atomic<int> failures{0};
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&, t] {
        for (int i = 0; i < kPerThread; ++i) {
          if (!log->Append(MakeRecord("t" + std::to_string(t) + "-" +
                                      std::to_string(i)))
                   .ok()) {
            ++failures;
          }
        }
      });
    }
    for (auto& th : threads) th.join();
    EXPECT_EQ(failures.load(), 0);
    AuditLogStats s = log->stats();
    EXPECT_EQ(s.records, kThreads * kPerThread);
    EXPECT_LE(s.commits, s.records + 1);
  }
  std::vector<std::string> lines = ReadLines(o.path);
  ASSERT_EQ(lines.size(), static_cast<size_t>(kThreads * kPerThread + 1));
  std::set<std::string> jtis;
  for (size_t i = 1; i < lines.size(); ++i) {
    auto p = ParseAuditLine(lines[i]);
    ASSERT_TRUE(p.ok()) << p.status();
    EXPECT_EQ(p->seq, static_cast<int64_t>(i));
    EXPECT_EQ(p->prev, Sha256Hex(lines[i - 1]));
    EXPECT_TRUE(jtis.insert(p->record.jti).second)
        << "duplicate " << p->record.jti;
  }
  for (int t = 0; t < kThreads; ++t) {
    for (int i = 0; i < kPerThread; ++i) {
      EXPECT_EQ(jtis.count("t" + std::to_string(t) + "-" + std::to_string(i)),
                1u);
    }
  }
  VerifyReport r = VerifyOrDie(o.path);
  EXPECT_TRUE(r.ok) << FormatVerifyReport(r);
  EXPECT_EQ(r.records, kThreads * kPerThread);
}

TEST(AuditLogTest, DurabilityNoneIsWrittenBeforeReturn) {
  TempDir dir;
  AuditLogOptions o{.path = dir.File("audit.log"),
                    .durability = Durability::kNone};
  auto log = OpenOrDie(o);
  ASSERT_TRUE(log);
  for (int i = 0; i < 20; ++i) {
    std::string jti = "n" + std::to_string(i);
    ASSERT_TRUE(log->Append(MakeRecord(jti)).ok());
    EXPECT_NE(ReadAll(o.path).find("\"jti\":\"" + jti + "\""),
              std::string::npos);
  }
  EXPECT_TRUE(VerifyOrDie(o.path).ok);
}

TEST(AuditLogTest, AppendAsyncCompletesEveryRecordOnce) {
  TempDir dir;
  AuditLogOptions o{.path = dir.File("audit.log")};
  constexpr int kThreads = 2, kPerThread = 1000;
  std::mutex mu;  // completions run on the writer thread
  int ok = 0, failed = 0;
  {
    auto log = OpenOrDie(o);
    ASSERT_TRUE(log);
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&, t] {
        for (int i = 0; i < kPerThread; ++i) {
          log->AppendAsync(
              MakeRecord("a" + std::to_string(t) + "-" + std::to_string(i)),
              [&](absl::Status s) {
                std::lock_guard<std::mutex> l(mu);
                (s.ok() ? ok : failed)++;
              });
        }
      });
    }
    for (auto& th : threads) th.join();
  }  // the destructor drains: every callback has run
  EXPECT_EQ(ok, kThreads * kPerThread);
  EXPECT_EQ(failed, 0);
  std::vector<std::string> lines = ReadLines(o.path);
  ASSERT_EQ(lines.size(), static_cast<size_t>(kThreads * kPerThread + 1));
  std::set<std::string> jtis;
  for (size_t i = 1; i < lines.size(); ++i) {
    auto p = ParseAuditLine(lines[i]);
    ASSERT_TRUE(p.ok()) << p.status();
    EXPECT_TRUE(jtis.insert(p->record.jti).second);
  }
  VerifyReport r = VerifyOrDie(o.path);
  EXPECT_TRUE(r.ok) << FormatVerifyReport(r);
}

}  // namespace
}  // namespace tokensign::audit
