// AuditLog::Open against the anchor (the HSM's copy of the latest checkpoint,
// here a MemoryAnchorStore): a lost, truncated, replaced or rewritten log is
// refused until a custodian acknowledges it; a crash between a checkpoint's
// log write and its anchor write, a torn tail and rotation are not mistaken
// for tampering.
#include <algorithm>
#include <filesystem>

#include "crypto/algorithm.h"
#include "gtest/gtest.h"
#include "signer/audit/audit_verify.h"
#include "signer/audit/checkpoint_keys.h"
#include "tests/audit/checkpoint_test_util.h"

namespace tokensign::audit {
namespace {

using testing::ManualCheckpoints;
using testing::MakeRecord;
using testing::ReadLines;
using testing::TempDir;
using testing::WriteLines;

class AnchorOpenTest : public ::testing::Test {
 protected:
  void SetUp() override {
    path_ = dir_.File("audit.log");
    key_ = testing::NewCheckpointKey();
  }

  AuditLogOptions Options() { return ManualCheckpoints(path_, key_, &store_); }

  std::unique_ptr<AuditLog> OpenLog() {
    auto log = AuditLog::Open(Options());
    EXPECT_TRUE(log.ok()) << log.status();
    return log.ok() ? *std::move(log) : nullptr;
  }

  // Appends `n` records; with `checkpoint`, one checkpoint after them.
  void Fill(AuditLog* log, int n, const std::string& prefix,
            bool checkpoint = false) {
    for (int i = 0; i < n; ++i)
      ASSERT_TRUE(log->Append(MakeRecord(prefix + std::to_string(i))).ok());
    if (checkpoint) {
      ASSERT_TRUE(log->Checkpoint().ok());
    }
  }

  // Opens the log and expects it refused with a message containing `what`.
  void ExpectRefused(const std::string& what) {
    auto log = OpenLog();
    ASSERT_TRUE(log);
    absl::Status h = log->health();
    EXPECT_EQ(h.code(), absl::StatusCode::kFailedPrecondition) << h;
    EXPECT_NE(h.message().find(what), std::string::npos) << h;
    EXPECT_NE(h.message().find("acknowledge"), std::string::npos) << h;
    EXPECT_FALSE(log->Append(MakeRecord("after")).ok());
  }

  // A log whose final checkpoint is in the file while `*before_final` holds
  // the HSM's records as they were before its anchor was written (kill -9
  // between the log write and the anchor write).
  void CrashBeforeTheFinalAnchor(MemoryAnchorStore* before_final) {
    auto log = OpenLog();
    Fill(log.get(), 5, "a", /*checkpoint=*/true);
    Fill(log.get(), 5, "b");
    testing::CopyRecord(store_, before_final, AnchorRecordName("i1"));
  }

  VerifyReport VerifyPinned() {
    CheckpointTrust pinned = CheckpointTrust::Pinned({key_->kid});
    auto r = VerifyAuditChain(path_, {.trust = &pinned});
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? *r : VerifyReport{};
  }

  TempDir dir_;
  std::string path_;
  std::shared_ptr<const CheckpointKey> key_;
  MemoryAnchorStore store_;
};

TEST_F(AnchorOpenTest, CleanRestartsAreAccepted) {
  for (int run = 0; run < 3; ++run) {
    auto log = OpenLog();
    ASSERT_TRUE(log);
    EXPECT_TRUE(log->health().ok()) << log->health();
    Fill(log.get(), 5, "r" + std::to_string(run));
  }
  VerifyReport r = VerifyPinned();
  EXPECT_EQ(Verdict(r), VerifyVerdict::kIntact) << FormatVerifyReport(r);
  EXPECT_EQ(r.records, 15);
  // A start checkpoint and a final one per run.
  EXPECT_EQ(r.checkpoints, 6);
}

TEST_F(AnchorOpenTest, TruncatedToEmptyIsRefused) {
  { Fill(OpenLog().get(), 5, "a"); }
  testing::WriteAll(path_, "");
  ExpectRefused("missing or empty");
}

TEST_F(AnchorOpenTest, DeletedLogIsRefused) {
  { Fill(OpenLog().get(), 5, "a"); }
  std::filesystem::remove(path_);
  ExpectRefused("missing or empty");
}

TEST_F(AnchorOpenTest, LastLinesDroppedAreRefused) {
  { Fill(OpenLog().get(), 20, "a"); }
  std::vector<std::string> lines = ReadLines(path_);
  lines.resize(lines.size() - 10);
  WriteLines(path_, lines);
  ExpectRefused("older than the HSM's");
}

TEST_F(AnchorOpenTest, OlderCopyOfTheLogIsRefused) {
  std::string older;
  {
    auto log = OpenLog();
    Fill(log.get(), 5, "a", /*checkpoint=*/true);
    older = testing::ReadAll(path_);
    Fill(log.get(), 5, "b", /*checkpoint=*/true);
  }
  testing::WriteAll(path_, older);
  ExpectRefused("older than the HSM's");
}

TEST_F(AnchorOpenTest, RewrittenMiddleIsRefusedNamingTheLine) {
  { Fill(OpenLog().get(), 10, "a"); }
  std::vector<std::string> lines = ReadLines(path_);
  lines[5][lines[5].find("user-a") + 5] = 'Z';
  WriteLines(path_, lines);
  ExpectRefused("chain is broken at " + path_ + " line 7");
}

TEST_F(AnchorOpenTest, RecordAppendedAfterCleanShutdownIsRefused) {
  { Fill(OpenLog().get(), 5, "a"); }
  std::vector<std::string> lines = ReadLines(path_);
  auto extra = nlohmann::ordered_json::parse(lines[lines.size() - 2]);
  extra["jti"] = "forged";
  lines.push_back(extra.dump());
  testing::Rechain(&lines, lines.size() - 1);
  WriteLines(path_, lines);
  ExpectRefused("stopped cleanly");
}

TEST_F(AnchorOpenTest, FinalCheckpointReplacedByOtherKeyIsRefused) {
  { Fill(OpenLog().get(), 5, "a"); }
  std::vector<std::string> lines = ReadLines(path_);
  lines.back() = testing::Resign(lines.back(), *testing::NewCheckpointKey());
  WriteLines(path_, lines);
  ExpectRefused("differs from the checkpoint the HSM holds");
}

// A crash between the log write and the anchor write leaves the log's last
// checkpoint one after the anchored one, and the start check verifies it.
// Edited to hold a null alg in its JWS header (what audit_fuzzer found
// throwing out of the checkpoint verify), it is refused, naming the member;
// the check does not end the process.
TEST_F(AnchorOpenTest, CheckpointHeaderOfAnotherTypeIsRefusedNotThrown) {
  MemoryAnchorStore before_final;
  ASSERT_NO_FATAL_FAILURE(CrashBeforeTheFinalAnchor(&before_final));
  std::vector<std::string> lines = ReadLines(path_);
  auto last = nlohmann::ordered_json::parse(lines.back());
  last["checkpoint"] = testing::WithHeaderMember(
      last["checkpoint"].get<std::string>(), "alg", nullptr);
  lines.back() = last.dump();
  WriteLines(path_, lines);
  auto log = AuditLog::Open(ManualCheckpoints(path_, key_, &before_final));
  ASSERT_TRUE(log.ok()) << log.status();
  absl::Status h = (*log)->health();
  EXPECT_EQ(h.code(), absl::StatusCode::kFailedPrecondition) << h;
  EXPECT_NE(h.message().find("header.alg: not a string"), std::string::npos)
      << h;
}

// kill -9 after the checkpoint reached the log but before the HSM held it:
// the anchor is the checkpoint before the log's last. The daemon starts
// without an operator, and the anchor catches up.
TEST_F(AnchorOpenTest, CrashBetweenLogWriteAndAnchorWriteIsAccepted) {
  MemoryAnchorStore before_final;
  ASSERT_NO_FATAL_FAILURE(CrashBeforeTheFinalAnchor(&before_final));
  auto log = AuditLog::Open(ManualCheckpoints(path_, key_, &before_final));
  ASSERT_TRUE(log.ok()) << log.status();
  EXPECT_TRUE((*log)->health().ok()) << (*log)->health();
  ASSERT_TRUE((*log)->Append(MakeRecord("c")).ok());
  log->reset();
  auto anchor = LoadAnchor(before_final, AnchorRecordName("i1"));
  ASSERT_TRUE(anchor.ok() && anchor->has_value());
  EXPECT_EQ((*anchor)->checkpoint.seq,
            static_cast<int64_t>(ReadLines(path_).size()) - 1);
  EXPECT_EQ(Verdict(VerifyPinned()), VerifyVerdict::kIntact);
}

TEST_F(AnchorOpenTest, AnchorTwoCheckpointsBehindIsRefused) {
  MemoryAnchorStore stale;
  {
    auto log = OpenLog();
    testing::CopyRecord(store_, &stale, AnchorRecordName("i1"));
    Fill(log.get(), 5, "a", /*checkpoint=*/true);
    Fill(log.get(), 5, "b");
  }
  auto log = AuditLog::Open(ManualCheckpoints(path_, key_, &stale));
  ASSERT_TRUE(log.ok());
  EXPECT_EQ((*log)->health().code(), absl::StatusCode::kFailedPrecondition);
}

// Two copies of the anchor after a crash inside the store's Put: the newer
// version wins.
TEST_F(AnchorOpenTest, DuplicateAnchorRecordsPickTheNewest) {
  std::vector<std::string> old;
  {
    auto log = OpenLog();
    old = *store_.GetAll(AnchorRecordName("i1"));  // the start checkpoint's
    Fill(log.get(), 5, "a", /*checkpoint=*/true);
  }
  ASSERT_EQ(old.size(), 1u);
  store_.AddCopy(AnchorRecordName("i1"), old[0]);  // left by a crashed Put
  auto log = OpenLog();
  EXPECT_TRUE(log->health().ok()) << log->health();
}

// A crash cut the last line; that part was never anchored: repaired, not
// refused.
TEST_F(AnchorOpenTest, TornTailAfterACrashIsRepairedNotRefused) {
  MemoryAnchorStore at_crash;
  std::string at_crash_file;
  {
    auto log = OpenLog();
    Fill(log.get(), 5, "a", /*checkpoint=*/true);
    Fill(log.get(), 3, "b");
    at_crash_file = testing::ReadAll(path_);
    testing::CopyRecord(store_, &at_crash, AnchorRecordName("i1"));
  }
  std::string torn = testing::ReadLines(path_)[9];  // a record line
  testing::WriteAll(path_, at_crash_file + torn.substr(0, torn.size() / 2));
  auto log = AuditLog::Open(ManualCheckpoints(path_, key_, &at_crash));
  ASSERT_TRUE(log.ok()) << log.status();
  EXPECT_TRUE((*log)->health().ok()) << (*log)->health();
  EXPECT_TRUE((*log)->torn_tail_repaired());
  log->reset();
  CheckpointTrust pinned = CheckpointTrust::Pinned({key_->kid});
  auto r = VerifyAuditChain(path_, {.trust = &pinned});
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(Verdict(*r), VerifyVerdict::kIntact) << FormatVerifyReport(*r);
  bool repair = false;
  for (const std::string& l : ReadLines(path_))
    repair = repair || l.find("\"repair\":\"torn_tail\"") != std::string::npos;
  EXPECT_TRUE(repair);
}

TEST_F(AnchorOpenTest, AcknowledgedLossStartsALinkedSegment) {
  std::string old_log_id;
  {
    auto log = OpenLog();
    Fill(log.get(), 5, "a");
    old_log_id = log->log_id();
  }
  testing::WriteAll(path_, "");
  auto log = OpenLog();
  ASSERT_FALSE(log->health().ok());
  EXPECT_EQ(log->AcknowledgeLoss("", "").code(),
            absl::StatusCode::kInvalidArgument);
  ASSERT_TRUE(log->AcknowledgeLoss("spiffe://example/custodian",
                                   "disk replaced; old log lost")
                  .ok());
  EXPECT_TRUE(log->health().ok()) << log->health();
  EXPECT_NE(log->log_id(), old_log_id);
  ASSERT_TRUE(log->Append(MakeRecord("new")).ok());
  EXPECT_EQ(log->AcknowledgeLoss("x", "y").code(),
            absl::StatusCode::kFailedPrecondition);
  log.reset();

  // The genesis of the new segment records who acknowledged what.
  std::vector<std::string> lines = ReadLines(path_);
  auto genesis = nlohmann::json::parse(lines[0]);
  EXPECT_EQ(genesis["follows"]["log_id"], old_log_id);
  EXPECT_EQ(genesis["acknowledged"]["by"], "spiffe://example/custodian");
  EXPECT_NE(genesis["acknowledged"]["finding"].get<std::string>().find(
                "missing or empty"),
            std::string::npos);
  // The refused file is kept beside the log, and the old anchor archived.
  bool kept = false;
  for (const auto& e : std::filesystem::directory_iterator(dir_.path()))
    kept = kept || e.path().filename().string().rfind("audit.log.lost-", 0) == 0;
  EXPECT_TRUE(kept);
  auto archived =
      LoadAnchor(store_, ArchivedAnchorRecordName("i1", old_log_id));
  ASSERT_TRUE(archived.ok() && archived->has_value());
  // The new segment verifies and restarts cleanly.
  EXPECT_EQ(Verdict(VerifyPinned()), VerifyVerdict::kIntact);
  auto again = OpenLog();
  EXPECT_TRUE(again->health().ok()) << again->health();
}

// The archived anchor is listed until it is retired; retiring removes every
// copy of its record (a crash inside Put leaves two) and its list entry, and
// touches neither the live anchor nor another archived one.
TEST_F(AnchorOpenTest, ArchivedAnchorsAreListedUntilRemoved) {
  std::string first_log, second_log;
  {
    auto log = OpenLog();
    Fill(log.get(), 3, "a");
    first_log = log->log_id();
  }
  testing::WriteAll(path_, "");
  {
    auto log = OpenLog();
    ASSERT_TRUE(log->AcknowledgeLoss("custodian", "lost once").ok());
    Fill(log.get(), 2, "b");
    second_log = log->log_id();
  }
  testing::WriteAll(path_, "");
  std::string live_log;
  {
    auto log = OpenLog();
    ASSERT_TRUE(log->AcknowledgeLoss("custodian", "lost twice").ok());
    live_log = log->log_id();
  }
  auto ids = ArchivedLogIds(store_, "i1");
  ASSERT_TRUE(ids.ok()) << ids.status();
  std::vector<std::string> want = {first_log, second_log};
  std::sort(want.begin(), want.end());
  EXPECT_EQ(*ids, want);
  // The anchor's checkpoint time is readable from the record.
  auto first = LoadAnchor(store_, ArchivedAnchorRecordName("i1", first_log));
  ASSERT_TRUE(first.ok() && first->has_value());
  auto payload = AnchorPayload(**first);
  ASSERT_TRUE(payload.ok()) << payload.status();
  EXPECT_EQ(payload->log_id, first_log);
  EXPECT_GT(absl::ToUnixSeconds(payload->time), 0);
  // A second copy of the record and a duplicate list entry.
  store_.AddCopy(ArchivedAnchorRecordName("i1", first_log),
                 SerializeAnchor(**first));
  store_.AddCopy(ArchivedAnchorIndexName("i1"), first_log);
  ASSERT_TRUE(RemoveArchivedAnchor(store_, "i1", first_log).ok());
  auto gone = store_.GetAll(ArchivedAnchorRecordName("i1", first_log));
  ASSERT_TRUE(gone.ok());
  EXPECT_TRUE(gone->empty());
  ids = ArchivedLogIds(store_, "i1");
  ASSERT_TRUE(ids.ok());
  EXPECT_EQ(*ids, std::vector<std::string>{second_log});
  auto second = LoadAnchor(store_, ArchivedAnchorRecordName("i1", second_log));
  ASSERT_TRUE(second.ok() && second->has_value());
  auto current = LoadAnchor(store_, AnchorRecordName("i1"));
  ASSERT_TRUE(current.ok() && current->has_value());
  EXPECT_EQ((*current)->checkpoint.log_id, live_log);
  // The live log restarts cleanly without the retired anchor.
  auto again = OpenLog();
  EXPECT_TRUE(again->health().ok()) << again->health();
}

// The lost active file followed rotated files of the old log: they stay in the
// chain, and verify reports the new segment instead of a break.
TEST_F(AnchorOpenTest, AcknowledgedSegmentAfterRotatedFilesVerifies) {
  AuditLogOptions o = Options();
  o.rotate_bytes = 3000;
  {
    auto log = AuditLog::Open(o);
    ASSERT_TRUE(log.ok());
    for (int i = 0; i < 30; ++i) {
      ASSERT_TRUE((*log)->Append(MakeRecord("r" + std::to_string(i))).ok());
      if (i % 5 == 4) {
        ASSERT_TRUE((*log)->Checkpoint().ok());
      }
    }
  }
  ASSERT_GE(AuditChainFiles(path_).size(), 2u);
  std::filesystem::remove(path_);
  auto log = AuditLog::Open(o);
  ASSERT_TRUE(log.ok());
  ASSERT_FALSE((*log)->health().ok());
  ASSERT_TRUE((*log)->AcknowledgeLoss("custodian", "active file lost").ok());
  ASSERT_TRUE((*log)->Append(MakeRecord("after")).ok());
  log->reset();
  VerifyReport r = VerifyPinned();
  EXPECT_EQ(Verdict(r), VerifyVerdict::kIntact) << FormatVerifyReport(r);
  ASSERT_EQ(r.segments.size(), 1u) << FormatVerifyReport(r);
  EXPECT_NE(r.segments[0].find("active file lost"), std::string::npos)
      << r.segments[0];
}

// EdDSA audit keys work as well as ES256 ones.
TEST_F(AnchorOpenTest, Ed25519AuditKey) {
  EVP_PKEY* k = EVP_PKEY_Q_keygen(nullptr, nullptr, "ED25519");
  ASSERT_NE(k, nullptr);
  auto key = CheckpointKey::Create(std::shared_ptr<EVP_PKEY>(k, EVP_PKEY_free),
                                   crypto::SignAlgorithm::kEdDSA);
  ASSERT_TRUE(key.ok()) << key.status();
  key_ = *key;
  { Fill(OpenLog().get(), 5, "e"); }
  VerifyReport r = VerifyPinned();
  EXPECT_EQ(Verdict(r), VerifyVerdict::kIntact) << FormatVerifyReport(r);
  EXPECT_TRUE(OpenLog()->health().ok());
}

TEST_F(AnchorOpenTest, NewInstanceNameBeginsANewLog) {
  { Fill(OpenLog().get(), 5, "a"); }
  std::filesystem::remove(path_);  // a rescheduled pod: fresh disk
  AuditLogOptions o = Options();
  o.instance = "i2";
  auto log = AuditLog::Open(o);
  ASSERT_TRUE(log.ok());
  EXPECT_TRUE((*log)->health().ok()) << (*log)->health();
}

TEST_F(AnchorOpenTest, RotationCarriesCheckpointsAcrossFiles) {
  AuditLogOptions o = Options();
  o.rotate_bytes = 3000;
  {
    auto log = AuditLog::Open(o);
    ASSERT_TRUE(log.ok());
    for (int i = 0; i < 40; ++i) {
      ASSERT_TRUE((*log)->Append(MakeRecord("r" + std::to_string(i))).ok());
      if (i % 4 == 3) {
        ASSERT_TRUE((*log)->Checkpoint().ok());
      }
    }
    EXPECT_GE((*log)->stats().rotations, 3);
  }
  std::vector<std::string> files = AuditChainFiles(path_);
  ASSERT_GE(files.size(), 4u);
  for (size_t f = 1; f < files.size(); ++f) {
    auto first = nlohmann::json::parse(ReadLines(files[f])[0]);
    EXPECT_TRUE(first.contains("continues")) << files[f];
    EXPECT_TRUE(first.contains("checkpoint")) << files[f];
  }
  VerifyReport r = VerifyPinned();
  EXPECT_EQ(Verdict(r), VerifyVerdict::kIntact) << FormatVerifyReport(r);
  EXPECT_EQ(r.records, 40);
  auto log = AuditLog::Open(o);
  ASSERT_TRUE(log.ok());
  EXPECT_TRUE((*log)->health().ok()) << (*log)->health();
}

TEST(CheckpointTriggerTest, EveryNRecordsAndAfterTimeOnlyWithNewLines) {
  TempDir dir;
  MemoryAnchorStore store;
  AuditLogOptions o;
  o.path = dir.File("audit.log");
  o.checkpoint_key = testing::NewCheckpointKey();
  o.checkpoint_every_records = 10;
  o.checkpoint_every = absl::Hours(24);
  o.anchors = &store;
  auto log = AuditLog::Open(o);
  ASSERT_TRUE(log.ok()) << log.status();
  EXPECT_EQ((*log)->stats().checkpoints, 1);  // at Open
  for (int i = 0; i < 10; ++i)
    ASSERT_TRUE((*log)->Append(MakeRecord("n" + std::to_string(i))).ok());
  // The 10th record wakes the checkpoint thread (no timer could: 24 h). The checkpoint is
  // counted when its line is durable and the anchor after the store answers, so wait for both
  // (waiting for the first alone failed under ASan, where the store is slower).
  for (int i = 0; i < 3000 && ((*log)->stats().checkpoints < 2 ||
                               (*log)->stats().anchor_writes < 2);
       ++i)
    absl::SleepFor(absl::Milliseconds(10));
  EXPECT_EQ((*log)->stats().checkpoints, 2);
  EXPECT_EQ((*log)->stats().anchor_writes, 2);
}

// checkpoint_min_interval holds back a checkpoint the records count asks
// for (each one rewrites the HSM anchor) until that long after the previous
// one, then writes it without any other event: the thread wakes for it.
TEST(CheckpointTriggerTest, RecordsCountWaitsForTheMinimumInterval) {
  TempDir dir;
  MemoryAnchorStore store;
  AuditLogOptions o;
  o.path = dir.File("audit.log");
  o.checkpoint_key = testing::NewCheckpointKey();
  o.checkpoint_every_records = 10;
  o.checkpoint_every = absl::Hours(24);
  o.checkpoint_min_interval = absl::Milliseconds(500);
  o.anchors = &store;
  const absl::Time before_open = absl::Now();  // the first checkpoint: after
  auto log = AuditLog::Open(o);
  ASSERT_TRUE(log.ok()) << log.status();
  for (int i = 0; i < 35; ++i)
    ASSERT_TRUE((*log)->Append(MakeRecord("n" + std::to_string(i))).ok());
  // Three counts' worth of records: without the minimum the thread would
  // checkpoint at once; with it, one checkpoint covers them all, and not
  // before the interval has passed since the one at Open.
  for (int i = 0; i < 3000 && (*log)->stats().anchor_writes < 2; ++i)
    absl::SleepFor(absl::Milliseconds(10));
  EXPECT_EQ((*log)->stats().anchor_writes, 2);
  EXPECT_GE(absl::Now() - before_open, o.checkpoint_min_interval);
  absl::SleepFor(absl::Milliseconds(100));  // a chance for an extra one
  EXPECT_EQ((*log)->stats().checkpoints, 2);
}

TEST(CheckpointTriggerTest, TimerWritesOnlyWhenLinesWereAdded) {
  TempDir dir;
  AuditLogOptions o;
  o.path = dir.File("audit.log");
  o.checkpoint_key = testing::NewCheckpointKey();
  o.checkpoint_every = absl::Milliseconds(20);
  auto log = AuditLog::Open(o);
  ASSERT_TRUE(log.ok()) << log.status();
  absl::SleepFor(absl::Milliseconds(200));  // several periods, nothing new
  EXPECT_EQ((*log)->stats().checkpoints, 1);
  ASSERT_TRUE((*log)->Append(MakeRecord("t")).ok());
  for (int i = 0; i < 3000 && (*log)->stats().checkpoints < 2; ++i)
    absl::SleepFor(absl::Milliseconds(10));
  EXPECT_EQ((*log)->stats().checkpoints, 2);
}

}  // namespace
}  // namespace tokensign::audit
