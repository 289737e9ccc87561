// Issuer delegation policy and the check of a TokenRequest against it.
// Every rejection is InvalidArgument (or PermissionDenied for actor/client/kind
// rules) whose message names the field and the rule, e.g. "act.act.sub: chain
// depth 5 exceeds max 4". Thread-safety: IssuerPolicy is a value type;
// CheckRequest is a pure function.
#ifndef TOKENSIGN_SIGNER_TOKEN_POLICY_H_
#define TOKENSIGN_SIGNER_TOKEN_POLICY_H_

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "signer/token/token_request.h"

namespace tokensign::token {

// Who may act, and for which clients (empty clients = any client).
struct ActorRule {
  std::string sub;
  std::string iss;  // empty = any iss
  std::vector<std::string> clients;
};

// One Token Status List the issuer's authorization server assigns entries of
// (draft-ietf-oauth-status-list): `size` entries of `bits` bits (1, 2, 4, 8).
struct StatusListConfig {
  std::string uri;
  int64_t size = 0;
  int bits = 1;
};

// Token exchange (exchange.h) rules of the issuer that signs the child.
struct ExchangePolicy {
  // Config names of other issuers whose tokens may be exchanged here; the
  // issuer itself is always trusted.
  std::vector<std::string> trusted_parent_issuers;
  // access -> access: a parent audience may map to these child audiences
  // (e.g. an API's token to its tools) besides a subset of its own.
  std::map<std::string, std::vector<std::string>> audience_map;
  // access -> transaction: the trust domain, the aud of every transaction
  // token made by exchange (must be one of the issuer's audiences). Empty =
  // no such exchange.
  std::string trust_domain;
  // Whether a child may be bound (cnf) to another key than its parent.
  bool allow_cnf_rebind = false;
};

struct IssuerPolicy {
  std::string iss;  // value of the iss claim
  std::vector<TokenKind> allowed_kinds = {TokenKind::kAccessToken,
                                          TokenKind::kTransactionToken};
  int64_t max_ttl_access = 3600;
  int64_t max_ttl_transaction = 300;
  int64_t default_ttl_access = 600;
  int64_t default_ttl_transaction = 60;
  std::vector<std::string> allowed_audiences;
  std::vector<std::string> allowed_scopes;
  bool any_actor = false;  // true: any actor may act for any client
  std::vector<ActorRule> allowed_actors;
  int max_chain_depth = 4;
  bool require_cnf = false;
  int64_t max_extra_claims_bytes = 4096;
  // Names extra_claims may carry (exact, case-sensitive). Fail closed: empty =
  // no extra claims at all. Reserved names (IsReservedClaim) are refused
  // whatever the list says.
  std::vector<std::string> allowed_extra_claims;
  // Explicit opt-in (config extra_claims = ["*"]): any well-formed name that
  // is not reserved; allowed_extra_claims is then ignored.
  bool any_extra_claims = false;
  bool verify_before_release = true;  // verify each token with the public key
  // Status lists a token's `status` may point into; require_status = every
  // token must carry a status reference (revocable).
  std::vector<StatusListConfig> status_lists;
  bool require_status = false;
  ExchangePolicy exchange;
};

// Bounds against huge input, whatever the policy says.
inline constexpr size_t kMaxStringBytes =
    1024;  // sub, client_id, aud, actor sub/iss, txn...
inline constexpr size_t kMaxAudiences = 16;
inline constexpr size_t kMaxScopes = 64;
inline constexpr size_t kMaxScopeBytes = 256;
inline constexpr size_t kMaxContextBytes =
    8192;  // rctx, tctx (each, serialized)
inline constexpr size_t kMaxHardChainDepth =
    64;  // even if a policy allows more
// An extra claim name: 1..128 bytes of printable ASCII without " or \.
inline constexpr size_t kMaxClaimNameBytes = 128;
// parent_jti (audit only): up to 256 bytes of printable ASCII, no spaces.
inline constexpr size_t kMaxParentJtiBytes = 256;

// Largest configurable status list (entries) and status list bytes.
inline constexpr int64_t kMaxStatusListSize = int64_t{1} << 24;
inline constexpr int64_t kMaxStatusListBytes = int64_t{4} << 20;

// Checks `req` against `policy`. OK or the first rule broken. Messages read
// "<field>: <what is wrong>; <what is allowed>". InvalidArgument for malformed
// input, PermissionDenied for what the policy does not allow (kind, audience,
// scope, actor, actor for this client, status list). Transaction tokens need
// req_wl and scope (draft-ietf-oauth-transaction-tokens-10; txn is generated
// when absent, see Mint); `status` must name a configured list and an index
// inside it (unless inherited by exchange), and is required when the policy
// says require_status; may_act needs a sub.
absl::Status CheckRequest(const IssuerPolicy& policy, const TokenRequest& req);

// True for registered / authorization / service-set claim names that
// extra_claims may not carry (iss, sub, aud, exp, nbf, iat, jti, client_id,
// scope, scp, roles, groups, entitlements, authorization_details, act, may_act,
// cnf, txn, status, ...), compared ASCII case-insensitively ("Scope" is
// reserved).
bool IsReservedClaim(std::string_view name);

// 1..kMaxClaimNameBytes bytes of printable ASCII (0x21..0x7E) without " or \.
bool IsWellFormedClaimName(std::string_view name);

// How a claim name appears in a field path: extra_claims.tenant for a name of
// letters, digits and '_' (not starting with a digit), otherwise
// extra_claims["https://x.example/c"] with other bytes as \xNN (Escaped).
std::string ExtraClaimField(std::string_view name);

// The token lifetime in seconds: the request's ttl, or the policy default for
// the kind when it is 0. Meaningful after CheckRequest succeeded.
int64_t EffectiveTtl(const IssuerPolicy& policy, const TokenRequest& req);

}  // namespace tokensign::token

#endif  // TOKENSIGN_SIGNER_TOKEN_POLICY_H_
