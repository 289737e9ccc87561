#include "signer/keyset/hsm_jws_signer.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "crypto/openssl_error.h"
#include "signer/token/jws.h"

namespace tokensign::keyset {

using crypto::SignAlgorithm;

HsmJwsSigner::HsmJwsSigner(std::shared_ptr<hsm::Hsm> hsm, std::string id_hex,
                           SignAlgorithm alg,
                           std::shared_ptr<const token::EvpJwsSigner> verifier)
    : hsm_(std::move(hsm)),
      id_hex_(std::move(id_hex)),
      alg_(alg),
      verifier_(std::move(verifier)) {}

absl::StatusOr<std::shared_ptr<const HsmJwsSigner>> HsmJwsSigner::Create(
    std::shared_ptr<hsm::Hsm> hsm, std::string id_hex, SignAlgorithm alg,
    std::shared_ptr<EVP_PKEY> public_key) {
  if (hsm == nullptr) {
    return absl::InvalidArgumentError("HsmJwsSigner: hsm must not be null");
  }
  absl::StatusOr<size_t> raw_len = token::SignatureLength(public_key.get(), alg);
  if (!raw_len.ok()) return raw_len.status();
  auto verifier = token::EvpJwsSigner::CreateVerifier(std::move(public_key), alg);
  if (!verifier.ok()) return verifier.status();
  std::shared_ptr<HsmJwsSigner> signer(new HsmJwsSigner(
      std::move(hsm), std::move(id_hex), alg, *std::move(verifier)));
  signer->raw_len_ = *raw_len;
  if (alg != SignAlgorithm::kEdDSA) {
    signer->md_.reset(EVP_MD_fetch(
        nullptr, alg == SignAlgorithm::kES384 ? "SHA384" : "SHA256", nullptr));
    if (signer->md_ == nullptr) return crypto::OpenSslError("EVP_MD_fetch");
  }
  return std::shared_ptr<const HsmJwsSigner>(std::move(signer));
}

absl::StatusOr<std::string> HsmJwsSigner::Sign(
    std::string_view signing_input) const {
  absl::StatusOr<std::string> sig;
  if (md_ == nullptr) {  // EdDSA signs the message itself
    sig = hsm_->Sign(id_hex_, alg_, signing_input);
  } else {
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int digest_len = 0;
    if (EVP_Digest(signing_input.data(), signing_input.size(), digest,
                   &digest_len, md_.get(), nullptr) != 1) {
      return crypto::OpenSslError("EVP_Digest");
    }
    sig = hsm_->SignDigest(
        id_hex_, alg_,
        std::string_view(reinterpret_cast<const char*>(digest), digest_len));
  }
  if (!sig.ok()) return sig.status();
  if (sig->size() != raw_len_) {  // never release a malformed signature
    return absl::InternalError(absl::StrCat(
        "HSM signature: ", sig->size(), " bytes; ",
        std::string(crypto::SignAlgorithmName(alg_)), " with this key needs ",
        raw_len_));
  }
  return sig;
}

}  // namespace tokensign::keyset
