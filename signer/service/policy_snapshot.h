// PolicySnapshot: the callers and issuers of one config load, and every check
// of who may call what. All caller checks of the service live here (the gRPC
// handlers, SigningCore, the KeyAdmin gate and AuditAdmin only call them), so
// one file says which role each call needs and names the rule it refuses by.
//
// Contract: in dev mode (config.dev) every caller passes every check. Outside
// it a caller must be a configured caller (CallerConfig.id matched exactly
// against the mTLS identity, see grpc_convert.h); every role is scoped to the
// caller's issuers ("*" = all), so a custodian of one issuer cannot touch
// another's keys. Refusals are PermissionDenied (unknown issuer: NotFound)
// whose message starts with the field: `caller: "x" is not a configured
// caller`, `caller: "x" lacks the custodian role`, `issuer: caller "x" may not
// sign for issuer "y"; its issuers are [...]`.
//
// Thread-safety: immutable once built; shared by many threads through a
// shared_ptr (SigningCore swaps the whole snapshot on SIGHUP).
#ifndef TOKENSIGN_SIGNER_SERVICE_POLICY_SNAPSHOT_H_
#define TOKENSIGN_SIGNER_SERVICE_POLICY_SNAPSHOT_H_

#include <string_view>

#include "absl/status/status.h"
#include "signer/service/config.h"

namespace tokensign::service {

struct PolicySnapshot {
  explicit PolicySnapshot(Config c) : config(std::move(c)) {}
  Config config;

  // The caller's config entry, or nullptr when unknown.
  const CallerConfig* FindCaller(std::string_view id) const;
  // The issuer's config entry, or nullptr when not configured.
  const IssuerConfig* FindIssuer(std::string_view name) const;

  // OK for any configured caller, whatever its roles (GetJwks: JWKS are
  // public; the caller must still be known).
  absl::Status CheckKnownCaller(std::string_view caller) const;
  // OK when `caller` has `role` for some issuer (refuses a whole SignTokens
  // call once; per-issuer rights are checked per item).
  absl::Status CheckCallerRole(std::string_view caller, Role role) const;
  // OK when `caller` has `role` and it covers `issuer` ("*": all issuers).
  absl::Status CheckRole(std::string_view caller, Role role,
                         std::string_view issuer) const;
  // OK when `caller` has `role`, or else `fallback`, for `issuer`; a refusal
  // names `role` (KeyAdmin reads: custodian or auditor; audit anchors: auditor
  // or custodian).
  absl::Status CheckRoleOr(std::string_view caller, Role role, Role fallback,
                           std::string_view issuer) const;
  // KeyAdmin: custodian of `issuer` (read_only calls: custodian or auditor),
  // then NotFound for an issuer this config does not name.
  absl::Status CheckKeyAdmin(std::string_view caller, std::string_view issuer,
                             bool read_only) const;
  // Why a request names an issuer this config does not configure: NotFound,
  // or PermissionDenied when `caller` is not a configured caller either (a
  // stranger learns nothing about which issuers exist).
  absl::Status UnknownIssuer(std::string_view caller,
                             std::string_view issuer) const;
};

}  // namespace tokensign::service

#endif  // TOKENSIGN_SIGNER_SERVICE_POLICY_SNAPSHOT_H_
