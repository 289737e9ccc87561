// KeyOps: sign and verify JWS signatures with one key, reusing prepared
// OpenSSL contexts instead of building them per token.
//
// EVP_DigestSignInit/EVP_DigestVerifyInit fetch the digest and signature
// methods, bind the key to a provider context and check its parameters on
// every call; for ES256 that was ~8% of a token's CPU in the daemon. KeyOps
// does that once per context: ES256/ES384 hash the signing input with a
// pre-fetched digest and call EVP_PKEY_sign/EVP_PKEY_verify on contexts
// initialised at creation and kept in a small pool. Other algorithms (EdDSA,
// PS256, RS256) use SignRaw/VerifyRaw from jws.h, so every algorithm works
// through the same two calls and produces the same bytes.
//
// Thread-safety: Sign and Verify may run on any number of threads at once;
// each call takes a context from the pool (creating one when it is empty) and
// gives it back when done. A context whose operation failed is dropped, never
// reused.
#ifndef TOKENSIGN_SIGNER_TOKEN_KEY_OPS_H_
#define TOKENSIGN_SIGNER_TOKEN_KEY_OPS_H_

#include <openssl/evp.h>

#include <memory>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "crypto/algorithm.h"

namespace tokensign::token {

class KeyOps {
 public:
  // `private_key` signs (an HSM key from the tokensign provider, or any
  // EVP_PKEY); `public_key` verifies and may be null (then Verify fails with
  // FailedPrecondition). Both must fit `alg` (CheckKeyForAlgorithm), checked
  // once here rather than per token.
  static absl::StatusOr<std::shared_ptr<const KeyOps>> Create(
      std::shared_ptr<EVP_PKEY> private_key,
      std::shared_ptr<EVP_PKEY> public_key, crypto::SignAlgorithm alg);

  ~KeyOps();
  KeyOps(const KeyOps&) = delete;
  KeyOps& operator=(const KeyOps&) = delete;

  // The JWS signature over `signing_input` (ES256/ES384: raw r||s).
  absl::StatusOr<std::string> Sign(std::string_view signing_input) const;

  // OK when `signature` (as Sign returns it) verifies over `signing_input`
  // with the public key; Unauthenticated when it does not, InvalidArgument
  // when its length is wrong for the key.
  absl::Status Verify(std::string_view signing_input,
                      std::string_view signature) const;

  // True when these contexts were made for exactly this key pair and
  // algorithm (Mint uses them only then).
  bool Serves(const EVP_PKEY* private_key, const EVP_PKEY* public_key,
              crypto::SignAlgorithm alg) const {
    return private_key == private_key_.get() &&
           public_key == public_key_.get() && alg == alg_;
  }

 private:
  class ContextPool;
  KeyOps(std::shared_ptr<EVP_PKEY> private_key,
         std::shared_ptr<EVP_PKEY> public_key, crypto::SignAlgorithm alg);
  absl::StatusOr<std::string> Digest(std::string_view input) const;
  std::string AlgName() const;

  std::shared_ptr<EVP_PKEY> private_key_;
  std::shared_ptr<EVP_PKEY> public_key_;
  crypto::SignAlgorithm alg_;
  size_t raw_len_ = 0;         // JWS signature bytes
  EVP_MD* md_ = nullptr;       // pre-fetched; ECDSA only
  std::unique_ptr<ContextPool> sign_pool_;    // ECDSA only
  std::unique_ptr<ContextPool> verify_pool_;  // ECDSA with a public key only
};

}  // namespace tokensign::token

#endif  // TOKENSIGN_SIGNER_TOKEN_KEY_OPS_H_
