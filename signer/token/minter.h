// Mints a delegated token: policy check -> claims -> compact JWS signed with an
// EVP_PKEY (HSM-backed through hsm/provider in production, a software key in
// unit tests) -> verify with the public key (unless the issuer turned it off)
// -> result. Thread-safety: Mint is safe to call concurrently (no shared
// mutable state; the key's EVP_PKEY must itself be usable from many threads,
// which OpenSSL guarantees for signing).
#ifndef TOKENSIGN_SIGNER_TOKEN_MINTER_H_
#define TOKENSIGN_SIGNER_TOKEN_MINTER_H_

#include <memory>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "crypto/algorithm.h"
#include "crypto/ssl_ptr.h"
#include "nlohmann/json.hpp"
#include "signer/token/key_ops.h"
#include "signer/token/policy.h"
#include "signer/token/token_request.h"

namespace tokensign::token {

// A signing key as the token layer sees it. `private_key` signs
// (provider-backed or software); `public_key` verifies and feeds the JWK. kid =
// RFC 7638 thumbprint.
struct SigningKey {
  std::shared_ptr<EVP_PKEY> private_key;
  std::shared_ptr<EVP_PKEY> public_key;
  crypto::SignAlgorithm alg;
  std::string kid;
  // Prepared contexts for private_key/public_key (KeyOps::Create). Optional:
  // without it Mint signs with SignRaw/VerifyRaw, building contexts per token.
  std::shared_ptr<const KeyOps> ops;
};

struct MintedToken {
  std::string token;  // compact JWS
  std::string jti;
  std::string kid;
  int64_t iat = 0;
  int64_t exp = 0;
  std::string txn;      // transaction tokens: the txn signed (maybe generated)
  std::string payload;  // the claims JSON exactly as signed
};

// Policy-checks, builds, signs and (per policy) verifies one token. A
// transaction token without txn gets a fresh one (NewJti).
// Errors: CheckRequest's InvalidArgument / PermissionDenied; FailedPrecondition
// for an unusable issuer config or key (no iss, no kid, key/alg mismatch, no
// public key while verify_before_release is on); Internal when the fresh
// signature does not verify (the token is withheld).
absl::StatusOr<MintedToken> Mint(const IssuerPolicy& policy,
                                 const SigningKey& key, const TokenRequest& req,
                                 absl::Time now);

// A fresh jti: 128 random bits (RAND_bytes), base64url (22 characters).
absl::StatusOr<std::string> NewJti();

// The claims JSON Mint signs, for an already checked request: iss, sub,
// client_id, aud (a string for one audience, else an array), scope
// (space-joined, omitted if none), iat = nbf, exp, jti, act (nested;
// actor_chain[0] outermost), may_act, cnf, status
// ({"status_list":{"idx","uri"}}), for transaction tokens txn, req_wl, rctx,
// tctx; then extra_claims. Written
// directly rather than through a JSON DOM (that cost ~3% of a token);
// InvalidArgument for a string that is not UTF-8 or a reserved extra claim.
absl::StatusOr<std::string> ClaimsJson(const IssuerPolicy& policy,
                                       const TokenRequest& req, int64_t iat,
                                       int64_t exp, std::string_view jti);

}  // namespace tokensign::token

#endif  // TOKENSIGN_SIGNER_TOKEN_MINTER_H_
