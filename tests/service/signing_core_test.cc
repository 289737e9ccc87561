// SigningCore's asynchronous pipeline with a fake audit log that holds each
// AppendAsync completion until the test releases it: SignAsync returns before
// the record is durable (the worker never waits for fdatasync), the token is
// released only after an OK completion, an audit failure yields UNAVAILABLE
// and no token, denials are audited asynchronously too, and the blocking Sign
// is built on SignAsync. Keys: this program's own SoftHSM token.
#include "tests/service/signing_core_fixture.h"

namespace tokensign::service {
namespace {

TEST_F(SigningCoreTest, TokenReleasedOnlyAfterDurableAuditRecord) {
  Result a, b, c;
  Start(Request(), &a);
  Start(Request(), &b);
  Start(Request(), &c);
  // All three minted and handed to the log; none answered yet.
  ASSERT_EQ(audit_.pending(), 3u);
  EXPECT_FALSE(a || b || c);
  EXPECT_EQ(core_->in_flight(), 3);
  audit::AuditRecord rec_a = audit_.PendingRecord(0);
  EXPECT_EQ(rec_a.outcome, "signed");

  audit_.CompleteNext(absl::OkStatus());
  ASSERT_TRUE(a.has_value());
  ASSERT_TRUE(a->ok()) << a->status();
  EXPECT_EQ(rec_a.token_sha256, Sha256Hex((*a)->token));
  EXPECT_EQ(rec_a.jti, (*a)->jti);
  EXPECT_FALSE(b || c);

  audit_.CompleteNext(absl::DataLossError("disk gone"));
  ASSERT_TRUE(b.has_value());
  EXPECT_EQ(b->status().code(), absl::StatusCode::kUnavailable);
  EXPECT_NE(b->status().message().find("token withheld"), std::string::npos);
  EXPECT_NE(b->status().message().find("disk gone"), std::string::npos);

  audit_.CompleteNext(absl::OkStatus());
  ASSERT_TRUE(c.has_value() && c->ok());
  EXPECT_NE((*c)->jti, (*a)->jti);
  EXPECT_EQ(core_->in_flight(), 0);
  core_->WaitIdle();  // returns at once when idle
}

TEST_F(SigningCoreTest, DenialIsAuditedAsynchronously) {
  token::TokenRequest bad = Request();
  bad.audience = {"https://evil.example"};
  Result denied, denied_unrecorded;
  Start(bad, &denied);
  Start(bad, &denied_unrecorded);
  ASSERT_EQ(audit_.pending(), 2u);
  EXPECT_FALSE(denied || denied_unrecorded);
  audit::AuditRecord rec = audit_.PendingRecord(0);
  EXPECT_EQ(rec.outcome, "denied");
  EXPECT_EQ(rec.token_sha256, "");
  EXPECT_NE(rec.reason.find("aud"), std::string::npos) << rec.reason;

  audit_.CompleteNext(absl::OkStatus());
  ASSERT_TRUE(denied.has_value());
  EXPECT_EQ(denied->status().code(), absl::StatusCode::kPermissionDenied);
  audit_.CompleteNext(absl::InternalError("fsync failed"));
  ASSERT_TRUE(denied_unrecorded.has_value());
  EXPECT_EQ(denied_unrecorded->status().code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(core_->in_flight(), 0);
}

TEST_F(SigningCoreTest, UnknownIssuerAndPassedDeadlineAreAuditedRefusals) {
  Result unknown;
  core_->SignAsync(
      "dev", "nope", Request(), absl::InfiniteFuture(),
      [&](absl::StatusOr<token::MintedToken> r) { unknown = std::move(r); });
  ASSERT_EQ(audit_.pending(), 1u);
  audit_.CompleteNext(absl::OkStatus());
  ASSERT_TRUE(unknown.has_value());
  EXPECT_EQ(unknown->status().code(), absl::StatusCode::kNotFound);

  // A deadline already passed is refused without signing, and audited like
  // every other refusal.
  Result late;
  Start(Request(), &late, absl::Now() - absl::Seconds(1));
  ASSERT_EQ(audit_.pending(), 1u);
  EXPECT_EQ(audit_.PendingRecord(0).outcome, "denied");
  EXPECT_EQ(audit_.PendingRecord(0).reason,
            "deadline passed before signing; not signed");
  EXPECT_TRUE(audit_.PendingRecord(0).token_sha256.empty());
  audit_.CompleteNext(absl::OkStatus());
  ASSERT_TRUE(late.has_value());
  EXPECT_EQ(late->status().code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_EQ(core_->in_flight(), 0);
}

TEST_F(SigningCoreTest, NoActiveKeyIsAnAuditedRefusal) {
  auto active = keys_->ActiveKey("dev");
  ASSERT_TRUE(active.ok()) << active.status();
  ASSERT_TRUE(keys_->RetireKey("dev", (*active)->kid).ok());
  Result refused;
  Start(Request(), &refused);
  ASSERT_EQ(audit_.pending(), 1u);
  EXPECT_EQ(audit_.PendingRecord(0).outcome, "denied");
  EXPECT_NE(audit_.PendingRecord(0).reason.find("no active key"),
            std::string::npos)
      << audit_.PendingRecord(0).reason;
  audit_.CompleteNext(absl::OkStatus());
  ASSERT_TRUE(refused.has_value());
  EXPECT_EQ(refused->status().code(), absl::StatusCode::kFailedPrecondition);
  // The next test's SetUp activates a fresh key (EnsureActiveKey).
}

TEST_F(SigningCoreTest, BlockingSignIsBuiltOnSignAsync) {
  audit_.set_auto_complete(true);
  auto minted = core_->Sign("dev", "dev", Request(), absl::InfiniteFuture());
  ASSERT_TRUE(minted.ok()) << minted.status();
  EXPECT_FALSE(minted->token.empty());
  EXPECT_EQ(core_->in_flight(), 0);
}

}  // namespace
}  // namespace tokensign::service
