// AuditLog rotation (chain carried across files) and write failures.
#include <signal.h>
#include <sys/resource.h>

#include <cstdio>
#include <filesystem>

#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "signer/audit/audit_format.h"
#include "signer/audit/audit_log.h"
#include "signer/audit/audit_verify.h"
#include "tests/audit/audit_test_util.h"

namespace tokensign::audit {
namespace {

using testing::MakeRecord;
using testing::ReadLines;
using testing::TempDir;

TEST(AuditRotationTest, ChainCarriesOverFilesAndVerifyWalksAll) {
  TempDir dir;
  AuditLogOptions o{.path = dir.File("audit.log"), .rotate_bytes = 2000};
  {
    auto log = AuditLog::Open(o);
    ASSERT_TRUE(log.ok()) << log.status();
    for (int i = 0; i < 40; ++i)
      ASSERT_TRUE((*log)->Append(MakeRecord("r" + std::to_string(i))).ok());
    EXPECT_GE((*log)->stats().rotations, 5);
  }
  std::vector<std::string> files = AuditChainFiles(o.path);
  ASSERT_GE(files.size(), 6u);
  EXPECT_EQ(files.back(), o.path);
  // Oldest file starts with genesis, every later one with a continuation whose
  // prev is the hash of the previous file's last line; seq runs on across
  // files.
  for (size_t f = 1; f < files.size(); ++f) {
    std::vector<std::string> prev = ReadLines(files[f - 1]);
    std::vector<std::string> cur = ReadLines(files[f]);
    ASSERT_FALSE(cur.empty());
    auto first = nlohmann::json::parse(cur[0]);
    EXPECT_TRUE(first.contains("continues")) << files[f];
    EXPECT_EQ(first["prev"], Sha256Hex(prev.back()));
    EXPECT_EQ(first["seq"].get<int64_t>(),
              nlohmann::json::parse(prev.back()).value("seq", 0) + 1);
  }
  EXPECT_TRUE(
      nlohmann::json::parse(ReadLines(files[0])[0]).value("genesis", false));
  auto r = VerifyAuditChain(o.path);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_TRUE(r->ok) << FormatVerifyReport(*r);
  EXPECT_EQ(r->records, 40);
  EXPECT_EQ(r->files, files);

  // Reopen and keep going: the chain still verifies.
  {
    auto log = AuditLog::Open(o);
    ASSERT_TRUE(log.ok()) << log.status();
    for (int i = 0; i < 10; ++i)
      ASSERT_TRUE((*log)->Append(MakeRecord("s" + std::to_string(i))).ok());
  }
  r = VerifyAuditChain(o.path);
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(r->ok) << FormatVerifyReport(*r);
  EXPECT_EQ(r->records, 50);

  // Tampering inside a rotated file is reported in that file.
  std::vector<std::string> mid = ReadLines(files[2]);
  ASSERT_GE(mid.size(), 3u);
  mid[1][mid[1].find("user-")] = 'U';
  testing::WriteLines(files[2], mid);
  r = VerifyAuditChain(o.path);
  ASSERT_TRUE(r.ok());
  ASSERT_FALSE(r->ok);
  EXPECT_EQ(r->first_break->file, files[2]);
  EXPECT_EQ(r->first_break->line, 2);
  EXPECT_EQ(r->first_break->kind, BreakKind::kHashMismatch);
}

TEST(AuditRotationTest, InterruptedRotationContinuesChain) {
  TempDir dir;
  AuditLogOptions o{.path = dir.File("audit.log")};
  {
    auto log = AuditLog::Open(o);
    ASSERT_TRUE(log.ok());
    ASSERT_TRUE((*log)->Append(MakeRecord("x0")).ok());
  }
  // Crash after "path -> path.1" but before the fresh file got its first line.
  ASSERT_EQ(std::rename(o.path.c_str(), (o.path + ".1").c_str()), 0);
  {
    auto log = AuditLog::Open(o);
    ASSERT_TRUE(log.ok()) << log.status();
    ASSERT_TRUE((*log)->Append(MakeRecord("x1")).ok());
  }
  auto first = nlohmann::json::parse(ReadLines(o.path)[0]);
  EXPECT_EQ(first["continues"], "audit.log.1");
  auto r = VerifyAuditChain(o.path);
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(r->ok) << FormatVerifyReport(*r);
  EXPECT_EQ(r->records, 2);
}

// Restores RLIMIT_FSIZE and SIGXFSZ on scope exit.
class FileSizeLimit {
 public:
  explicit FileSizeLimit(rlim_t bytes) {
    getrlimit(RLIMIT_FSIZE, &old_);
    old_handler_ = signal(SIGXFSZ, SIG_IGN);
    rlimit l = old_;
    l.rlim_cur = bytes;
    EXPECT_EQ(setrlimit(RLIMIT_FSIZE, &l), 0);
  }
  ~FileSizeLimit() {
    setrlimit(RLIMIT_FSIZE, &old_);
    signal(SIGXFSZ, old_handler_);
  }

 private:
  rlimit old_;
  sighandler_t old_handler_;
};

// RLIMIT_FSIZE binds root too, so this fails deterministically in CI
// containers.
TEST(AuditFailureTest, WriteFailureFailsAppendAndStopsTheLog) {
  TempDir dir;
  AuditLogOptions o{.path = dir.File("audit.log")};
  {
    auto log = AuditLog::Open(o);
    ASSERT_TRUE(log.ok()) << log.status();
    ASSERT_TRUE((*log)->Append(MakeRecord("ok0")).ok());
    auto size = std::filesystem::file_size(o.path);
    {
      FileSizeLimit limit(size +
                          100);  // the next record (~600 bytes) does not fit
      absl::Status s = (*log)->Append(MakeRecord("fails"));
      EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable) << s;
      EXPECT_NE(s.message().find("write"), std::string::npos) << s;
      EXPECT_NE(s.message().find("File too large"), std::string::npos) << s;
    }
    // The log stays stopped, even with room again: no silent gap.
    absl::Status again = (*log)->Append(MakeRecord("after"));
    EXPECT_EQ(again.code(), absl::StatusCode::kUnavailable) << again;
    EXPECT_FALSE((*log)->health().ok());
  }
  // The partial write is a torn tail; reopening repairs it and the chain
  // verifies.
  auto log = AuditLog::Open(o);
  ASSERT_TRUE(log.ok()) << log.status();
  EXPECT_TRUE((*log)->torn_tail_repaired());
  EXPECT_EQ((*log)->torn_tail_bytes(), 100);
  ASSERT_TRUE((*log)->Append(MakeRecord("ok1")).ok());
  auto r = VerifyAuditChain(o.path);
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(r->ok) << FormatVerifyReport(*r);
  EXPECT_EQ(r->records, 2);
}

TEST(AuditFailureTest, WriteFailureFailsAsyncCallbacks) {
  TempDir dir;
  AuditLogOptions o{.path = dir.File("audit.log")};
  auto log = AuditLog::Open(o);
  ASSERT_TRUE(log.ok()) << log.status();
  testing::Notification done;
  absl::Status got;
  {
    FileSizeLimit limit(std::filesystem::file_size(o.path) + 50);
    (*log)->AppendAsync(MakeRecord("fails"), [&](absl::Status s) {
      got = s;
      done.Notify();
    });
    done.WaitForNotification();
  }
  EXPECT_EQ(got.code(), absl::StatusCode::kUnavailable) << got;
  // Once stopped, the callback runs inline with the same error.
  absl::Status inline_status;
  (*log)->AppendAsync(MakeRecord("later"),
                      [&](absl::Status s) { inline_status = s; });
  EXPECT_EQ(inline_status.code(), absl::StatusCode::kUnavailable)
      << inline_status;
}

TEST(AuditFailureTest, OpenRejectsBadOptionsAndNonRegularFiles) {
  auto dev = AuditLog::Open({.path = "/dev/full"});
  ASSERT_FALSE(dev.ok());
  EXPECT_EQ(dev.status().code(), absl::StatusCode::kFailedPrecondition)
      << dev.status();
  EXPECT_NE(dev.status().message().find("not a regular file"),
            std::string::npos);

  auto empty = AuditLog::Open({.path = ""});
  EXPECT_EQ(empty.status().code(), absl::StatusCode::kInvalidArgument);

  auto missing_dir =
      AuditLog::Open({.path = "/nonexistent-dir-tokensign/audit.log"});
  ASSERT_FALSE(missing_dir.ok());
  EXPECT_EQ(missing_dir.status().code(), absl::StatusCode::kNotFound)
      << missing_dir.status();

  TempDir dir;
  std::filesystem::create_symlink(dir.File("target"), dir.File("link"));
  auto link = AuditLog::Open({.path = dir.File("link")});
  EXPECT_FALSE(link.ok());  // O_NOFOLLOW
}

}  // namespace
}  // namespace tokensign::audit
