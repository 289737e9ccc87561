// The subject token of a token exchange, verified: tokensign never believes
// what a caller says about a parent token, it checks the parent itself.
//
// Contract: VerifyParent parses the compact JWS, reads its header (exactly
// alg, kid, typ; typ at+jwt or txntoken+jwt, which decides the kind) and its
// unverified iss, asks `lookup` for the key that may verify tokens of that iss
// under that kid (the lookup decides which issuers are trusted and which keys
// are published: active, pending or retired and still published, never
// withdrawn or destroyed), verifies the signature with it (the header exactly
// {"alg","kid","typ"} in canonical form, alg = the key's, as VerifyCompact
// requires), and only then reads the claims, strictly:
// sub, client_id, aud, iat, exp, jti required; act, may_act, cnf, status,
// scope and (transaction tokens) txn, req_wl, rctx, tctx as tokensign writes
// them. Time: refused when now >= exp + leeway (expired), nbf or iat > now +
// leeway (not yet valid). Every refusal names `subject_token` and the rule:
// InvalidArgument for a token that is not a well-formed tokensign token,
// PermissionDenied for one that is not trusted (issuer not trusted, key not
// published, bad signature, expired, not yet valid). `lookup` errors are
// returned as they are (they should name subject_token too).
//
// Thread-safety: pure functions (the lookup must be safe to call from the
// calling thread).
#ifndef TOKENSIGN_SIGNER_TOKEN_PARENT_TOKEN_H_
#define TOKENSIGN_SIGNER_TOKEN_PARENT_TOKEN_H_

#include <openssl/evp.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "crypto/algorithm.h"
#include "crypto/jws_signer.h"
#include "nlohmann/json.hpp"
#include "signer/token/token_request.h"

namespace tokensign::token {

// The key that verifies a parent, and the config name of its issuer.
struct ParentKey {
  std::shared_ptr<EVP_PKEY> public_key;
  crypto::SignAlgorithm alg = crypto::SignAlgorithm::kES256;
  std::string issuer;  // config name of the issuer whose key this is
  // Optional: a verifier whose public key is `public_key` (the issuer's
  // active key's JwsSigner), so the verify does not set up OpenSSL per call.
  std::shared_ptr<const crypto::JwsVerifier> verifier;
};

// Finds the key for a parent token's `iss` claim and header `kid`.
using ParentKeyLookup = std::function<absl::StatusOr<ParentKey>(
    std::string_view iss, std::string_view kid)>;

// A parent token's claims, read after its signature verified.
struct VerifiedParent {
  TokenKind kind = TokenKind::kAccessToken;
  std::string issuer;  // config name (ParentKey::issuer)
  std::string iss;
  std::string kid;
  std::string sub;
  std::string client_id;
  std::vector<std::string> aud;
  std::vector<std::string> scope;
  std::vector<Actor> actor_chain;  // [0] = outermost act
  std::optional<Actor> may_act;
  std::optional<Confirmation> cnf;
  std::optional<StatusReference> status;
  std::string jti;
  std::string txn;
  std::string req_wl;
  nlohmann::json rctx;  // object or null
  nlohmann::json tctx;  // object or null
  int64_t iat = 0;
  int64_t exp = 0;
  std::string sha256;  // lowercase hex SHA-256 of the token text
};

absl::StatusOr<VerifiedParent> VerifyParent(std::string_view token,
                                            const ParentKeyLookup& lookup,
                                            absl::Time now,
                                            absl::Duration leeway);

}  // namespace tokensign::token

#endif  // TOKENSIGN_SIGNER_TOKEN_PARENT_TOKEN_H_
