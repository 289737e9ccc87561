// tokensign::hsm::provider::HsmKeyProvider — HSM keys as ordinary OpenSSL EVP_PKEYs for
// the daemon (the "seam": signer/ signs with an EVP_PKEY and never sees PKCS#11).
//
// Contract: Create() makes a private OSSL_LIB_CTX, registers the tokensign provider in it
// with OSSL_PROVIDER_add_builtin (bound to the given Hsm) and loads it plus the default
// provider. PrivateKey(id) returns an EVP_PKEY whose private half stays in the HSM:
// signing with it (EVP_DigestSign*, EVP_PKEY_sign) runs in the tokensign provider and
// calls Hsm::SignDigest / Hsm::Sign; its public half exports normally (i2d_PUBKEY,
// PEM_write_PUBKEY, EVP_PKEY_get1_encoded_public_key, EVP_PKEY_get_bn_param, ...), and
// verification with it runs in the default provider. Supported: EC P-256 / P-384
// (ECDSA with SHA-256 / SHA-384, DER signatures), RSA (PKCS#1 v1.5 and PSS with SHA-256,
// MGF1-SHA-256, salt 32), Ed25519 (one-shot EVP_DigestSign with no digest).
//
// Signing call pattern (libctx NULL is fine: OpenSSL 3.0 falls back to the signature of
// the key's own provider):
//   EVP_DigestSignInit_ex(mdctx, &pctx, "SHA256" | "SHA384" | nullptr /*Ed25519*/,
//                         nullptr, nullptr, pkey, nullptr);
//   [RSA] EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING | RSA_PKCS1_PADDING);
//   [PSS] EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST);
//         EVP_PKEY_CTX_set_rsa_mgf1_md(pctx, EVP_sha256());
//   EVP_DigestSign(mdctx, nullptr, &len, msg, n); EVP_DigestSign(mdctx, sig, &len, msg, n);
//
// Keys are cached by id; the EVP_PKEYs (and the library context behind them) stay valid
// after the HsmKeyProvider is destroyed until the last shared_ptr is released.
//
// Thread-safety: all methods are thread-safe. A returned EVP_PKEY may be used to sign
// from many threads at once (each with its own EVP_MD_CTX).
#ifndef TOKENSIGN_HSM_PROVIDER_PROVIDER_KEYS_H_
#define TOKENSIGN_HSM_PROVIDER_PROVIDER_KEYS_H_

#include <openssl/evp.h>

#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "hsm/hsm.h"

namespace tokensign::hsm::provider {

class HsmKeyProvider {
 public:
  static absl::StatusOr<std::unique_ptr<HsmKeyProvider>> Create(std::shared_ptr<Hsm> hsm);
  ~HsmKeyProvider();
  HsmKeyProvider(const HsmKeyProvider&) = delete;
  HsmKeyProvider& operator=(const HsmKeyProvider&) = delete;

  // The key with CKA_ID `id_hex` (case-insensitive hex) as an EVP_PKEY; cached.
  // NotFound when the token holds no such key.
  absl::StatusOr<std::shared_ptr<EVP_PKEY>> PrivateKey(std::string_view id_hex);
  // Drops a cached key (after the key was destroyed in the HSM).
  void Evict(std::string_view id_hex);

  // The private library context holding the tokensign and default providers.
  OSSL_LIB_CTX* libctx() const;
  Hsm& hsm() const { return *hsm_; }

 private:
  struct State;
  HsmKeyProvider(std::shared_ptr<Hsm> hsm, std::shared_ptr<State> state);

  std::shared_ptr<Hsm> hsm_;
  std::shared_ptr<State> state_;
  std::mutex mu_;
  std::map<std::string, std::shared_ptr<EVP_PKEY>> cache_;
};

}  // namespace tokensign::hsm::provider

#endif  // TOKENSIGN_HSM_PROVIDER_PROVIDER_KEYS_H_
