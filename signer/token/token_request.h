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
  std::string parent_jti;  // audit only, never in the token
  // Transaction-token fields.
  std::string txn;
  std::string req_wl;
  nlohmann::json rctx;          // object or null
  nlohmann::json tctx;          // object or null
  nlohmann::json extra_claims;  // object or null
};

}  // namespace tokensign::token

#endif  // TOKENSIGN_SIGNER_TOKEN_TOKEN_REQUEST_H_
