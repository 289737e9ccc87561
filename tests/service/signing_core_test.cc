// SigningCore's asynchronous pipeline with a fake audit log that holds each
// AppendAsync completion until the test releases it: SignAsync returns before
// the record is durable (the worker never waits for fdatasync), the token is
// released only after an OK completion, an audit failure yields UNAVAILABLE
// and no token, denials are audited asynchronously too, and the blocking Sign
// is built on SignAsync. Keys: this program's own SoftHSM token.
#include "signer/service/signing_core.h"

#include <gtest/gtest.h>
#include <openssl/evp.h>

#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>

#include "hsm/hsm.h"
#include "hsm/provider/provider_keys.h"
#include "tests/support/softhsm_token.h"

namespace tokensign::service {
namespace {

// Holds AppendAsync completions until Complete(); Append (and AppendAsync in
// auto mode) completes on another thread, as the real writer thread does.
class FakeAudit : public audit::AuditLog {
 public:
  using Done = absl::AnyInvocable<void(absl::Status) &&>;
  absl::Status Append(const audit::AuditRecord& r) override {
    std::lock_guard l(mu_);
    durable_.push_back(r);
    return absl::OkStatus();
  }
  void AppendAsync(const audit::AuditRecord& r, Done done) override {
    if (auto_complete_) {
      std::thread([this, r, done = std::move(done)]() mutable {
        std::move(done)(Append(r));
      }).join();
      return;
    }
    std::lock_guard l(mu_);
    pending_.push_back({r, std::move(done)});
  }
  bool torn_tail_repaired() const override { return false; }

  size_t pending() {
    std::lock_guard l(mu_);
    return pending_.size();
  }
  audit::AuditRecord PendingRecord(size_t i) {
    std::lock_guard l(mu_);
    return pending_[i].record;
  }
  // Completes the oldest pending append with `st` (on this thread).
  void CompleteNext(absl::Status st) {
    Pending p;
    {
      std::lock_guard l(mu_);
      p = std::move(pending_.front());
      pending_.pop_front();
      if (st.ok()) durable_.push_back(p.record);
    }
    std::move(p.done)(st);
  }
  void set_auto_complete(bool on) { auto_complete_ = on; }

 private:
  struct Pending {
    audit::AuditRecord record;
    Done done;
  };
  std::mutex mu_;
  std::deque<Pending> pending_;
  std::vector<audit::AuditRecord> durable_;
  bool auto_complete_ = false;
};

std::string Sha256Hex(const std::string& data) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(data.data(), data.size(), md, &len, EVP_sha256(), nullptr);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (unsigned int i = 0; i < len; ++i) {
    out.push_back(kHex[md[i] >> 4]);
    out.push_back(kHex[md[i] & 15]);
  }
  return out;
}

using Result = std::optional<absl::StatusOr<token::MintedToken>>;

class SigningCoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto hsm = hsm::Hsm::Open(tokensign::testing::GlobalToken().config());
    ASSERT_TRUE(hsm.ok()) << hsm.status();
    hsm_ = std::shared_ptr<hsm::Hsm>(std::move(*hsm));
    auto provider = hsm::provider::HsmKeyProvider::Create(hsm_);
    ASSERT_TRUE(provider.ok()) << provider.status();
    provider_ = std::move(*provider);
    keys_ = std::make_unique<keyset::KeysetManager>(
        hsm_, [p = provider_.get()](std::string_view id) {
          return p->PrivateKey(id);
        });
    ASSERT_TRUE(keys_->Load({"dev"}).ok());
    ASSERT_TRUE(keys_->EnsureActiveKey("dev", hsm::SignAlgorithm::kES256).ok());
    core_ = std::make_unique<SigningCore>(
        std::make_shared<const PolicySnapshot>(
            DevConfig("/nonexistent", "unused.so")),
        keys_.get(), &audit_, nullptr);
  }

  token::TokenRequest Request() {
    token::TokenRequest r;
    r.subject = "alice";
    r.client_id = "app";
    r.audience = {"https://api.example"};
    r.scope = {"read"};
    r.actor_chain = {{"agent-7", ""}};
    return r;
  }

  // Starts SignAsync; the outcome lands in *out when `done` runs.
  void Start(const token::TokenRequest& req, Result* out,
             absl::Time deadline = absl::InfiniteFuture()) {
    core_->SignAsync(
        "dev", "dev", req, deadline,
        [out](absl::StatusOr<token::MintedToken> r) { *out = std::move(r); });
  }

  FakeAudit audit_;
  std::shared_ptr<hsm::Hsm> hsm_;
  std::unique_ptr<hsm::provider::HsmKeyProvider> provider_;
  std::unique_ptr<keyset::KeysetManager> keys_;
  std::unique_ptr<SigningCore> core_;
};

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

TEST_F(SigningCoreTest, UnknownIssuerAuditedAndPassedDeadlineNotSigned) {
  Result unknown;
  core_->SignAsync(
      "dev", "nope", Request(), absl::InfiniteFuture(),
      [&](absl::StatusOr<token::MintedToken> r) { unknown = std::move(r); });
  ASSERT_EQ(audit_.pending(), 1u);
  audit_.CompleteNext(absl::OkStatus());
  ASSERT_TRUE(unknown.has_value());
  EXPECT_EQ(unknown->status().code(), absl::StatusCode::kNotFound);

  Result late;
  Start(Request(), &late, absl::Now() - absl::Seconds(1));
  ASSERT_TRUE(late.has_value());  // inline: nothing to audit
  EXPECT_EQ(late->status().code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_EQ(audit_.pending(), 0u);
  EXPECT_EQ(core_->in_flight(), 0);
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
