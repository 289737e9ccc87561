// Public JWKs (RFC 7517/7518/8037) from EVP_PKEYs, RFC 7638 thumbprints, JWKS
// documents.
//
// Contract:
// - EC (P-256, P-384): {"crv","kty":"EC","x","y"}, x and y left-padded to the
// field size
//   (32 / 48 bytes). OKP Ed25519: {"crv":"Ed25519","kty":"OKP","x"}. RSA:
//   {"e","kty":"RSA", "n"} with n and e minimal big-endian (no leading zero
//   byte).
// - Thumbprint = base64url(SHA-256(required members, lexicographic order, no
// whitespace));
//   tokensign uses it as `kid`.
// - Published JWKs add "kid", "alg" and "use":"sig". Never private members.
//
// Thread-safety: pure functions; the EVP_PKEY is only read.
#ifndef TOKENSIGN_SIGNER_TOKEN_JWK_H_
#define TOKENSIGN_SIGNER_TOKEN_JWK_H_

#include <openssl/evp.h>

#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "crypto/algorithm.h"
#include "nlohmann/json.hpp"

namespace tokensign::token {

// The RFC 7638 required members of the public key (kty + key material), nothing
// else.
absl::StatusOr<nlohmann::json> PublicJwkMembers(const EVP_PKEY* key);

// RFC 7638 SHA-256 thumbprint of a JWK given as JSON. Uses only the required
// members for its kty (EC: crv,kty,x,y; OKP: crv,kty,x; RSA: e,kty,n); others
// are ignored.
absl::StatusOr<std::string> JwkThumbprint(const nlohmann::json& jwk);

// RFC 7638 SHA-256 thumbprint of a public key (= tokensign's kid for it).
absl::StatusOr<std::string> JwkThumbprint(const EVP_PKEY* key);

// The JWK tokensign publishes: required members + "kid", "alg", "use":"sig".
// Fails if the key does not fit `alg`.
absl::StatusOr<nlohmann::json> PublishedJwk(const EVP_PKEY* key,
                                            crypto::SignAlgorithm alg,
                                            std::string_view kid);

// One key of an issuer's JWKS.
struct JwksEntry {
  const EVP_PKEY* public_key = nullptr;
  crypto::SignAlgorithm alg = crypto::SignAlgorithm::kES256;
  std::string kid;
};

// {"keys":[...]} in the order given. InvalidArgument naming keys[i] on a bad
// entry.
absl::StatusOr<nlohmann::json> BuildJwks(const std::vector<JwksEntry>& entries);

}  // namespace tokensign::token

#endif  // TOKENSIGN_SIGNER_TOKEN_JWK_H_
