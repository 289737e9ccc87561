// RAII owners for OpenSSL objects used across tokensign, and OpenSSL error formatting.
// Thread-safety: the owners are plain unique_ptrs (one owner, no sharing).
#ifndef TOKENSIGN_HSM_OPENSSL_UTIL_H_
#define TOKENSIGN_HSM_OPENSSL_UTIL_H_

#include <openssl/bn.h>
#include <openssl/evp.h>

#include <memory>
#include <string>
#include <string_view>

#include "absl/status/status.h"

namespace tokensign::hsm {

struct PkeyDeleter { void operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); } };
struct PkeyCtxDeleter { void operator()(EVP_PKEY_CTX* p) const { EVP_PKEY_CTX_free(p); } };
struct MdCtxDeleter { void operator()(EVP_MD_CTX* p) const { EVP_MD_CTX_free(p); } };
struct BnDeleter { void operator()(BIGNUM* p) const { BN_free(p); } };

using UniquePkey = std::unique_ptr<EVP_PKEY, PkeyDeleter>;
using UniquePkeyCtx = std::unique_ptr<EVP_PKEY_CTX, PkeyCtxDeleter>;
using UniqueMdCtx = std::unique_ptr<EVP_MD_CTX, MdCtxDeleter>;
using UniqueBn = std::unique_ptr<BIGNUM, BnDeleter>;

// Status with `what` and the drained OpenSSL error queue, e.g.
// "EVP_DigestVerifyInit: error:...:bad signature". Clears the queue.
absl::Status OpenSslError(std::string_view what,
                          absl::StatusCode code = absl::StatusCode::kInternal);

}  // namespace tokensign::hsm

#endif  // TOKENSIGN_HSM_OPENSSL_UTIL_H_
