// SslPtr<T>: the one RAII owner for OpenSSL objects in tokensign — a unique_ptr
// whose deleter is the type's own *_free function, picked by SslDeleter<T>.
// Thread-safety: as std::unique_ptr (one owner; the object's own rules apply).
#ifndef TOKENSIGN_CRYPTO_SSL_PTR_H_
#define TOKENSIGN_CRYPTO_SSL_PTR_H_

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/core.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/params.h>
#include <openssl/provider.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <memory>

namespace tokensign::crypto {

// Specialised below for each OpenSSL type tokensign owns; a type without a
// specialisation does not compile as SslPtr<T>.
template <typename T>
struct SslDeleter;

#define TOKENSIGN_SSL_DELETER(Type, free_fn)                  \
  template <>                                                 \
  struct SslDeleter<Type> {                                   \
    void operator()(Type* p) const { free_fn(p); }            \
  }

TOKENSIGN_SSL_DELETER(EVP_PKEY, EVP_PKEY_free);
TOKENSIGN_SSL_DELETER(EVP_PKEY_CTX, EVP_PKEY_CTX_free);
TOKENSIGN_SSL_DELETER(EVP_MD_CTX, EVP_MD_CTX_free);
TOKENSIGN_SSL_DELETER(EVP_MD, EVP_MD_free);
TOKENSIGN_SSL_DELETER(EVP_SIGNATURE, EVP_SIGNATURE_free);
TOKENSIGN_SSL_DELETER(BIGNUM, BN_free);
TOKENSIGN_SSL_DELETER(ECDSA_SIG, ECDSA_SIG_free);
TOKENSIGN_SSL_DELETER(OSSL_PARAM, OSSL_PARAM_free);
TOKENSIGN_SSL_DELETER(OSSL_PARAM_BLD, OSSL_PARAM_BLD_free);
TOKENSIGN_SSL_DELETER(OSSL_LIB_CTX, OSSL_LIB_CTX_free);
TOKENSIGN_SSL_DELETER(OSSL_PROVIDER, OSSL_PROVIDER_unload);
TOKENSIGN_SSL_DELETER(BIO, BIO_free);
TOKENSIGN_SSL_DELETER(X509, X509_free);
TOKENSIGN_SSL_DELETER(GENERAL_NAMES, GENERAL_NAMES_free);

#undef TOKENSIGN_SSL_DELETER

template <typename T>
using SslPtr = std::unique_ptr<T, SslDeleter<T>>;

// Short names for the owners used most.
using UniquePkey = SslPtr<EVP_PKEY>;
using UniquePkeyCtx = SslPtr<EVP_PKEY_CTX>;
using UniqueMdCtx = SslPtr<EVP_MD_CTX>;
using UniqueBn = SslPtr<BIGNUM>;

}  // namespace tokensign::crypto

#endif  // TOKENSIGN_CRYPTO_SSL_PTR_H_
