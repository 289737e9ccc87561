// What a caller asks tokensign to sign, before policy. Plain data; no
// validation here (see policy.h). Thread-safety: value type.
#ifndef TOKENSIGN_SIGNER_TOKEN_TOKEN_REQUEST_H_
#define TOKENSIGN_SIGNER_TOKEN_TOKEN_REQUEST_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "nlohmann/json.hpp"

namespace tokensign::token {

enum class TokenKind { kAccessToken, kTransactionToken };
// "access_token" / "transaction_token" (config and audit spelling).
const char* TokenKindName(TokenKind kind);
// JOSE typ: "at+jwt" / "txntoken+jwt".
const char* TokenKindTyp(TokenKind kind);

// One actor; actor_chain[0] is the current actor (outermost `act`), each later
// entry a prior actor nested one level deeper.
struct Actor {
  std::string sub;
  std::string iss;  // optional
};

// Proof-of-possession confirmation; exactly one member set.
struct Confirmation {
  std::string jkt;       // RFC 9449 JWK thumbprint
  std::string x5t_s256;  // RFC 8705 certificate thumbprint
  bool operator==(const Confirmation&) const = default;
};

// Token Status List reference (draft-ietf-oauth-status-list): the token's
// status is entry `idx` of the status list token published at `uri`. Written
// as "status":{"status_list":{"idx":N,"uri":"..."}}.
struct StatusReference {
  std::string uri;
  int64_t idx = 0;
  bool operator==(const StatusReference&) const = default;
};

struct TokenRequest {
  TokenKind kind = TokenKind::kAccessToken;
  std::string subject;
  std::string client_id;
  std::vector<std::string> audience;
  std::vector<std::string> scope;
  std::vector<Actor> actor_chain;
  int64_t ttl_seconds = 0;  // 0 = issuer default for this kind
  std::optional<Confirmation> cnf;
  // RFC 8693 may_act: the one party that may act for `sub` next (exchange
  // checks a new actor against it).
  std::optional<Actor> may_act;
  std::optional<StatusReference> status;
  // Set by token exchange only (never from a request): `status` was copied
  // from a verified parent token, so it names the parent issuer's list and is
  // not checked against this issuer's status_lists.
  bool status_inherited = false;
  std::string parent_jti;  // audit only, never in the token
  // Audit only, set by token exchange from the verified parent: the hex
  // SHA-256 of the parent token, and the parent's cnf when the child is bound
  // to another key.
  std::string parent_token_sha256;
  std::optional<Confirmation> parent_cnf;
  // Transaction-token fields. txn empty = Mint generates one (128 random
  // bits, like jti); req_wl and scope are required in a transaction token
  // (draft-ietf-oauth-transaction-tokens-10).
  std::string txn;
  std::string req_wl;
  nlohmann::json rctx;          // object or null
  nlohmann::json tctx;          // object or null
  nlohmann::json extra_claims;  // object or null
};

}  // namespace tokensign::token

#endif  // TOKENSIGN_SIGNER_TOKEN_TOKEN_REQUEST_H_
