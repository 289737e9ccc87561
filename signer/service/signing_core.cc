#include "signer/service/signing_core.h"

#include <chrono>
#include <future>
#include <utility>

#include "absl/strings/str_cat.h"
#include "signer/service/http/metrics.h"

namespace tokensign::service {

SigningCore::SigningCore(std::shared_ptr<const PolicySnapshot> policy,
                         keyset::KeysetManager* keys, audit::AuditLog* audit,
                         Metrics* metrics, Clock clock)
    : policy_(std::move(policy)),
      keys_(keys),
      audit_(audit),
      decisions_(audit),
      metrics_(metrics),
      clock_(std::move(clock)) {}

void SigningCore::AuditDeniedAsync(std::string_view caller,
                                   std::string_view issuer,
                                   const token::TokenRequest& req,
                                   absl::Status why, SignDone done) {
  audit::AuditRecord r = RecordFor(caller, issuer, req, clock_());
  r.outcome = "denied";
  r.reason = std::string(why.message());
  decisions_.SettleAsync<token::MintedToken>(std::move(r), std::move(why),
                                             std::move(done));
}

void SigningCore::DenyAsync(std::string_view caller, std::string_view issuer,
                            std::string_view kind, absl::Status why,
                            absl::AnyInvocable<void(absl::Status) &&> done) {
  Enter();
  audit::AuditRecord r = DenialRecord(caller, issuer, kind, why, clock_());
  decisions_.SettleAsync<token::MintedToken>(
      std::move(r), std::move(why),
      [this, done = std::move(done)](
          absl::StatusOr<token::MintedToken> result) mutable {
        std::move(done)(result.status());
        Done();
      });
}

absl::StatusOr<SigningCore::IssuerEntry> SigningCore::Admit(
    const PolicySnapshot& snap, std::string_view caller,
    std::string_view issuer, Role role, absl::Time now,
    absl::Time deadline) const {
  auto it = snap.config.issuers.find(std::string(issuer));
  if (it == snap.config.issuers.end())
    return snap.UnknownIssuer(caller, issuer);
  if (absl::Status st = snap.CheckRole(caller, role, issuer); !st.ok()) {
    if (metrics_ != nullptr)
      metrics_->CountDenied(it->first, FieldOf(std::string(st.message())));
    return st;
  }
  // Refusals before signing are decisions too: audited like policy denials.
  if (now >= deadline) {
    return absl::DeadlineExceededError(
        "deadline passed before signing; not signed");
  }
  return it;
}

void SigningCore::CountPolicyDenial(const std::string& label,
                                    const absl::Status& why) const {
  const absl::StatusCode code = why.code();
  if (metrics_ != nullptr && (code == absl::StatusCode::kInvalidArgument ||
                              code == absl::StatusCode::kPermissionDenied ||
                              code == absl::StatusCode::kFailedPrecondition)) {
    metrics_->CountDenied(label, FieldOf(std::string(why.message())));
  }
}

void SigningCore::Enter() {
  std::lock_guard lock(idle_mu_);
  ++in_flight_;
}

void SigningCore::Done() {
  std::lock_guard lock(idle_mu_);
  if (--in_flight_ == 0) idle_cv_.notify_all();
}

int SigningCore::in_flight() const {
  std::lock_guard lock(idle_mu_);
  return in_flight_;
}

void SigningCore::WaitIdle() {
  std::unique_lock lock(idle_mu_);
  idle_cv_.wait(lock, [this] { return in_flight_ == 0; });
}

void SigningCore::SignAsync(std::string_view caller, std::string_view issuer,
                            const token::TokenRequest& req, absl::Time deadline,
                            SignDone user_done) {
  Enter();
  // Runs the caller's callback exactly once, then leaves the in-flight count.
  SignDone done = [this, user_done = std::move(user_done)](
                      absl::StatusOr<token::MintedToken> result) mutable {
    std::move(user_done)(std::move(result));
    Done();
  };
  std::shared_ptr<const PolicySnapshot> snap = policy();
  const absl::Time now = clock_();
  absl::StatusOr<IssuerEntry> it =
      Admit(*snap, caller, issuer, Role::kSigner, now, deadline);
  if (!it.ok()) {
    AuditDeniedAsync(caller, issuer, req, it.status(), std::move(done));
    return;
  }
  const std::string& issuer_label = (*it)->first;
  auto key = keys_->ActiveKey(issuer);
  if (!key.ok()) {
    AuditDeniedAsync(caller, issuer, req, key.status(), std::move(done));
    return;
  }
  auto start = std::chrono::steady_clock::now();
  // The decision record follows within one Mint: the audit writer may wait for
  // it rather than sync a commit without it (and syncs at once when no token
  // is being signed).
  audit_->ExpectRecords(+1);
  absl::StatusOr<token::MintedToken> minted =
      token::Mint((*it)->second.policy, **key, req, now);
  audit_->ExpectRecords(-1);
  if (!minted.ok()) {
    // Every Mint failure is a decision: policy (InvalidArgument,
    // PermissionDenied, FailedPrecondition) or a withheld signature.
    CountPolicyDenial(issuer_label, minted.status());
    AuditDeniedAsync(caller, issuer, req, minted.status(), std::move(done));
    return;
  }
  // Mint may have waited (HSM session pool, HSM): a token minted after the
  // deadline is never released, and the log says so.
  ReleaseWhenAudited(RecordFor(caller, issuer, req, now), *std::move(minted),
                     std::move(snap), &issuer_label, req.kind, start, deadline,
                     std::move(done));
}

void SigningCore::ReleaseWhenAudited(
    audit::AuditRecord r, token::MintedToken minted,
    std::shared_ptr<const PolicySnapshot> snap, const std::string* label,
    token::TokenKind kind, std::chrono::steady_clock::time_point start,
    absl::Time deadline, SignDone done, bool bound) {
  AddMintedFacts(minted, &r);
  if (clock_() >= deadline) {
    r.outcome = "withheld";
    r.reason = "deadline passed during signing";
    decisions_.SettleAsync<token::MintedToken>(
        std::move(r),
        absl::DeadlineExceededError(
            "deadline passed during signing; token withheld"),
        std::move(done));
    return;
  }
  r.outcome = "signed";
  // The writer thread completes the request; `snap` keeps *label alive.
  auto release = [this, snap = std::move(snap), label, kind, start,
                  minted = std::move(minted),
                  done = std::move(done)](absl::Status st) mutable {
    if (!st.ok()) {
      std::move(done)(absl::UnavailableError(absl::StrCat(
          "audit: record not durable, token withheld: ", st.message())));
      return;
    }
    if (metrics_ != nullptr) {
      std::chrono::duration<double> took =
          std::chrono::steady_clock::now() - start;
      metrics_->ObserveSignLatency(took.count());
      metrics_->CountTokenSigned(*label, token::TokenKindName(kind));
    }
    std::move(done)(std::move(minted));
  };
  decisions_.RecordAsync(std::move(r), std::move(release),
                         bound ? DecisionLog::Bounding::kBounded
                               : DecisionLog::Bounding::kAsBuilt);
}

absl::StatusOr<token::MintedToken> SigningCore::Sign(
    std::string_view caller, std::string_view issuer,
    const token::TokenRequest& req, absl::Time deadline) {
  std::promise<absl::StatusOr<token::MintedToken>> result;
  std::future<absl::StatusOr<token::MintedToken>> future = result.get_future();
  SignAsync(caller, issuer, req, deadline,
            [&result](absl::StatusOr<token::MintedToken> r) {
              result.set_value(std::move(r));
            });
  return future.get();
}

absl::StatusOr<std::string> SigningCore::Jwks(std::string_view caller,
                                              std::string_view issuer) {
  if (absl::Status st = policy()->CheckKnownCaller(caller); !st.ok())
    return st;
  return keys_->Jwks(issuer);
}

}  // namespace tokensign::service
