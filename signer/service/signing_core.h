// SigningCore: the request pipeline of tokensignd without any gRPC in it.
//
// Contract: Sign() runs role check -> deadline check -> policy + mint
// (token::Mint with the issuer's active key from the KeysetManager) -> audit
// Append (durable before it returns) and returns the minted token. Denied
// decisions (role, policy) are audited too; a request whose deadline has passed
// is not signed (DeadlineExceeded) and not audited. Errors are absl::Status:
// PermissionDenied (caller role/issuer), NotFound (unknown issuer),
// FailedPrecondition (no active key), InvalidArgument / PermissionDenied from
// the policy, Unavailable when the audit log cannot make the record durable (no
// token is released). Authorize*() decide and audit the KeyAdmin / GetJwks
// calls. The policy (issuers and callers) is an immutable snapshot swapped
// atomically by SetPolicy (SIGHUP); a request uses the snapshot it started
// with.
//
// Thread-safety: all methods are safe from many threads at once.
#ifndef TOKENSIGN_SIGNER_SERVICE_SIGNING_CORE_H_
#define TOKENSIGN_SIGNER_SERVICE_SIGNING_CORE_H_

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "signer/audit/audit_log.h"
#include "signer/keyset/keyset_manager.h"
#include "signer/service/config.h"
#include "signer/token/minter.h"
#include "signer/token/token_request.h"

namespace tokensign::service {

class Metrics;

// Callers and issuer policies as of one config load.
struct PolicySnapshot {
  explicit PolicySnapshot(Config c) : config(std::move(c)) {}
  Config config;
  // The caller's config entry, or nullptr when unknown.
  const CallerConfig* FindCaller(std::string_view id) const;
  // OK when `caller` has `role` (for kSigner: also for `issuer`).
  absl::Status CheckRole(std::string_view caller, Role role,
                         std::string_view issuer) const;
};

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

  // The whole signing pipeline for one token (see the file comment).
  absl::StatusOr<token::MintedToken> Sign(std::string_view caller,
                                          std::string_view issuer,
                                          const token::TokenRequest& req,
                                          absl::Time deadline);

  // GetJwks: any configured caller (dev: anyone); NotFound for an unknown
  // issuer.
  absl::StatusOr<std::string> Jwks(std::string_view caller,
                                   std::string_view issuer);

  // KeyAdmin: custodian (ListKeys: custodian or auditor). A denial is audited.
  absl::Status AuthorizeAdmin(std::string_view caller, std::string_view method,
                              std::string_view issuer, bool read_only);
  // Audits the outcome of a KeyAdmin operation (kind "key_admin.<method>").
  void AuditAdmin(std::string_view caller, std::string_view method,
                  std::string_view issuer, std::string_view kid,
                  const absl::Status& outcome);

  keyset::KeysetManager& keys() { return *keys_; }

 private:
  absl::Status AuditDenied(std::string_view caller, std::string_view issuer,
                           const token::TokenRequest& req,
                           const absl::Status& why);

  std::atomic<std::shared_ptr<const PolicySnapshot>> policy_;
  keyset::KeysetManager* keys_;
  audit::AuditLog* audit_;
  Metrics* metrics_;
  Clock clock_;
};

// The field a policy message names ("act.act.sub: chain depth ..." ->
// "act.act.sub"), or "" when the message does not start with a field path.
std::string FieldOf(std::string_view message);

}  // namespace tokensign::service

#endif  // TOKENSIGN_SIGNER_SERVICE_SIGNING_CORE_H_
