// Token exchange (RFC 8693 semantics) with guaranteed attenuation: a child
// token derived from a verified parent (parent_token.h) never holds more
// authority than the parent.
//
// Contract (DeriveChild; Exchange = DeriveChild + Mint + a last check):
// - Kinds: access -> access, access -> transaction (the Txn-Token service
//   flow), transaction -> transaction (replacement). transaction -> access is
//   refused.
// - sub and client_id are the parent's. act = the new actor (if any)
//   outermost, the parent's chain nested inside; the issuer's actor rules and
//   max depth apply to the whole chain (CheckRequest). If the parent carries
//   may_act, a new actor must match it (sub, and iss when may_act names one).
// - scope: a subset of the parent's; empty = the parent's.
// - aud: access -> access: a subset of the parent's, or an audience the
//   issuer's exchange.audience_map maps a parent audience to; empty = the
//   parent's. access -> transaction: the issuer's exchange.trust_domain.
//   transaction -> transaction: unchanged.
// - exp never later than the parent's: an explicit ttl that would pass it is
//   refused; ttl 0 = the issuer default, cut to the parent's remaining life.
// - status: the parent's reference, unchanged (so one status bit revokes the
//   whole tree); a parent without one is refused where the issuer requires
//   status. cnf: the parent's; another key only where the issuer allows
//   rebinding (the parent's cnf is kept for the audit record); binding a
//   parent without cnf to a key is attenuation and allowed.
// - Transaction tokens: access -> transaction gets a fresh txn (Mint) and
//   needs req_wl; transaction -> transaction keeps txn, sub and aud, takes
//   req_wl from the request or the parent, and keeps every rctx/tctx member
//   of the parent (the request may add members, never change one).
// - Extra claims of the parent are not carried. The child's may_act comes
//   from the request. parent_jti and parent_token_sha256 come from the
//   verified parent, for the audit record.
// Refusals name the field and the rule (`scope: "write" is not in the subject
// token's scope`, `exp: ... beyond the subject token's exp`, `actor: ... not
// permitted by the subject token's may_act`); PermissionDenied for what the
// parent or policy does not allow, InvalidArgument for malformed input,
// FailedPrecondition for a missing issuer setting (trust_domain).
//
// Thread-safety: pure functions.
#ifndef TOKENSIGN_SIGNER_TOKEN_EXCHANGE_H_
#define TOKENSIGN_SIGNER_TOKEN_EXCHANGE_H_

#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "nlohmann/json.hpp"
#include "signer/token/minter.h"
#include "signer/token/parent_token.h"
#include "signer/token/policy.h"
#include "signer/token/token_request.h"

namespace tokensign::token {

// What the caller asks for besides the subject token.
struct ExchangeRequest {
  TokenKind kind = TokenKind::kAccessToken;
  std::optional<Actor> actor;         // the new actor; none = chain unchanged
  std::vector<std::string> audience;  // empty = by kind (see above)
  std::vector<std::string> scope;     // empty = the parent's
  int64_t ttl_seconds = 0;            // 0 = issuer default, cut to parent exp
  std::optional<Confirmation> cnf;    // none = the parent's
  std::optional<Actor> may_act;       // put in the child
  std::string req_wl;                 // transaction tokens
  nlohmann::json rctx;                // object or null
  nlohmann::json tctx;                // object or null
};

// The child's TokenRequest (to be policy-checked and minted by Mint) or the
// attenuation rule the request breaks.
absl::StatusOr<TokenRequest> DeriveChild(const IssuerPolicy& policy,
                                         const VerifiedParent& parent,
                                         const ExchangeRequest& req,
                                         absl::Time now);

struct Exchanged {
  TokenRequest request;  // what was minted (for the audit record)
  MintedToken minted;
};

// DeriveChild, then Mint at the same `now`, then checks the minted exp
// against the parent's once more (Internal, token withheld, if it is later).
// When Mint refuses, `*derived` (if given) gets the derived child request, for
// the audit record; it is left alone otherwise.
absl::StatusOr<Exchanged> Exchange(const IssuerPolicy& policy,
                                   const SigningKey& key,
                                   const VerifiedParent& parent,
                                   const ExchangeRequest& req, absl::Time now,
                                   TokenRequest* derived = nullptr);

}  // namespace tokensign::token

#endif  // TOKENSIGN_SIGNER_TOKEN_EXCHANGE_H_
