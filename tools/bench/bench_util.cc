#include "crypto/algorithm.h"
#include "tools/bench/bench_util.h"

#include <string>
#include <utility>

namespace tokensign::bench {

absl::StatusOr<BenchHsm> OpenBenchHsm() {
  BenchHsm out;
  auto token = testing::SoftHsmToken::Create();
  if (!token.ok()) return token.status();
  out.token = std::move(*token);
  auto hsm = hsm::Hsm::Open(out.token->config());
  if (!hsm.ok()) return hsm.status();
  out.hsm = std::move(*hsm);
  auto provider = hsm::provider::HsmKeyProvider::Create(out.hsm);
  if (!provider.ok()) return provider.status();
  out.provider = std::move(*provider);
  return out;
}

absl::StatusOr<RawSigner> RawSigner::Create(hsm::Hsm& hsm, std::string_view key_id,
                                            crypto::SignAlgorithm alg) {
  auto raw = hsm::testing::RawAccess(hsm, key_id);
  if (!raw.ok()) return raw.status();
  RawSigner signer;
  signer.functions_ = raw->functions;
  signer.key_ = raw->private_key;
  signer.mechanism_ = alg == crypto::SignAlgorithm::kEdDSA ? CKM_EDDSA : CKM_ECDSA;
  if (alg != crypto::SignAlgorithm::kEdDSA && alg != crypto::SignAlgorithm::kES256 &&
      alg != crypto::SignAlgorithm::kES384) {
    return absl::InvalidArgumentError("RawSigner: only ES256, ES384 and EdDSA");
  }
  CK_RV rv = signer.functions_->C_OpenSession(
      raw->slot, CKF_SERIAL_SESSION | CKF_RW_SESSION, nullptr, nullptr,
      &signer.session_);
  if (rv != CKR_OK) return hsm::CkStatus("C_OpenSession", rv);
  return signer;
}

RawSigner& RawSigner::operator=(RawSigner&& other) noexcept {
  std::swap(functions_, other.functions_);
  std::swap(session_, other.session_);
  std::swap(key_, other.key_);
  std::swap(mechanism_, other.mechanism_);
  return *this;
}

RawSigner::~RawSigner() {
  if (functions_ != nullptr && session_ != CK_INVALID_HANDLE) {
    functions_->C_CloseSession(session_);
  }
}

std::string RawSigner::Sign(const std::string& input) {
  CK_MECHANISM mech{mechanism_, nullptr, 0};
  unsigned char sig[128];
  CK_ULONG sig_len = sizeof(sig);
  if (functions_->C_SignInit(session_, &mech, key_) != CKR_OK) return "";
  auto* data = reinterpret_cast<CK_BYTE_PTR>(const_cast<char*>(input.data()));
  if (functions_->C_Sign(session_, data, input.size(), sig, &sig_len) != CKR_OK) {
    return "";
  }
  return std::string(reinterpret_cast<char*>(sig), sig_len);
}

int Fail(const char* mode, const char* what, const absl::Status& status) {
  std::fprintf(stderr, "%s bench: %s: %s\n", mode, what,
               std::string(status.message()).c_str());
  return 1;
}

}  // namespace tokensign::bench
