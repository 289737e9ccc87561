// Compact JWS (RFC 7515) signing and verification with an EVP_PKEY, plus
// base64url.
//
// Contract:
// - base64url without padding (RFC 7515 §2); decoding is strict (no padding, no
//   whitespace, only [A-Za-z0-9_-]).
// - Algorithms ES256, ES384, EdDSA (Ed25519), PS256, RS256. Never `none`, never
// HMAC.
//   RSA keys must have >= 2048-bit moduli. A key whose type does not fit the
//   algorithm is refused with a message naming both.
// - Signing uses exactly EVP_DigestSignInit_ex(mdctx, &pctx, md, NULL, NULL,
// pkey, NULL)
//   (md "SHA256"/"SHA384", NULL for Ed25519), RSA padding set on pctx (PSS:
//   salt length = digest length, MGF1-SHA256), then one-shot EVP_DigestSign.
//   This is the pattern the HSM-backed provider keys support.
// - ECDSA signatures are raw r||s of exact length (64 for ES256, 96 for ES384);
// the DER
//   form OpenSSL produces is converted, and back for verification.
// - Tokens tokensign makes carry the protected header {"alg","kid","typ"}
// exactly, in
//   that order.
//
// Thread-safety: all functions are pure apart from the EVP_PKEY they are given;
// an EVP_PKEY may be shared by concurrent callers (OpenSSL allows concurrent
// use of a key for signing and verification).
#ifndef TOKENSIGN_SIGNER_TOKEN_JWS_H_
#define TOKENSIGN_SIGNER_TOKEN_JWS_H_

#include <openssl/evp.h>

#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "crypto/algorithm.h"
#include "nlohmann/json.hpp"

namespace tokensign::token {

// base64url without padding.
std::string Base64UrlEncode(std::string_view data);
// Strict base64url decode; InvalidArgument naming `field` on bad input.
absl::StatusOr<std::string> Base64UrlDecode(
    std::string_view data, std::string_view field = "base64url");

// OK when `key` can sign/verify `alg`: EC P-256 for ES256, EC P-384 for ES384,
// Ed25519 for EdDSA, RSA >= 2048 bits for PS256/RS256. InvalidArgument
// otherwise.
absl::Status CheckKeyForAlgorithm(const EVP_PKEY* key, crypto::SignAlgorithm alg);

// Raw JOSE signature length for `alg` with `key` (64/96/64/modulus bytes).
absl::StatusOr<size_t> SignatureLength(const EVP_PKEY* key,
                                       crypto::SignAlgorithm alg);

// Signs `signing_input` and returns the JOSE signature bytes (ECDSA as raw
// r||s).
absl::StatusOr<std::string> SignRaw(EVP_PKEY* key, crypto::SignAlgorithm alg,
                                    std::string_view signing_input);

// Verifies a JOSE signature over `signing_input` with a public (or private)
// key. InvalidArgument for a malformed signature, Unauthenticated for a bad
// one.
absl::Status VerifyRaw(EVP_PKEY* key, crypto::SignAlgorithm alg,
                       std::string_view signing_input,
                       std::string_view signature);

// The protected header tokensign uses: {"alg":..,"kid":..,"typ":..} in that
// order.
std::string JwsHeaderJson(crypto::SignAlgorithm alg, std::string_view kid,
                          std::string_view typ);

// Compact JWS over arbitrary header and payload bytes (used for known-answer
// tests and by SignCompact): b64(header) "." b64(payload) "." b64(signature).
absl::StatusOr<std::string> SignCompactWithHeader(EVP_PKEY* key,
                                                  crypto::SignAlgorithm alg,
                                                  std::string_view header_json,
                                                  std::string_view payload);

// Compact JWS with the tokensign header.
absl::StatusOr<std::string> SignCompact(EVP_PKEY* key, crypto::SignAlgorithm alg,
                                        std::string_view kid,
                                        std::string_view typ,
                                        std::string_view payload);

// What a verifier expects of a token's header.
struct JwsExpectation {
  crypto::SignAlgorithm alg;
  std::string_view kid;
  std::string_view typ;
};

// Parses a compact JWS, requires the header to be exactly {alg,kid,typ} with
// the expected values, verifies the signature with `public_key` and returns the
// payload, which must be a JSON object. InvalidArgument for malformed input or
// header mismatch, Unauthenticated for a bad signature.
absl::StatusOr<nlohmann::json> VerifyCompact(std::string_view jws,
                                             EVP_PKEY* public_key,
                                             const JwsExpectation& expect);

}  // namespace tokensign::token

#endif  // TOKENSIGN_SIGNER_TOKEN_JWS_H_
