// Security-review fixes in SigningCore and WorkPool: a token minted after its
// deadline is withheld and audited "withheld"; every Mint failure (also
// FailedPrecondition) and malformed request is audited; denial records are
// bounded (4 MB sub, 40 actors); KeyAdmin is refused while the audit log is
// unhealthy and reports an unrecorded outcome; SignTokens' caller pre-check;
// WorkPool counts a batch exactly against max_queue.
#include <gtest/gtest.h>

#include <atomic>
#include <future>

#include "signer/service/key_admin_gate.h"
#include "signer/service/work_pool.h"
#include "tests/service/signing_core_fixture.h"

namespace tokensign::service {
namespace {

const absl::Time kT0 = absl::FromUnixSeconds(1700000000);

// The KeyAdmin gate of `core` (its pool is not used by these tests).
KeyAdminGate GateOf(SigningCore* core) { return KeyAdminGate(core, nullptr); }

Config StrictConfig() {
  Config c = DevConfig("/nonexistent", "unused.so");
  c.dev = false;
  c.callers = {{"custodian-1", {Role::kCustodian}, {"dev"}},
               {"signer-1", {Role::kSigner}, {"dev"}},
               {"auditor-1", {Role::kAuditor}, {"*"}},
               {"custodian-other", {Role::kCustodian}, {"other"}}};
  return c;
}

TEST_F(SigningCoreTest, TokenMintedPastDeadlineIsWithheldAndAudited) {
  // Call 0 (before Mint) is on time; call 1 (after Mint) is 10 s later.
  auto calls = std::make_shared<std::atomic<int>>(0);
  Rebuild(DevConfig("/nonexistent", "unused.so"),
          [calls] { return kT0 + absl::Seconds(10) * calls->fetch_add(1); });
  Result late;
  Start(Request(), &late, kT0 + absl::Seconds(5));
  ASSERT_EQ(audit_.pending(), 1u);
  EXPECT_FALSE(late.has_value());  // answered only once the record is durable
  audit::AuditRecord rec = audit_.PendingRecord(0);
  EXPECT_EQ(rec.outcome, "withheld");
  EXPECT_EQ(rec.reason, "deadline passed during signing");
  EXPECT_EQ(rec.token_sha256.size(), 64u);
  EXPECT_FALSE(rec.jti.empty());
  audit_.CompleteNext(absl::OkStatus());
  ASSERT_TRUE(late.has_value());
  EXPECT_EQ(late->status().code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_EQ(core_->in_flight(), 0);

  // Same clock, deadline after both reads: signed.
  calls->store(0);
  Result ok;
  Start(Request(), &ok, kT0 + absl::Seconds(30));
  ASSERT_EQ(audit_.pending(), 1u);
  EXPECT_EQ(audit_.PendingRecord(0).outcome, "signed");
  audit_.CompleteNext(absl::OkStatus());
  ASSERT_TRUE(ok.has_value() && ok->ok());
}

TEST_F(SigningCoreTest, FailedPreconditionFromPolicyIsAudited) {
  Config c = DevConfig("/nonexistent", "unused.so");
  c.issuers.begin()->second.policy.iss = "";  // unusable issuer policy
  Rebuild(std::move(c));
  Result r;
  Start(Request(), &r);
  ASSERT_EQ(audit_.pending(), 1u);
  audit::AuditRecord rec = audit_.PendingRecord(0);
  EXPECT_EQ(rec.outcome, "denied");
  EXPECT_NE(rec.reason.find("iss"), std::string::npos) << rec.reason;
  audit_.CompleteNext(absl::OkStatus());
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->status().code(), absl::StatusCode::kFailedPrecondition);
}

TEST_F(SigningCoreTest, MalformedRequestDenialIsAuditedAndCounted) {
  std::optional<absl::Status> got;
  core_->DenyAsync("dev", "dev", "malformed_request",
                   absl::InvalidArgumentError("kind: must be set"),
                   [&](absl::Status st) { got = st; });
  EXPECT_EQ(core_->in_flight(), 1);
  ASSERT_EQ(audit_.pending(), 1u);
  audit::AuditRecord rec = audit_.PendingRecord(0);
  EXPECT_EQ(rec.outcome, "denied");
  EXPECT_EQ(rec.kind, "malformed_request");
  EXPECT_EQ(rec.reason, "kind: must be set");
  audit_.CompleteNext(absl::DataLossError("disk gone"));
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(got->code(), absl::StatusCode::kUnavailable);  // not recorded
  EXPECT_EQ(core_->in_flight(), 0);
}

TEST_F(SigningCoreTest, DenialRecordsAreBounded) {
  token::TokenRequest huge = Request();
  huge.subject = std::string(4 << 20, 'x');
  huge.actor_chain.clear();
  for (int i = 0; i < 70; ++i)
    huge.actor_chain.push_back({std::string(2000, 'a'), "iss"});
  Result r;
  core_->SignAsync(
      "dev", std::string(5000, 'i'), huge, absl::InfiniteFuture(),
      [&](absl::StatusOr<token::MintedToken> m) { r = std::move(m); });
  ASSERT_EQ(audit_.pending(), 1u);
  audit::AuditRecord rec = audit_.PendingRecord(0);
  EXPECT_EQ(rec.outcome, "denied");
  EXPECT_LE(rec.sub.size(), kMaxAuditFieldBytes + 120);
  EXPECT_EQ(rec.sub.substr(0, 10), "xxxxxxxxxx");
  EXPECT_NE(rec.sub.find("[cut "), std::string::npos);
  EXPECT_LE(rec.issuer.size(), kMaxAuditFieldBytes + 120);
  EXPECT_EQ(rec.actor_chain.size(), kMaxAuditListItems);
  EXPECT_LE(rec.actor_chain[0].sub.size(), kMaxAuditFieldBytes + 120);
  EXPECT_NE(rec.reason.find("actor_chain: 70 entries, first 64 recorded, "
                            "sha256 of all "),
            std::string::npos)
      << rec.reason;
  EXPECT_LE(rec.reason.size(), kMaxAuditReasonBytes + 400);
  audit_.CompleteNext(absl::OkStatus());
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->status().code(), absl::StatusCode::kNotFound);
}

TEST_F(SigningCoreTest, BoundForAuditKeepsUtf8Whole) {
  audit::AuditRecord r;
  r.sub = std::string(1023, 'a') + "\xc3\xa9" + "tail";  // é across byte 1024
  audit::AuditRecord b = BoundForAudit(r);
  EXPECT_EQ(b.sub.substr(0, 1024), std::string(1023, 'a') + ".");
  EXPECT_EQ(BoundForAudit(audit::AuditRecord{}).sub, "");
}

// Issue 11 item 4: audit caps are never below the policy's input caps. Two
// 300-byte subjects that share a 256-byte prefix (the old cap) are recorded
// whole; two over-long ones that share the cap's prefix still differ, by the
// SHA-256 of the whole value beside the cut.
TEST_F(SigningCoreTest, DenialRecordsKeepWhatThePolicyAcceptsAndHashTheRest) {
  auto denied_sub = [this](const std::string& sub) {
    token::TokenRequest req = Request();
    req.subject = sub;
    req.audience = {"https://evil.example"};  // denied after sub passed
    Result r;
    Start(req, &r);
    EXPECT_EQ(audit_.pending(), 1u);
    audit::AuditRecord rec = audit_.PendingRecord(0);
    audit_.CompleteNext(absl::OkStatus());
    EXPECT_TRUE(r.has_value());
    EXPECT_EQ(r->status().code(), absl::StatusCode::kPermissionDenied);
    return rec.sub;
  };
  const std::string prefix(256, 'x');
  const std::string a = prefix + std::string(44, 'a');
  const std::string b = prefix + std::string(44, 'b');
  EXPECT_EQ(denied_sub(a), a);
  EXPECT_EQ(denied_sub(b), b);
  static_assert(kMaxAuditFieldBytes >= token::kMaxStringBytes);
  const std::string max(token::kMaxStringBytes, 'm');
  EXPECT_EQ(denied_sub(max), max);  // the longest sub the policy takes

  audit::AuditRecord r1, r2;
  r1.sub = std::string(kMaxAuditFieldBytes, 'y') + "one";
  r2.sub = std::string(kMaxAuditFieldBytes, 'y') + "two";
  const std::string cut1 = BoundForAudit(r1).sub;
  const std::string cut2 = BoundForAudit(r2).sub;
  EXPECT_NE(cut1, cut2);
  EXPECT_EQ(cut1, std::string(kMaxAuditFieldBytes, 'y') + "...[cut 3 bytes, sha256 " +
                      Sha256Hex(r1.sub) + "]");
  // Every list the policy bounds fits: 64 scopes, 64 actors (hard cap).
  audit::AuditRecord lists;
  lists.scope.assign(token::kMaxScopes, "s");
  lists.actor_chain.assign(token::kMaxHardChainDepth, {"a", ""});
  audit::AuditRecord kept = BoundForAudit(lists);
  EXPECT_EQ(kept.scope.size(), token::kMaxScopes);
  EXPECT_EQ(kept.actor_chain.size(), token::kMaxHardChainDepth);
  EXPECT_EQ(kept.reason, "");
}

// Issue 11 item 4: the record says which extra claims a token carries (names
// and a hash of their canonical JSON), and its cnf, txn, req_wl, TTL and
// hashes of rctx / tctx.
TEST_F(SigningCoreTest, SignedRecordCarriesExtraClaimsCnfTxnTtlAndContexts) {
  token::TokenRequest req = Request();
  req.kind = token::TokenKind::kTransactionToken;
  req.ttl_seconds = 0;  // the issuer default: the record says what it was
  req.cnf = token::Confirmation{"0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I", ""};
  req.txn = "97053963-771d-49cc-a4e3-20aad399c312";
  req.req_wl = "apigateway.example";
  req.rctx = {{"req_ip", "198.51.100.7"}, {"authn", "mfa"}};
  req.tctx = {{"action", "BUY"}};
  req.extra_claims = {{"tenant", "t1"}};
  Result r;
  Start(req, &r);
  ASSERT_EQ(audit_.pending(), 1u);
  audit::AuditRecord rec = audit_.PendingRecord(0);
  audit_.CompleteNext(absl::OkStatus());
  ASSERT_TRUE(r.has_value() && r->ok()) << r->status();
  EXPECT_EQ(rec.outcome, "signed");
  EXPECT_EQ(rec.ttl, (*r)->exp - (*r)->iat);
  EXPECT_EQ(rec.ttl, 60);  // DevConfig's default for transaction tokens
  EXPECT_EQ(rec.cnf_jkt, "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I");
  EXPECT_EQ(rec.cnf_x5t_s256, "");
  EXPECT_EQ(rec.txn, req.txn);
  EXPECT_EQ(rec.req_wl, "apigateway.example");
  // Canonical JSON: keys sorted, no whitespace.
  EXPECT_EQ(rec.rctx_sha256,
            Sha256Hex(R"({"authn":"mfa","req_ip":"198.51.100.7"})"));
  EXPECT_EQ(rec.tctx_sha256, Sha256Hex(R"({"action":"BUY"})"));
  EXPECT_EQ(rec.extra_claims, std::vector<std::string>{"tenant"});
  EXPECT_EQ(rec.extra_claims_sha256, Sha256Hex(R"({"tenant":"t1"})"));

  // An access token without any of them: nothing recorded for them.
  Result plain;
  Start(Request(), &plain);
  ASSERT_EQ(audit_.pending(), 1u);
  rec = audit_.PendingRecord(0);
  audit_.CompleteNext(absl::OkStatus());
  EXPECT_EQ(rec.ttl, 600);  // DevConfig's default for access tokens
  EXPECT_TRUE(rec.cnf_jkt.empty() && rec.txn.empty() && rec.req_wl.empty());
  EXPECT_TRUE(rec.rctx_sha256.empty() && rec.tctx_sha256.empty());
  EXPECT_TRUE(rec.extra_claims.empty() && rec.extra_claims_sha256.empty());
}

// Issue 11 item 4: extra claims fail closed, and the denial names the claim
// and the rule, is counted under one metric label, and records every
// extra claim that was offered.
TEST_F(SigningCoreTest, ExtraClaimOutsideTheAllowlistIsDeniedAndRecorded) {
  token::TokenRequest req = Request();
  req.ttl_seconds = 3000;
  req.extra_claims = {{"admin", true}, {"tenant", "t1"}};
  Result r;
  Start(req, &r);
  ASSERT_EQ(audit_.pending(), 1u);
  audit::AuditRecord rec = audit_.PendingRecord(0);
  audit_.CompleteNext(absl::OkStatus());
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->status().code(), absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(r->status().message(),
            "extra_claims.admin: not in the issuer's extra_claims allowlist; "
            "allowed: tenant");
  EXPECT_EQ(rec.outcome, "denied");
  EXPECT_EQ(rec.reason, r->status().message());
  EXPECT_EQ(rec.ttl, 3000);  // as requested
  EXPECT_EQ(rec.extra_claims, (std::vector<std::string>{"admin", "tenant"}));
  EXPECT_EQ(rec.extra_claims_sha256,
            Sha256Hex(R"({"admin":true,"tenant":"t1"})"));
  EXPECT_EQ(FieldOf(rec.reason), "extra_claims");
  EXPECT_EQ(FieldOf("extra_claims[\"cognito:groups\"]: not in ..."),
            "extra_claims");
}

TEST_F(SigningCoreTest, KeyAdminRefusedWhileAuditUnhealthy) {
  Rebuild(StrictConfig());
  audit_.set_health(absl::DataLossError("fdatasync failed"));
  absl::Status st = GateOf(core_.get()).Authorize("custodian-1", "DestroyKey", "dev",
                                          /*read_only=*/false);
  EXPECT_EQ(st.code(), absl::StatusCode::kUnavailable);
  EXPECT_NE(st.message().find("DestroyKey refused"), std::string::npos) << st;
  EXPECT_EQ(audit_.appends(), 0);
  audit_.set_health(absl::OkStatus());
  EXPECT_TRUE(GateOf(core_.get()).Authorize("custodian-1", "DestroyKey", "dev", false)
                  .ok());
}

TEST_F(SigningCoreTest, KeyAdminChangeIsRecordedBeforeItIsMade) {
  Rebuild(StrictConfig());
  ASSERT_TRUE(GateOf(core_.get()).RecordRequest("custodian-1", "RotateKey", "dev").ok());
  ASSERT_FALSE(audit_.durable().empty());
  EXPECT_EQ(audit_.durable().back().kind, "key_admin.RotateKey");
  EXPECT_EQ(audit_.durable().back().outcome, "requested");
  audit_.set_fail_append(absl::InternalError("disk full"));
  absl::Status st = GateOf(core_.get()).RecordRequest("custodian-1", "RotateKey", "dev");
  EXPECT_EQ(st.code(), absl::StatusCode::kUnavailable);
  EXPECT_NE(st.message().find("nothing changed"), std::string::npos) << st;
  audit_.set_fail_append(absl::OkStatus());
}

TEST_F(SigningCoreTest, CustodianActsOnlyForItsOwnIssuers) {
  Rebuild(StrictConfig());
  EXPECT_TRUE(
      GateOf(core_.get()).Authorize("custodian-1", "RotateKey", "dev", false).ok());
  absl::Status st =
      GateOf(core_.get()).Authorize("custodian-other", "DestroyKey", "dev", false);
  EXPECT_EQ(st.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(st.message(),
            "issuer: caller \"custodian-other\" may not act as custodian for "
            "issuer \"dev\"; its issuers are [other]");
  ASSERT_FALSE(audit_.durable().empty());
  EXPECT_EQ(audit_.durable().back().kind, "key_admin.DestroyKey");
  EXPECT_EQ(audit_.durable().back().caller, "custodian-other");
  EXPECT_EQ(audit_.durable().back().outcome, "denied");
}

TEST_F(SigningCoreTest, KeyAdminDenialAndOutcomeAreRecordedOrFail) {
  Rebuild(StrictConfig());
  // Denied and recorded durably.
  absl::Status st =
      GateOf(core_.get()).Authorize("signer-1", "RotateKey", "dev", false);
  EXPECT_EQ(st.code(), absl::StatusCode::kPermissionDenied);
  ASSERT_EQ(audit_.durable().size(), 1u);
  EXPECT_EQ(audit_.durable()[0].kind, "key_admin.RotateKey");
  EXPECT_EQ(audit_.durable()[0].outcome, "denied");
  EXPECT_TRUE(GateOf(core_.get()).Authorize("auditor-1", "ListKeys", "dev", true).ok());

  // The log fails after the health check: denial not recorded -> Unavailable.
  audit_.set_fail_append(absl::InternalError("disk full"));
  st = GateOf(core_.get()).Authorize("signer-1", "RotateKey", "dev", false);
  EXPECT_EQ(st.code(), absl::StatusCode::kUnavailable) << st;
  // A done operation whose outcome is not recorded -> Unavailable, says so.
  st = GateOf(core_.get()).RecordOutcome("custodian-1", "DestroyKey", "dev", "kid-1",
                         absl::OkStatus());
  EXPECT_EQ(st.code(), absl::StatusCode::kUnavailable);
  EXPECT_NE(st.message().find("DestroyKey not recorded"), std::string::npos);
  EXPECT_NE(st.message().find("succeeded"), std::string::npos) << st;
  audit_.set_fail_append(absl::OkStatus());
  EXPECT_TRUE(GateOf(core_.get()).RecordOutcome("custodian-1", "DestroyKey", "dev", "kid-1",
                                absl::OkStatus())
                  .ok());
  EXPECT_EQ(audit_.durable().back().outcome, "done");
}

TEST_F(SigningCoreTest, CheckSignerCallerNeedsAConfiguredSigner) {
  EXPECT_TRUE(core_->CheckSignerCaller("anyone").ok());  // dev mode
  Rebuild(StrictConfig());
  EXPECT_TRUE(core_->CheckSignerCaller("signer-1").ok());
  EXPECT_EQ(core_->CheckSignerCaller("stranger").code(),
            absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(core_->CheckSignerCaller("custodian-1").code(),
            absl::StatusCode::kPermissionDenied);
}

TEST(WorkPoolTest, SigningCoreBatchCountsExactlyAgainstMaxQueue) {
  WorkPool pool(1, 4);
  std::promise<void> release;
  std::shared_future<void> gate = release.get_future().share();
  std::atomic<int> ran{0};
  ASSERT_TRUE(pool.TrySubmit([gate, &ran] {
    gate.wait();
    ++ran;
  }));
  auto group = [&ran](int n) {
    std::vector<std::function<void()>> v;
    for (int i = 0; i < n; ++i) v.emplace_back([&ran] { ++ran; });
    return v;
  };
  EXPECT_FALSE(pool.TrySubmitAll(group(4)));  // 1 + 4 > 4
  EXPECT_EQ(pool.depth(), 1);
  EXPECT_TRUE(pool.TrySubmitAll(group(3)));   // 1 + 3 == 4
  EXPECT_EQ(pool.depth(), 4);
  EXPECT_FALSE(pool.TrySubmit([] {}));
  EXPECT_FALSE(pool.TrySubmitAll(group(1)));
  release.set_value();
  pool.Drain();
  EXPECT_EQ(ran.load(), 4);
  WorkPool empty(1, 4);
  EXPECT_FALSE(empty.TrySubmitAll(group(5)));  // never fits
  EXPECT_EQ(empty.depth(), 0);
}

}  // namespace
}  // namespace tokensign::service
