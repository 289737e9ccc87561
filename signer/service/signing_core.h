// SigningCore: the request pipeline of tokensignd without any gRPC in it.
//
// Contract: SignAsync() runs, on the calling (worker) thread, role check ->
// deadline check -> policy + mint (token::Mint with the issuer's active key
// from the KeysetManager) -> deadline re-check, then hands the audit record to
// AuditLog::AppendAsync and returns without waiting for fdatasync; `done` gets
// the minted token once its record is durable (on the audit writer thread), so
// many requests share one fdatasync. Every decision is audited: denials (role,
// unknown issuer, policy: InvalidArgument / PermissionDenied /
// FailedPrecondition, any other Mint failure) are audited the same way and
// `done` gets the denial once that record is durable. A token minted after its
// deadline passed (Mint waited on the HSM session pool or the HSM) is never
// released: it is audited with outcome "withheld" (reason "deadline passed
// during signing", kid/jti/token_sha256 kept) and `done` gets
// DeadlineExceeded. Errors that need no audit record (deadline passed before
// signing: nothing was decided; no active key; HSM) call `done` inline. `done`
// runs exactly once and must be quick (it runs on the audit writer thread: no
// blocking, no Append). Sign() is the blocking form (SignAsync + wait).
// Not covered: the audit group commit itself may finish after the deadline; the
// record then says "signed" and gRPC drops the late answer.
// Errors are absl::Status: PermissionDenied (caller role/issuer), NotFound
// (unknown issuer), FailedPrecondition (no active key, unusable issuer policy),
// InvalidArgument / PermissionDenied from the policy, DeadlineExceeded,
// Unavailable when the audit log cannot make the record durable (no token is
// released).
//
// Every record goes to the audit log through DecisionLog (decision_record.h):
// denials bounded (BoundForAudit), built by RecordFor. Caller checks are
// PolicySnapshot's (policy_snapshot.h); the KeyAdmin calls' gate is
// KeyAdminGate (key_admin_gate.h). The policy (issuers and callers) is an
// immutable snapshot swapped atomically by SetPolicy (SIGHUP); a request uses
// the snapshot it started with.
//
// Thread-safety: all methods are safe from many threads at once.
#ifndef TOKENSIGN_SIGNER_SERVICE_SIGNING_CORE_H_
#define TOKENSIGN_SIGNER_SERVICE_SIGNING_CORE_H_

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>

#include "absl/functional/any_invocable.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "signer/audit/audit_log.h"
#include "signer/keyset/keyset_manager.h"
#include "signer/service/config.h"
#include "signer/service/decision_record.h"
#include "signer/service/policy_snapshot.h"
#include "signer/token/exchange.h"
#include "signer/token/minter.h"
#include "signer/token/policy.h"
#include "signer/token/status_list.h"
#include "signer/token/token_request.h"

namespace tokensign::service {

class Metrics;

class SigningCore {
 public:
  using Clock = std::function<absl::Time()>;

  // `metrics` may be null. Keys, audit and metrics must outlive the core.
  SigningCore(std::shared_ptr<const PolicySnapshot> policy,
              keyset::KeysetManager* keys, audit::AuditLog* audit,
              Metrics* metrics, Clock clock = absl::Now);

  void SetPolicy(std::shared_ptr<const PolicySnapshot> policy) {
    policy_.store(policy);
  }
  std::shared_ptr<const PolicySnapshot> policy() const {
    return policy_.load();
  }

  using SignDone =
      absl::AnyInvocable<void(absl::StatusOr<token::MintedToken>) &&>;

  // The whole signing pipeline for one token (see the file comment); `done`
  // gets the token only after its audit record is durable.
  void SignAsync(std::string_view caller, std::string_view issuer,
                 const token::TokenRequest& req, absl::Time deadline,
                 SignDone done);
  // Blocking form of SignAsync (waits for `done`). Never call it from a `done`
  // callback or the audit writer thread.
  absl::StatusOr<token::MintedToken> Sign(std::string_view caller,
                                          std::string_view issuer,
                                          const token::TokenRequest& req,
                                          absl::Time deadline);

  // SignAsync calls whose `done` has not run yet.
  int in_flight() const;
  // Blocks until in_flight() is 0 (shutdown: after the work pool has drained,
  // so no new SignAsync starts; the audit log must still be open).
  void WaitIdle();

  // Tells the audit log that `delta` more (or, negative, fewer) sign requests
  // are queued for SignAsync, so its group commit waits for their records
  // while they are coming and syncs at once when none are
  // (AuditLog::ExpectRecords). The service calls +n when it queues requests,
  // -n if the queue refuses them, and -1 as each one starts.
  void ExpectSigns(int delta) { audit_->ExpectRecords(delta); }

  // OK when `caller` may call the signing API at all (dev: anyone; else a
  // configured caller with the signer role); per-issuer rights are checked per
  // request by SignAsync. Used to refuse a whole SignTokens call once.
  absl::Status CheckSignerCaller(std::string_view caller) const {
    return policy()->CheckCallerRole(caller, Role::kSigner);
  }
  // Audits a decision made before a TokenRequest exists (malformed request,
  // refused batch, unauthorized caller of a whole call) as "denied" with
  // kind `kind`, bounded like every denial; `done` gets `why` once the record
  // is durable, or Unavailable if it could not be written. Counted in
  // in_flight() like SignAsync. Never blocks.
  void DenyAsync(std::string_view caller, std::string_view issuer,
                 std::string_view kind, absl::Status why,
                 absl::AnyInvocable<void(absl::Status) &&> done);

  // GetJwks: JWKS are public (the HTTP listener serves them to anyone), so any
  // authenticated, configured caller may read any issuer's JWKS without a role
  // (dev: anyone); unknown caller -> PermissionDenied, unknown issuer ->
  // NotFound. Not audited (not a decision about keys or tokens).
  absl::StatusOr<std::string> Jwks(std::string_view caller,
                                   std::string_view issuer);

  // The route of every record into the audit log (KeyAdminGate, AuditAdmin
  // and the daemon's keyset events use it too).
  DecisionLog& decisions() { return decisions_; }
  absl::Time Now() const { return clock_(); }

  keyset::KeysetManager& keys() { return *keys_; }

  // Token exchange (token/exchange.h), in signing_core_exchange.cc: role
  // signer for `issuer`, deadline, then the subject token verified by
  // signature against the keys of `issuer` and of its
  // exchange.trusted_parent_issuers (matched by iss) that verify tokens now
  // (KeysetManager::VerificationKeyFor: never withdrawn or destroyed), with
  // server.clock_skew_seconds of leeway; then the child derived, minted with
  // the issuer's active key and released like SignAsync's token once its
  // record is durable. The record carries parent_jti and parent_token_sha256
  // from the verified parent (never from the caller), the inherited status
  // reference, and both keys when cnf was rebound. Every refusal is audited
  // "denied" (kind = the requested kind; sub and client_id once the parent
  // verified) and names the rule.
  void ExchangeAsync(std::string_view caller, std::string_view issuer,
                     std::string subject_token, token::ExchangeRequest req,
                     absl::Time deadline, SignDone done);

  using StatusListDone =
      absl::AnyInvocable<void(absl::StatusOr<token::SignedStatusList>) &&>;
  // SignStatusList (token/status_list.h): role status-publisher for
  // `issuer`; signed with its active key; audited as kind "status_list" with
  // status_uri, status_list_size, status_list_set, exp and token_sha256, and
  // released once that record is durable. Refusals are audited "denied".
  void SignStatusListAsync(std::string_view caller, std::string_view issuer,
                           token::StatusListRequest req, absl::Time deadline,
                           StatusListDone done);

 private:
  // Audits the denial (bounded) asynchronously; `done` gets `why` once the
  // record is durable (Unavailable if it could not be written).
  void AuditDeniedAsync(std::string_view caller, std::string_view issuer,
                        const token::TokenRequest& req, absl::Status why,
                        SignDone done);
  using IssuerEntry = std::map<std::string, IssuerConfig>::const_iterator;
  // The checks every signing call makes first, in this order: `issuer` is
  // configured, `caller` holds `role` for it, `now` is before `deadline`.
  // Returns the issuer's entry in `snap` (its key is the issuer's label,
  // bounded: a configured issuer; alive as long as `snap`), or the refusal to
  // audit. A role refusal of a signer is counted in the metrics.
  absl::StatusOr<IssuerEntry> Admit(const PolicySnapshot& snap,
                                    std::string_view caller,
                                    std::string_view issuer, Role role,
                                    absl::Time now, absl::Time deadline) const;
  // Counts a refusal of Mint or Exchange in the metrics when it is a policy
  // decision (InvalidArgument, PermissionDenied, FailedPrecondition), not an
  // HSM failure or a withheld signature.
  void CountPolicyDenial(const std::string& label,
                         const absl::Status& why) const;
  // The end of SignAsync and ExchangeAsync: puts the minted token's facts in
  // `r`, withholds a token minted after `deadline`, otherwise releases it to
  // `done` once `r` is durable (counting latency since `start` and the token
  // for `*label`, which `snap` keeps alive). `bound`: pass the signed record
  // through BoundForAudit (exchange records carry parent facts).
  void ReleaseWhenAudited(audit::AuditRecord r, token::MintedToken minted,
                          std::shared_ptr<const PolicySnapshot> snap,
                          const std::string* label, token::TokenKind kind,
                          std::chrono::steady_clock::time_point start,
                          absl::Time deadline, SignDone done,
                          bool bound = false);
  void Enter();
  // Decrements in_flight_ and wakes WaitIdle.
  void Done();

  std::atomic<std::shared_ptr<const PolicySnapshot>> policy_;
  keyset::KeysetManager* keys_;
  audit::AuditLog* audit_;
  DecisionLog decisions_;
  Metrics* metrics_;
  Clock clock_;
  mutable std::mutex idle_mu_;
  std::condition_variable idle_cv_;
  int in_flight_ = 0;  // guarded by idle_mu_
};

}  // namespace tokensign::service

#endif  // TOKENSIGN_SIGNER_SERVICE_SIGNING_CORE_H_
