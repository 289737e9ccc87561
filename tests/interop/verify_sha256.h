// The interop tests' independent check: an OpenSSL (default provider) SHA-256 digest
// verification of a DER/PKCS#1 signature made by an outside PKCS#11 consumer.
// Thread-safety: a pure function.
#ifndef TOKENSIGN_TESTS_INTEROP_VERIFY_SHA256_H_
#define TOKENSIGN_TESTS_INTEROP_VERIFY_SHA256_H_

#include <openssl/evp.h>

#include <string>

#include "crypto/ssl_ptr.h"

namespace tokensign::testing {

inline bool VerifySha256(EVP_PKEY* pub, const std::string& message, const std::string& sig) {
  crypto::UniqueMdCtx ctx(EVP_MD_CTX_new());
  return ctx != nullptr &&
         EVP_DigestVerifyInit(ctx.get(), nullptr, EVP_sha256(), nullptr, pub) == 1 &&
         EVP_DigestVerify(ctx.get(), reinterpret_cast<const unsigned char*>(sig.data()),
                          sig.size(), reinterpret_cast<const unsigned char*>(message.data()),
                          message.size()) == 1;
}

}  // namespace tokensign::testing

#endif  // TOKENSIGN_TESTS_INTEROP_VERIFY_SHA256_H_
