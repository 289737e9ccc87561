// Mints a delegated token: policy check -> claims -> compact JWS signed by the
// key's JwsSigner (keyset::HsmJwsSigner in production, an EvpJwsSigner over a
// software key in unit tests) -> verify with the same signer's public half
// (unless the issuer turned it off) -> result. Thread-safety: Mint is safe to
// call concurrently (no shared mutable state; JwsSigners are thread-safe).
#ifndef TOKENSIGN_SIGNER_TOKEN_MINTER_H_
#define TOKENSIGN_SIGNER_TOKEN_MINTER_H_

#include <openssl/evp.h>

#include <memory>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "crypto/algorithm.h"
#include "crypto/jws_signer.h"
#include "nlohmann/json.hpp"
#include "signer/token/policy.h"
#include "signer/token/token_request.h"

namespace tokensign::token {

// A signing key as the token layer sees it, built once when the keyset is
// installed. `signer` signs and verifies (its public half is `public_key`);
// `public_key` feeds the JWK and says whether verify-before-release can run.
// kid = RFC 7638 thumbprint of `public_key`.
struct SigningKey {
  std::shared_ptr<const crypto::JwsSigner> signer;
  std::shared_ptr<EVP_PKEY> public_key;
  crypto::SignAlgorithm alg = crypto::SignAlgorithm::kES256;
  std::string kid;
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
// for an unusable issuer config or key (no iss, no signer, no kid, a signer
// made for another alg, no public key while verify_before_release is on); the
// signer's own error (e.g. Unavailable from the HSM); Internal when the fresh
// signature does not verify (the token is withheld).
absl::StatusOr<MintedToken> Mint(const IssuerPolicy& policy,
                                 const SigningKey& key, const TokenRequest& req,
                                 absl::Time now);

// OK when `key` can sign: it has a signer made for `key.alg` and a kid;
// FailedPrecondition naming what is missing otherwise.
absl::Status CheckSigningKey(const SigningKey& key);

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
