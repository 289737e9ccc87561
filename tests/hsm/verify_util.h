// OpenSSL verification of JOSE-style signatures, for the hsm tests (independent
// of the code under test: uses only OpenSSL EVP).
#ifndef TOKENSIGN_TESTS_HSM_VERIFY_UTIL_H_
#define TOKENSIGN_TESTS_HSM_VERIFY_UTIL_H_

#include <openssl/ecdsa.h>
#include <openssl/evp.h>
#include <openssl/rsa.h>

#include <string>
#include <string_view>

#include "crypto/algorithm.h"

namespace tokensign::hsm::testing {

// ES*: raw r||s -> DER; EdDSA: pure Ed25519; RS256: PKCS#1 v1.5; PS256: PSS
// salt 32. digest_only: `data` is the digest (not for EdDSA).
inline bool VerifyJose(EVP_PKEY* pkey, crypto::SignAlgorithm alg, std::string_view data,
                       std::string_view sig, bool digest_only = false) {
  std::string der_sig(sig);
  if (alg == crypto::SignAlgorithm::kES256 || alg == crypto::SignAlgorithm::kES384) {
    size_t half = sig.size() / 2;
    ECDSA_SIG* ecdsa = ECDSA_SIG_new();
    BIGNUM* r = BN_bin2bn(reinterpret_cast<const unsigned char*>(sig.data()),
                          half, nullptr);
    BIGNUM* s =
        BN_bin2bn(reinterpret_cast<const unsigned char*>(sig.data()) + half,
                  half, nullptr);
    ECDSA_SIG_set0(ecdsa, r, s);
    unsigned char* der = nullptr;
    int len = i2d_ECDSA_SIG(ecdsa, &der);
    der_sig.assign(reinterpret_cast<char*>(der), len);
    OPENSSL_free(der);
    ECDSA_SIG_free(ecdsa);
  }
  const EVP_MD* md = alg == crypto::SignAlgorithm::kES384   ? EVP_sha384()
                     : alg == crypto::SignAlgorithm::kEdDSA ? nullptr
                                                    : EVP_sha256();
  const auto* sig_bytes =
      reinterpret_cast<const unsigned char*>(der_sig.data());
  const auto* bytes = reinterpret_cast<const unsigned char*>(data.data());
  bool ok = false;
  if (digest_only) {
    EVP_PKEY_CTX* ctx = EVP_PKEY_CTX_new(pkey, nullptr);
    ok = EVP_PKEY_verify_init(ctx) == 1 &&
         EVP_PKEY_CTX_set_signature_md(ctx, md) == 1;
    if (ok && alg == crypto::SignAlgorithm::kPS256) {
      ok = EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_PSS_PADDING) == 1 &&
           EVP_PKEY_CTX_set_rsa_pss_saltlen(ctx, 32) == 1;
    } else if (ok && alg == crypto::SignAlgorithm::kRS256) {
      ok = EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_PADDING) == 1;
    }
    ok = ok && EVP_PKEY_verify(ctx, sig_bytes, der_sig.size(), bytes,
                               data.size()) == 1;
    EVP_PKEY_CTX_free(ctx);
    return ok;
  }
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  EVP_PKEY_CTX* pctx = nullptr;
  ok = EVP_DigestVerifyInit(ctx, &pctx, md, nullptr, pkey) == 1;
  if (ok && alg == crypto::SignAlgorithm::kPS256) {
    ok = EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) == 1 &&
         EVP_PKEY_CTX_set_rsa_mgf1_md(pctx, EVP_sha256()) == 1 &&
         EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, 32) == 1;
  } else if (ok && alg == crypto::SignAlgorithm::kRS256) {
    ok = EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PADDING) == 1;
  }
  ok = ok && EVP_DigestVerify(ctx, sig_bytes, der_sig.size(), bytes,
                              data.size()) == 1;
  EVP_MD_CTX_free(ctx);
  return ok;
}

}  // namespace tokensign::hsm::testing

#endif  // TOKENSIGN_TESTS_HSM_VERIFY_UTIL_H_
