// HsmJwsSigner: the JwsSigner for a key held in the HSM — what the daemon
// signs tokens with. Built once per key when the keyset is installed
// (KeysetManager), after VerifyRecordedKey proved the key.
//
// Sign hashes the signing input with a pre-fetched digest and calls the hsm
// facade (Hsm::SignDigest; Hsm::Sign for EdDSA, which signs the message),
// whose output is already the JOSE form (CKM_ECDSA gives raw r||s): no EVP
// round trip through the OpenSSL provider, no signature conversion, and the
// HSM's absl::Status (e.g. Unavailable) reaches the caller as it is. Verify
// uses an EvpJwsSigner over the proven public key (prepared contexts; for
// ECDSA raw -> DER once for OpenSSL).
//
// Thread-safety: immutable after Create; Sign and Verify may run on any
// number of threads at once (Hsm is thread-safe).
#ifndef TOKENSIGN_SIGNER_KEYSET_HSM_JWS_SIGNER_H_
#define TOKENSIGN_SIGNER_KEYSET_HSM_JWS_SIGNER_H_

#include <openssl/evp.h>

#include <memory>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "crypto/algorithm.h"
#include "crypto/jws_signer.h"
#include "crypto/ssl_ptr.h"
#include "hsm/hsm.h"
#include "signer/token/evp_jws_signer.h"

namespace tokensign::keyset {

class HsmJwsSigner final : public crypto::JwsSigner {
 public:
  // `id_hex` names the private key in `hsm`; `public_key` is its proven
  // public half (must fit `alg`).
  static absl::StatusOr<std::shared_ptr<const HsmJwsSigner>> Create(
      std::shared_ptr<hsm::Hsm> hsm, std::string id_hex,
      crypto::SignAlgorithm alg, std::shared_ptr<EVP_PKEY> public_key);

  crypto::SignAlgorithm alg() const override { return alg_; }
  absl::StatusOr<std::string> Sign(
      std::string_view signing_input) const override;
  absl::Status Verify(std::string_view signing_input,
                      std::string_view signature) const override {
    return verifier_->Verify(signing_input, signature);
  }

 private:
  HsmJwsSigner(std::shared_ptr<hsm::Hsm> hsm, std::string id_hex,
               crypto::SignAlgorithm alg,
               std::shared_ptr<const token::EvpJwsSigner> verifier);

  const std::shared_ptr<hsm::Hsm> hsm_;
  const std::string id_hex_;
  const crypto::SignAlgorithm alg_;
  const std::shared_ptr<const token::EvpJwsSigner> verifier_;
  crypto::SslPtr<EVP_MD> md_;  // SHA-256 / SHA-384; null for EdDSA
  size_t raw_len_ = 0;         // exact JOSE signature bytes
};

}  // namespace tokensign::keyset

#endif  // TOKENSIGN_SIGNER_KEYSET_HSM_JWS_SIGNER_H_
