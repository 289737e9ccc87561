#include "signer/token/evp_jws_signer.h"

#include <openssl/err.h>

#include <mutex>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "crypto/ecdsa_encoding.h"
#include "crypto/openssl_error.h"
#include "signer/token/jws.h"

namespace tokensign::token {
namespace {

using crypto::SignAlgorithm;

bool IsEcdsa(SignAlgorithm alg) {
  return alg == SignAlgorithm::kES256 || alg == SignAlgorithm::kES384;
}

// Largest DER ECDSA-Sig-Value for P-384: SEQUENCE + 2 x (INTEGER, 0x00, 48).
constexpr size_t kMaxDerSignature = 2 + 2 * (3 + 48);

}  // namespace

// Contexts initialised for one operation on one key. Take() hands out a ready
// context (a pooled one or a new one); Give() returns it after a successful
// operation. At most kMaxIdle stay pooled; extra ones are freed.
class EvpJwsSigner::ContextPool {
 public:
  static constexpr size_t kMaxIdle = 16;

  ContextPool(EVP_PKEY* key, bool sign) : key_(key), sign_(sign) {}

  absl::StatusOr<crypto::UniquePkeyCtx> Take() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (!idle_.empty()) {
        crypto::UniquePkeyCtx c = std::move(idle_.back());
        idle_.pop_back();
        return c;
      }
    }
    // The key's own provider serves the operation, as
    // EVP_DigestSignInit_ex(NULL libctx) would pick.
    crypto::UniquePkeyCtx c(EVP_PKEY_CTX_new_from_pkey(nullptr, key_, nullptr));
    if (c == nullptr) return crypto::OpenSslError("EVP_PKEY_CTX_new_from_pkey");
    const int rc = sign_ ? EVP_PKEY_sign_init(c.get())
                         : EVP_PKEY_verify_init(c.get());
    if (rc != 1) {
      return crypto::OpenSslError(sign_ ? "EVP_PKEY_sign_init"
                                        : "EVP_PKEY_verify_init");
    }
    return c;
  }

  void Give(crypto::UniquePkeyCtx c) {
    std::lock_guard<std::mutex> lock(mu_);
    if (idle_.size() < kMaxIdle) idle_.push_back(std::move(c));
  }

 private:
  EVP_PKEY* const key_;  // owned by the EvpJwsSigner
  const bool sign_;
  // std::mutex, not absl::Mutex: contexts pass between signing threads
  // through idle_, and TSan sees only the std lock (Debian's abseil is not
  // instrumented for it).
  std::mutex mu_;
  std::vector<crypto::UniquePkeyCtx> idle_;  // guarded by mu_
};

EvpJwsSigner::EvpJwsSigner(std::shared_ptr<EVP_PKEY> private_key,
                           std::shared_ptr<EVP_PKEY> public_key,
                           SignAlgorithm alg)
    : private_key_(std::move(private_key)),
      public_key_(std::move(public_key)),
      alg_(alg) {}

EvpJwsSigner::~EvpJwsSigner() = default;

absl::StatusOr<std::shared_ptr<const EvpJwsSigner>> EvpJwsSigner::Create(
    std::shared_ptr<EVP_PKEY> private_key, std::shared_ptr<EVP_PKEY> public_key,
    SignAlgorithm alg) {
  if (absl::Status s = CheckKeyForAlgorithm(private_key.get(), alg); !s.ok())
    return s;
  return Make(std::move(private_key), std::move(public_key), alg);
}

absl::StatusOr<std::shared_ptr<const EvpJwsSigner>>
EvpJwsSigner::CreateVerifier(std::shared_ptr<EVP_PKEY> public_key,
                             SignAlgorithm alg) {
  if (absl::Status s = CheckKeyForAlgorithm(public_key.get(), alg); !s.ok())
    return s;
  return Make(nullptr, std::move(public_key), alg);
}

absl::StatusOr<std::shared_ptr<const EvpJwsSigner>> EvpJwsSigner::Make(
    std::shared_ptr<EVP_PKEY> private_key, std::shared_ptr<EVP_PKEY> public_key,
    SignAlgorithm alg) {
  const EVP_PKEY* sizing =
      private_key != nullptr ? private_key.get() : public_key.get();
  absl::StatusOr<size_t> raw_len = SignatureLength(sizing, alg);
  if (!raw_len.ok()) return raw_len.status();
  if (public_key != nullptr && public_key != private_key) {
    if (absl::Status s = CheckKeyForAlgorithm(public_key.get(), alg); !s.ok())
      return s;
  }
  std::shared_ptr<EvpJwsSigner> signer(
      new EvpJwsSigner(std::move(private_key), std::move(public_key), alg));
  signer->raw_len_ = *raw_len;
  if (IsEcdsa(alg)) {
    signer->md_.reset(EVP_MD_fetch(
        nullptr, alg == SignAlgorithm::kES384 ? "SHA384" : "SHA256", nullptr));
    if (signer->md_ == nullptr) return crypto::OpenSslError("EVP_MD_fetch");
    // One context each up front: a key OpenSSL cannot sign or verify with
    // fails here, at load, not on the first token.
    for (bool sign : {true, false}) {
      EVP_PKEY* key =
          sign ? signer->private_key_.get() : signer->public_key_.get();
      if (key == nullptr) continue;
      auto pool = std::make_unique<ContextPool>(key, sign);
      absl::StatusOr<crypto::UniquePkeyCtx> c = pool->Take();
      if (!c.ok()) return c.status();
      pool->Give(*std::move(c));
      (sign ? signer->sign_pool_ : signer->verify_pool_) = std::move(pool);
    }
  }
  return std::shared_ptr<const EvpJwsSigner>(std::move(signer));
}

std::string EvpJwsSigner::AlgName() const {
  return std::string(crypto::SignAlgorithmName(alg_));
}

absl::StatusOr<std::string> EvpJwsSigner::Digest(std::string_view input) const {
  if (md_ == nullptr) {
    return absl::FailedPreconditionError(
        absl::StrCat(AlgName(), ": signs the message, not a digest"));
  }
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int md_len = 0;
  if (EVP_Digest(input.data(), input.size(), md, &md_len, md_.get(),
                 nullptr) != 1) {
    return crypto::OpenSslError("EVP_Digest");
  }
  return std::string(reinterpret_cast<char*>(md), md_len);
}

absl::StatusOr<std::string> EvpJwsSigner::Sign(
    std::string_view signing_input) const {
  if (private_key_ == nullptr) {
    return absl::FailedPreconditionError("key: no private key to sign with");
  }
  crypto::ClearErrors();  // a failure below reports only its own errors
  if (sign_pool_ == nullptr) {
    return SignRaw(private_key_.get(), alg_, signing_input);
  }
  absl::StatusOr<std::string> digest = Digest(signing_input);
  if (!digest.ok()) return digest.status();
  absl::StatusOr<crypto::UniquePkeyCtx> ctx = sign_pool_->Take();
  if (!ctx.ok()) return ctx.status();
  unsigned char der[kMaxDerSignature];
  size_t der_len = sizeof(der);
  if (EVP_PKEY_sign(ctx->get(), der, &der_len,
                    reinterpret_cast<const unsigned char*>(digest->data()),
                    digest->size()) != 1) {
    return crypto::OpenSslError(
        absl::StrCat("EVP_PKEY_sign(", AlgName(), ")"));
  }
  sign_pool_->Give(*std::move(ctx));
  return crypto::EcdsaDerToRaw(
      std::string_view(reinterpret_cast<char*>(der), der_len), raw_len_ / 2);
}

absl::Status EvpJwsSigner::Verify(std::string_view signing_input,
                                  std::string_view signature) const {
  if (public_key_ == nullptr) {
    return absl::FailedPreconditionError(
        "key: no public key to verify with");
  }
  if (verify_pool_ == nullptr) {
    return VerifyRaw(public_key_.get(), alg_, signing_input, signature);
  }
  if (signature.size() != raw_len_) {
    return absl::InvalidArgumentError(
        absl::StrCat("signature: ", signature.size(), " bytes; ", AlgName(),
                     " with this key needs exactly ", raw_len_));
  }
  crypto::ClearErrors();
  absl::StatusOr<std::string> der = crypto::EcdsaRawToDer(signature);
  if (!der.ok()) return der.status();
  absl::StatusOr<std::string> digest = Digest(signing_input);
  if (!digest.ok()) return digest.status();
  absl::StatusOr<crypto::UniquePkeyCtx> ctx = verify_pool_->Take();
  if (!ctx.ok()) return ctx.status();
  const int rc = EVP_PKEY_verify(
      ctx->get(), reinterpret_cast<const unsigned char*>(der->data()),
      der->size(), reinterpret_cast<const unsigned char*>(digest->data()),
      digest->size());
  if (rc == 1 || rc == 0) verify_pool_->Give(*std::move(ctx));
  ERR_clear_error();
  if (rc != 1) {
    return absl::UnauthenticatedError(absl::StrCat(
        "signature: does not verify (", AlgName(), ") with the public key"));
  }
  return absl::OkStatus();
}

}  // namespace tokensign::token
