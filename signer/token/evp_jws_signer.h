// EvpJwsSigner: the JwsSigner over OpenSSL EVP_PKEYs — software keys (tests,
// tools), the audit log's checkpoint keys, and verify-only public keys (the
// verify half of keyset::HsmJwsSigner, parent tokens).
//
// It reuses prepared OpenSSL contexts instead of building them per token:
// EVP_DigestSignInit/EVP_DigestVerifyInit fetch the digest and signature
// methods, bind the key to a provider context and check its parameters on
// every call (for ES256 ~8% of a token's CPU in the daemon). ES256/ES384 hash
// the signing input with a pre-fetched digest and call EVP_PKEY_sign /
// EVP_PKEY_verify on contexts initialised at creation and kept in a small
// pool; the signature changes form once per direction (DER -> raw after sign,
// raw -> DER before verify). EdDSA, PS256 and RS256 use SignRaw/VerifyRaw
// (jws.h), so every algorithm produces the same bytes.
//
// Thread-safety: Sign and Verify may run on any number of threads at once;
// each call takes a context from the pool (creating one when it is empty) and
// gives it back when done. A context whose operation failed is dropped.
#ifndef TOKENSIGN_SIGNER_TOKEN_EVP_JWS_SIGNER_H_
#define TOKENSIGN_SIGNER_TOKEN_EVP_JWS_SIGNER_H_

#include <openssl/evp.h>

#include <memory>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "crypto/algorithm.h"
#include "crypto/jws_signer.h"
#include "crypto/ssl_ptr.h"

namespace tokensign::token {

class EvpJwsSigner final : public crypto::JwsSigner {
 public:
  // `private_key` signs (required); `public_key` verifies and may be null
  // (then Verify fails with FailedPrecondition). Both must fit `alg`
  // (CheckKeyForAlgorithm), checked once here rather than per token.
  static absl::StatusOr<std::shared_ptr<const EvpJwsSigner>> Create(
      std::shared_ptr<EVP_PKEY> private_key,
      std::shared_ptr<EVP_PKEY> public_key, crypto::SignAlgorithm alg);
  // Verify only (Sign fails with FailedPrecondition).
  static absl::StatusOr<std::shared_ptr<const EvpJwsSigner>> CreateVerifier(
      std::shared_ptr<EVP_PKEY> public_key, crypto::SignAlgorithm alg);

  ~EvpJwsSigner() override;
  EvpJwsSigner(const EvpJwsSigner&) = delete;
  EvpJwsSigner& operator=(const EvpJwsSigner&) = delete;

  crypto::SignAlgorithm alg() const override { return alg_; }
  absl::StatusOr<std::string> Sign(
      std::string_view signing_input) const override;
  absl::Status Verify(std::string_view signing_input,
                      std::string_view signature) const override;

  // The hash ES256/ES384 sign (SHA-256 / SHA-384 of `input`), with the
  // pre-fetched digest; for other algorithms FailedPrecondition.
  absl::StatusOr<std::string> Digest(std::string_view input) const;

 private:
  class ContextPool;
  EvpJwsSigner(std::shared_ptr<EVP_PKEY> private_key,
               std::shared_ptr<EVP_PKEY> public_key, crypto::SignAlgorithm alg);
  static absl::StatusOr<std::shared_ptr<const EvpJwsSigner>> Make(
      std::shared_ptr<EVP_PKEY> private_key,
      std::shared_ptr<EVP_PKEY> public_key, crypto::SignAlgorithm alg);
  std::string AlgName() const;

  std::shared_ptr<EVP_PKEY> private_key_;  // null: verify only
  std::shared_ptr<EVP_PKEY> public_key_;
  crypto::SignAlgorithm alg_;
  size_t raw_len_ = 0;                         // JWS signature bytes
  crypto::SslPtr<EVP_MD> md_;                  // pre-fetched; ECDSA only
  std::unique_ptr<ContextPool> sign_pool_;     // ECDSA with a private key
  std::unique_ptr<ContextPool> verify_pool_;   // ECDSA with a public key
};

}  // namespace tokensign::token

#endif  // TOKENSIGN_SIGNER_TOKEN_EVP_JWS_SIGNER_H_
