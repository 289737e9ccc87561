// Software keys for token tests: generated keys per algorithm and keys rebuilt
// from RFC JWK examples. Test-only. Thread-safety: functions are pure; returned
// keys are owned.
#ifndef TOKENSIGN_TESTS_TOKEN_TEST_KEYS_H_
#define TOKENSIGN_TESTS_TOKEN_TEST_KEYS_H_

#include <memory>
#include <string>

#include "crypto/algorithm.h"
#include "crypto/jws_signer.h"
#include "crypto/ssl_ptr.h"
#include "nlohmann/json.hpp"
#include "signer/token/minter.h"

namespace tokensign::token::testing {

// A fresh software key for `alg` (P-256, P-384, Ed25519, RSA-2048), via
// EVP_PKEY_Q_keygen.
crypto::UniquePkey GenerateKey(crypto::SignAlgorithm alg, int rsa_bits = 2048);

// The public half of `key` (DER SubjectPublicKeyInfo round trip).
crypto::UniquePkey PublicOnly(EVP_PKEY* key);

// A key from a JWK: RSA (n, e [, d, p, q, dp, dq, qi]) or OKP Ed25519 (x or d).
crypto::UniquePkey KeyFromJwk(const nlohmann::json& jwk);

// A SigningKey (signer = EvpJwsSigner, public, alg, kid = thumbprint) with a
// fresh software key, plus that private key for tests that sign other bytes
// with it; cached per alg within the process so RSA key generation happens
// once.
struct TestSigningKey : SigningKey {
  std::shared_ptr<EVP_PKEY> private_key;
};
TestSigningKey MakeSigningKey(crypto::SignAlgorithm alg);

// An EvpJwsSigner over `private_key` (verifying with `public_key`, may be
// null); aborts the test when the key does not fit `alg`.
std::shared_ptr<const crypto::JwsSigner> SoftwareSigner(
    std::shared_ptr<EVP_PKEY> private_key, std::shared_ptr<EVP_PKEY> public_key,
    crypto::SignAlgorithm alg);

// Decodes base64url or aborts the test (for constants).
std::string B64(std::string_view b64url);

}  // namespace tokensign::token::testing

#endif  // TOKENSIGN_TESTS_TOKEN_TEST_KEYS_H_
