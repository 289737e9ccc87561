// VerifyAuditChain with signed checkpoints: each tampering issue 12 lists is
// found by verify (or reported as an unanchored tail, which only the HSM's
// anchor can settle; see anchor_open_test.cc for the daemon-start side).
#include <utility>

#include "crypto/algorithm.h"
#include "gtest/gtest.h"
#include "signer/audit/audit_verify.h"
#include "signer/audit/checkpoint_keys.h"
#include "signer/token/jws.h"
#include "tests/audit/checkpoint_test_util.h"

namespace tokensign::audit {
namespace {

using testing::ManualCheckpoints;
using testing::MakeRecord;
using testing::ReadLines;
using testing::Rechain;
using testing::TempDir;
using testing::WriteLines;

// Lines: 1 genesis, 2 start checkpoint, 3-12 j1..j10, 13 checkpoint,
// 14-23 k1..k10, 24 final checkpoint (clean close).
class CheckpointVerifyTest : public ::testing::Test {
 protected:
  void SetUp() override {
    path_ = dir_.File("audit.log");
    key_ = testing::NewCheckpointKey();
    auto log = AuditLog::Open(ManualCheckpoints(path_, key_, &store_));
    ASSERT_TRUE(log.ok()) << log.status();
    for (int i = 1; i <= 10; ++i)
      ASSERT_TRUE((*log)->Append(MakeRecord("j" + std::to_string(i))).ok());
    ASSERT_TRUE((*log)->Checkpoint().ok());
    for (int i = 1; i <= 10; ++i)
      ASSERT_TRUE((*log)->Append(MakeRecord("k" + std::to_string(i))).ok());
    log->reset();
    lines_ = ReadLines(path_);
    ASSERT_EQ(lines_.size(), 24u);
    for (int n : {2, 13, 24}) ASSERT_TRUE(testing::IsCheckpoint(lines_[n - 1]));
    pinned_ = CheckpointTrust::Pinned({key_->kid});
  }

  VerifyReport Verify(const CheckpointTrust& trust) {
    auto r = VerifyAuditChain(path_, {.trust = &trust});
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? *r : VerifyReport{};
  }

  ChainBreak Broken(const CheckpointTrust& trust) {
    VerifyReport r = Verify(trust);
    EXPECT_EQ(Verdict(r), VerifyVerdict::kBroken) << FormatVerifyReport(r);
    return r.first_break.value_or(ChainBreak{});
  }

  TempDir dir_;
  std::string path_;
  std::shared_ptr<const CheckpointKey> key_;
  MemoryAnchorStore store_;
  std::vector<std::string> lines_;
  CheckpointTrust pinned_ = CheckpointTrust::Embedded();
};

// What `audit verify --server` holds the HSM's anchor against: every valid
// checkpoint of the segment, oldest first, each named by the next. An anchor
// that is an older link (anchor writes behind a running daemon) is found
// there; only an anchor that is no link of the chain means a rewrite.
TEST_F(CheckpointVerifyTest, ReportListsTheSegmentsCheckpointChain) {
  VerifyReport r = Verify(pinned_);
  ASSERT_EQ(r.segment_checkpoints.size(), 3u);
  EXPECT_EQ(r.segment_checkpoints[0].seq, 1);   // line 2 (seq from 0)
  EXPECT_EQ(r.segment_checkpoints[1].seq, 12);  // line 13
  ASSERT_TRUE(r.last_checkpoint.has_value());
  EXPECT_TRUE(r.segment_checkpoints[2] == *r.last_checkpoint);
  ASSERT_TRUE(r.last_checkpoint_prev.has_value());
  EXPECT_TRUE(r.segment_checkpoints[1] == *r.last_checkpoint_prev);
  for (const CheckpointRef& c : r.segment_checkpoints)
    EXPECT_EQ(c.log_id, r.log_id);
}

TEST_F(CheckpointVerifyTest, IntactLogIsAnchoredToTheLastLine) {
  VerifyReport r = Verify(pinned_);
  EXPECT_EQ(Verdict(r), VerifyVerdict::kIntact) << FormatVerifyReport(r);
  EXPECT_EQ(r.checkpoints, 3);
  EXPECT_EQ(r.unanchored_lines, 0);
  EXPECT_EQ(r.anchored_seq, 22);  // the line before the final checkpoint
  EXPECT_TRUE(r.last_checkpoint_final);
  EXPECT_EQ(r.last_checkpoint_line, 24);
  EXPECT_EQ(r.records, 20);
  std::string text = FormatVerifyReport(r);
  EXPECT_NE(text.find("verdict: intact"), std::string::npos) << text;
  EXPECT_NE(text.find("pinned"), std::string::npos) << text;
  // The same with the JWKS, and with the keys in the log (which says it is
  // unpinned).
  auto jwks = CheckpointTrust::FromJwks(testing::JwksOf(*key_));
  ASSERT_TRUE(jwks.ok()) << jwks.status();
  EXPECT_EQ(Verdict(Verify(*jwks)), VerifyVerdict::kIntact);
  VerifyReport e = Verify(CheckpointTrust::Embedded());
  EXPECT_EQ(Verdict(e), VerifyVerdict::kIntact);
  EXPECT_NE(FormatVerifyReport(e).find("unpinned"), std::string::npos);
  // Every checkpoint went to the anchor store after it was in the log.
  EXPECT_EQ(store_.puts(), 3);
}

TEST_F(CheckpointVerifyTest, TailAfterTheLastCheckpointIsNotCountedVerified) {
  // The last 5 lines dropped: what remains is consistent, but lines 14-19
  // are vouched for by no checkpoint (only the HSM's anchor shows the loss).
  lines_.resize(19);
  WriteLines(path_, lines_);
  VerifyReport r = Verify(pinned_);
  EXPECT_EQ(Verdict(r), VerifyVerdict::kUnanchoredTail) << FormatVerifyReport(r);
  EXPECT_EQ(r.unanchored_lines, 6);  // lines 14..19
  EXPECT_EQ(r.unanchored_records, 6);
  EXPECT_EQ(r.anchored_seq, 11);
  EXPECT_NE(FormatVerifyReport(r).find(
                "6 lines (6 records) not yet anchored (after seq 11)"),
            std::string::npos)
      << FormatVerifyReport(r);
}

TEST_F(CheckpointVerifyTest, EditedLastRecordIsBroken) {
  lines_[22][lines_[22].find("user-k10") + 5] = 'X';  // line 23: sub changed
  WriteLines(path_, lines_);
  ChainBreak b = Broken(pinned_);
  EXPECT_EQ(b.kind, BreakKind::kHashMismatch);
  // The final checkpoint on line 24 no longer links to line 23.
  EXPECT_EQ(b.line, 24) << b.detail;
  EXPECT_NE(b.detail.find("line 23"), std::string::npos) << b.detail;
}

TEST_F(CheckpointVerifyTest, EditedLastRecordWithPrevRecomputedIsBroken) {
  // The attacker also fixes the final checkpoint's prev: its signed head
  // still names the original line 23.
  lines_[22][lines_[22].find("user-k10") + 5] = 'X';
  Rechain(&lines_, 23);
  WriteLines(path_, lines_);
  ChainBreak b = Broken(pinned_);
  EXPECT_EQ(b.kind, BreakKind::kBadCheckpoint);
  EXPECT_EQ(b.line, 24) << b.detail;
  EXPECT_NE(b.detail.find("line 23"), std::string::npos) << b.detail;
}

TEST_F(CheckpointVerifyTest, DeletedMiddleLineWithSeqAndPrevRecomputedIsBroken) {
  lines_.erase(lines_.begin() + 7);  // line 8 (j6)
  Rechain(&lines_, 7);
  WriteLines(path_, lines_);
  ChainBreak b = Broken(pinned_);
  EXPECT_EQ(b.kind, BreakKind::kBadCheckpoint);
  EXPECT_EQ(b.line, 12) << b.detail;  // the checkpoint, now on line 12
}

TEST_F(CheckpointVerifyTest, FileTruncatedToEmptyIsBroken) {
  testing::WriteAll(path_, "");
  ChainBreak b = Broken(pinned_);
  EXPECT_EQ(b.line, 1);
}

TEST_F(CheckpointVerifyTest, EditedCheckpointIsBroken) {
  // One character of the signature (still base64url).
  std::string& l = lines_[12];
  size_t sig = l.find('"', l.find("\"checkpoint\":\"") + 14) - 5;
  l[sig] = l[sig] == 'A' ? 'B' : 'A';
  WriteLines(path_, lines_);
  ChainBreak b = Broken(pinned_);
  EXPECT_EQ(b.kind, BreakKind::kBadCheckpoint);
  EXPECT_EQ(b.line, 13) << b.detail;
}

// A checkpoint whose JWS header holds another type where a string belongs
// ({"alg":null}, found by audit_fuzzer) is a broken line named by its
// member, under every kind of trust: it used to throw nlohmann's type_error
// out of CheckpointTrust::Verify, ending `tokensignctl audit verify` and the
// daemon's start check on a file someone with write access had edited.
TEST_F(CheckpointVerifyTest, CheckpointHeaderMembersOfAnotherTypeAreBroken) {
  const std::string original = lines_[12];
  const std::string jws =
      nlohmann::json::parse(original)["checkpoint"].get<std::string>();
  absl::StatusOr<CheckpointTrust> keys =
      CheckpointTrust::FromJwks(testing::JwksOf(*key_));
  ASSERT_TRUE(keys.ok()) << keys.status();
  const CheckpointTrust embedded = CheckpointTrust::Embedded();
  for (const char* member : {"alg", "kid", "typ"}) {
    for (const nlohmann::json& odd : {nlohmann::json(nullptr),
                                      nlohmann::json(7),
                                      nlohmann::json::object()}) {
      const std::string forged = testing::WithHeaderMember(jws, member, odd);
      SCOPED_TRACE(std::string(member) + " = " + odd.dump());
      const std::vector<const CheckpointTrust*> trusts = {&embedded, &pinned_,
                                                          &*keys};
      for (const CheckpointTrust* trust : trusts) {
        absl::StatusOr<CheckpointPayload> v = trust->Verify(
            forged, nlohmann::json::parse(original)["key"].dump());
        ASSERT_FALSE(v.ok());
        EXPECT_EQ(v.status().code(), absl::StatusCode::kInvalidArgument);
        EXPECT_NE(v.status().message().find(std::string("header.") + member),
                  std::string::npos)
            << v.status();
        nlohmann::ordered_json line = nlohmann::ordered_json::parse(original);
        line["checkpoint"] = forged;
        lines_[12] = line.dump();
        WriteLines(path_, lines_);
        ChainBreak b = Broken(*trust);
        EXPECT_EQ(b.kind, BreakKind::kBadCheckpoint);
        EXPECT_EQ(b.line, 13) << b.detail;
      }
    }
  }
}

TEST_F(CheckpointVerifyTest, CheckpointSignedByAnotherKeyIsBrokenWhenPinned) {
  auto other = testing::NewCheckpointKey();
  lines_[23] = testing::Resign(lines_[23], *other);
  WriteLines(path_, lines_);
  ChainBreak b = Broken(pinned_);
  EXPECT_EQ(b.kind, BreakKind::kBadCheckpoint);
  EXPECT_EQ(b.line, 24);
  EXPECT_NE(b.detail.find("not pinned"), std::string::npos) << b.detail;
  auto jwks = CheckpointTrust::FromJwks(testing::JwksOf(*key_));
  ASSERT_TRUE(jwks.ok());
  b = Broken(*jwks);
  EXPECT_NE(b.detail.find("not an audit key"), std::string::npos) << b.detail;
  // Without pins or keys the log only proves itself consistent: this is why
  // reports say "unpinned".
  EXPECT_EQ(Verdict(Verify(CheckpointTrust::Embedded())),
            VerifyVerdict::kIntact);
}

TEST_F(CheckpointVerifyTest, LineAppendedAfterCleanShutdownIsBroken) {
  auto extra = nlohmann::ordered_json::parse(lines_[22]);
  extra["jti"] = "forged";
  lines_.push_back(extra.dump());
  Rechain(&lines_, 24);
  WriteLines(path_, lines_);
  ChainBreak b = Broken(pinned_);
  EXPECT_EQ(b.kind, BreakKind::kAfterFinal);
  EXPECT_EQ(b.line, 25) << b.detail;
  EXPECT_NE(b.detail.find("line 24"), std::string::npos) << b.detail;
}

TEST(CheckpointVerifyLiveTest, RecordsAfterTheLastCheckpointAreUnanchored) {
  TempDir dir;
  const std::string path = dir.File("audit.log");
  auto key = testing::NewCheckpointKey();
  MemoryAnchorStore store;
  auto log = AuditLog::Open(ManualCheckpoints(path, key, &store));
  ASSERT_TRUE(log.ok()) << log.status();
  for (int i = 0; i < 3; ++i)
    ASSERT_TRUE((*log)->Append(MakeRecord("a" + std::to_string(i))).ok());
  // As a crash would leave it: copied while the log is open.
  const std::string copy = dir.File("copy.log");
  testing::WriteAll(copy, testing::ReadAll(path));
  CheckpointTrust pinned = CheckpointTrust::Pinned({key->kid});
  auto r = VerifyAuditChain(copy, {.trust = &pinned});
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(Verdict(*r), VerifyVerdict::kUnanchoredTail)
      << FormatVerifyReport(*r);
  EXPECT_EQ(r->unanchored_records, 3);
  EXPECT_EQ(r->checkpoints, 1);
}

TEST(CheckpointVerifyLiveTest, LogWithoutCheckpointsIsAnUnanchoredTail) {
  TempDir dir;
  const std::string path = dir.File("audit.log");
  {
    auto log = AuditLog::Open({.path = path});
    ASSERT_TRUE(log.ok());
    ASSERT_TRUE((*log)->Append(MakeRecord("x")).ok());
  }
  auto r = VerifyAuditChain(path);
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(r->ok);
  EXPECT_EQ(Verdict(*r), VerifyVerdict::kUnanchoredTail);
  EXPECT_EQ(r->unanchored_lines, 2);
}

// Found by tests/fuzz/jwks_fuzzer: an RSA JWK whose n (or e) had a leading
// zero byte was accepted, so one key had several JWK texts with different
// RFC 7638 thumbprints. RFC 7518 6.3.1 wants the minimal octets; refused now,
// naming the member.
TEST(AuditKeysJwks, RsaMembersMustBeMinimal) {
  EVP_PKEY* raw = EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", size_t{2048});
  ASSERT_NE(raw, nullptr);
  std::shared_ptr<EVP_PKEY> rsa(raw, EVP_PKEY_free);
  auto key = CheckpointKey::Create(rsa, crypto::SignAlgorithm::kRS256);
  ASSERT_TRUE(key.ok()) << key.status();
  nlohmann::json jwk = nlohmann::json::parse((*key)->public_jwk);
  ASSERT_TRUE(CheckpointTrust::FromJwks(testing::JwksOf(**key)).ok());
  for (const char* member : {"n", "e"}) {
    nlohmann::json padded = jwk;
    padded[member] = token::Base64UrlEncode(
        std::string(1, '\0') + *token::Base64UrlDecode(jwk[member].get<std::string>()));
    auto parsed = PublicKeyFromJwk(padded);
    ASSERT_FALSE(parsed.ok()) << member;
    EXPECT_NE(parsed.status().message().find(
                  std::string("jwk.") + member + ": must be the minimal"),
              std::string::npos)
        << parsed.status();
    auto trust = CheckpointTrust::FromJwks(
        nlohmann::json{{"keys", nlohmann::json::array({padded})}}.dump());
    EXPECT_FALSE(trust.ok()) << member;
  }
}

// JWK members of another type than string (a JWKS given to `audit verify
// --keys`, or the key embedded in an audit line someone edited) are refused,
// never thrown: nlohmann's value("crv", "") throws type_error for {"crv": 5}.
TEST(AuditKeysJwks, MembersOfAnotherTypeAreRefusedNotThrown) {
  EVP_PKEY* raw = EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256");
  ASSERT_NE(raw, nullptr);
  std::shared_ptr<EVP_PKEY> ec(raw, EVP_PKEY_free);
  auto key = CheckpointKey::Create(ec, crypto::SignAlgorithm::kES256);
  ASSERT_TRUE(key.ok()) << key.status();
  const nlohmann::json jwk = nlohmann::json::parse((*key)->public_jwk);
  ASSERT_TRUE(CheckpointTrust::FromJwks(testing::JwksOf(**key)).ok());
  for (const char* member : {"crv", "kid"}) {
    for (const nlohmann::json& odd :
         {nlohmann::json(5), nlohmann::json(nullptr), nlohmann::json::object()}) {
      nlohmann::json bad = jwk;
      bad[member] = odd;
      absl::StatusOr<CheckpointTrust> trust = CheckpointTrust::FromJwks(
          nlohmann::json{{"keys", nlohmann::json::array({bad})}}.dump());
      ASSERT_FALSE(trust.ok()) << bad;
      EXPECT_EQ(trust.status().code(), absl::StatusCode::kInvalidArgument);
      EXPECT_NE(trust.status().message().find(std::string(".") + member),
                std::string::npos)
          << trust.status();
    }
  }
  nlohmann::json okp = {{"kty", "OKP"}, {"crv", 25519}, {"x", "AA"}};
  EXPECT_EQ(PublicKeyFromJwk(okp).status().code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace tokensign::audit
