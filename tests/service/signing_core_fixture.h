// Test support for SigningCore tests: FakeAudit, an AuditLog whose
// AppendAsync completions are held until the test releases them (Append and
// health can be made to fail), and SigningCoreTest, a fixture with this
// program's own SoftHSM token, a "dev" issuer with an ES256 key and a core in
// dev mode. Thread-safety: FakeAudit is safe from many threads; the fixture is
// used by one test thread.
#ifndef TOKENSIGN_TESTS_SERVICE_SIGNING_CORE_FIXTURE_H_
#define TOKENSIGN_TESTS_SERVICE_SIGNING_CORE_FIXTURE_H_

#include <gtest/gtest.h>

#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "crypto/algorithm.h"
#include "hsm/hsm.h"
#include "hsm/provider/provider_keys.h"
#include "signer/service/signing_core.h"
#include "tests/service/hsm_test_env.h"
#include "tests/support/sha256_hex.h"
#include "tests/support/softhsm_token.h"

namespace tokensign::service {

// Holds AppendAsync completions until Complete(); Append (and AppendAsync in
// auto mode) completes on another thread, as the real writer thread does.
class FakeAudit : public audit::AuditLog {
 public:
  using Done = absl::AnyInvocable<void(absl::Status) &&>;
  absl::Status Append(const audit::AuditRecord& r) override {
    std::lock_guard l(mu_);
    ++appends_;
    if (!fail_append_.ok()) return fail_append_;
    durable_.push_back(r);
    return absl::OkStatus();
  }
  absl::Status health() const override {
    std::lock_guard l(mu_);
    return health_;
  }
  void AppendAsync(const audit::AuditRecord& r, Done done) override {
    if (auto_complete()) {
      std::thread([this, r, done = std::move(done)]() mutable {
        std::move(done)(Append(r));
      }).join();
      return;
    }
    std::lock_guard l(mu_);
    pending_.push_back({r, std::move(done)});
  }
  bool torn_tail_repaired() const override { return false; }
  // The rest of the AuditLog contract: a fresh, checkpoint-less log.
  void ExpectRecords(int /*delta*/) override {}
  int64_t torn_tail_bytes() const override { return 0; }
  int64_t last_durable_seq() const override { return 0; }
  audit::AuditLogStats stats() const override { return {}; }
  absl::Status Checkpoint() override {
    return absl::FailedPreconditionError("audit log: no checkpoint key");
  }
  std::string log_id() const override { return std::string(); }
  absl::Status AcknowledgeLoss(std::string_view, std::string_view) override {
    return absl::FailedPreconditionError(
        "audit log: nothing to acknowledge (the log was not refused)");
  }

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
  // Under mu_: a test sets it on its thread while the server's threads append
  // (TSan saw the write and a handler's read ordered only through gRPC).
  void set_auto_complete(bool on) {
    std::lock_guard l(mu_);
    auto_complete_ = on;
  }
  bool auto_complete() const {
    std::lock_guard l(mu_);
    return auto_complete_;
  }
  // Append fails with `st` (health stays as set by set_health).
  void set_fail_append(absl::Status st) {
    std::lock_guard l(mu_);
    fail_append_ = std::move(st);
  }
  void set_health(absl::Status st) {
    std::lock_guard l(mu_);
    health_ = std::move(st);
  }
  int appends() {
    std::lock_guard l(mu_);
    return appends_;
  }
  std::vector<audit::AuditRecord> durable() {
    std::lock_guard l(mu_);
    return durable_;
  }

 private:
  struct Pending {
    audit::AuditRecord record;
    Done done;
  };
  mutable std::mutex mu_;
  std::deque<Pending> pending_;
  absl::Status fail_append_;
  absl::Status health_;
  int appends_ = 0;
  std::vector<audit::AuditRecord> durable_;
  bool auto_complete_ = false;
};

using ::tokensign::testing::Sha256Hex;

using Result = std::optional<absl::StatusOr<token::MintedToken>>;

class SigningCoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    tokensign::testing::OpenHsmWithProvider(&hsm_, &provider_);
    keys_ = std::make_unique<keyset::KeysetManager>(
        hsm_, [p = provider_.get()](std::string_view id) {
          return p->PrivateKey(id);
        });
    ASSERT_TRUE(keys_->Load({"dev"}).ok());
    ASSERT_TRUE(keys_->EnsureActiveKey("dev", crypto::SignAlgorithm::kES256).ok());
    core_ = std::make_unique<SigningCore>(
        std::make_shared<const PolicySnapshot>(
            DevConfig("/nonexistent", "unused.so")),
        keys_.get(), &audit_, nullptr);
  }

  // Replaces the core with one on `cfg` and `clock`.
  void Rebuild(Config cfg, SigningCore::Clock clock = absl::Now) {
    core_ = std::make_unique<SigningCore>(
        std::make_shared<const PolicySnapshot>(std::move(cfg)), keys_.get(),
        &audit_, nullptr, std::move(clock));
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

}  // namespace tokensign::service

#endif  // TOKENSIGN_TESTS_SERVICE_SIGNING_CORE_FIXTURE_H_
