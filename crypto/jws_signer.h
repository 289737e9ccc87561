// JwsVerifier / JwsSigner: JWS signature bytes with one key, the shape of
// tink's PublicKeyVerify / PublicKeySign. Signatures are in JOSE form (RFC 7518
// section 3: ECDSA as raw r||s of exact length, RSA and Ed25519 as is). One
// object per key, built once when the key is installed; every token, status
// list and parent-token check with that key goes through it (there is no
// second signing path).
//
// Implementations: token::EvpJwsSigner (any EVP_PKEY: software keys in tests,
// the audit log's checkpoints, verify-only keys) and keyset::HsmJwsSigner (a
// key in the HSM: signs through the hsm facade, no EVP round trip).
//
// Thread-safety: implementations are immutable after creation; Sign and Verify
// may run on any number of threads at once.
#ifndef TOKENSIGN_CRYPTO_JWS_SIGNER_H_
#define TOKENSIGN_CRYPTO_JWS_SIGNER_H_

#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "crypto/algorithm.h"

namespace tokensign::crypto {

class JwsVerifier {
 public:
  virtual ~JwsVerifier() = default;

  // The algorithm this key signs and verifies (fixed at creation).
  virtual SignAlgorithm alg() const = 0;

  // OK when `signature` (JOSE form) verifies over `signing_input` with the
  // key's public half; Unauthenticated when it does not; InvalidArgument when
  // its length is wrong for the key; FailedPrecondition when there is no
  // public key to verify with.
  virtual absl::Status Verify(std::string_view signing_input,
                              std::string_view signature) const = 0;
};

class JwsSigner : public JwsVerifier {
 public:
  // The JOSE signature over `signing_input`. Errors keep the signer's own
  // code (e.g. Unavailable for an HSM that is down, so callers retry).
  virtual absl::StatusOr<std::string> Sign(
      std::string_view signing_input) const = 0;
};

}  // namespace tokensign::crypto

#endif  // TOKENSIGN_CRYPTO_JWS_SIGNER_H_
