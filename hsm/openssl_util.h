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
#include "absl/status/statusor.h"

namespace tokensign::hsm {

struct PkeyDeleter { void operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); } };
struct PkeyCtxDeleter { void operator()(EVP_PKEY_CTX* p) const { EVP_PKEY_CTX_free(p); } };
struct MdCtxDeleter { void operator()(EVP_MD_CTX* p) const { EVP_MD_CTX_free(p); } };
struct BnDeleter { void operator()(BIGNUM* p) const { BN_free(p); } };

using UniquePkey = std::unique_ptr<EVP_PKEY, PkeyDeleter>;
using UniquePkeyCtx = std::unique_ptr<EVP_PKEY_CTX, PkeyCtxDeleter>;
using UniqueMdCtx = std::unique_ptr<EVP_MD_CTX, MdCtxDeleter>;
using UniqueBn = std::unique_ptr<BIGNUM, BnDeleter>;

// DER SubjectPublicKeyInfo of a key's public half, and back (default library
// context; InvalidArgument when the bytes are not one SPKI).
absl::StatusOr<std::string> SpkiDer(const EVP_PKEY* key);
absl::StatusOr<UniquePkey> ParseSpki(std::string_view der);

// Status with `what` and the drained OpenSSL error queue, e.g.
// "EVP_DigestVerifyInit: error:...:bad signature" (with each error's data
// text). Clears the queue. When the tokensign provider failed on this thread
// since the last ClearErrors (RecordProviderStatus), that failure decides:
// its code (e.g. Unavailable for an HSM that is down, so callers retry) and
// its message ("C_Sign: CKR_DEVICE_REMOVED ...") instead of OpenSSL's queue.
absl::Status OpenSslError(std::string_view what,
                          absl::StatusCode code = absl::StatusCode::kInternal);

// Called by the tokensign provider when an operation fails: OpenSSL carries
// only text across EVP, so the absl::Status (code and message) is kept per
// thread for OpenSslError. Thread-safety: per-thread state only.
void RecordProviderStatus(const absl::Status& status);

// Forgets stale OpenSSL errors and provider status on this thread; call before
// an EVP operation whose failure will be reported with OpenSslError.
void ClearErrors();

// ECDSA signature encodings. JWS (and PKCS#11 CKM_ECDSA) use raw r||s, each
// half the curve's byte size; OpenSSL and X.509 use a DER ECDSA-Sig-Value.
// raw r||s (each half <= 60 bytes, i.e. up to P-384 and beyond) -> DER, without
// BIGNUMs or heap work beyond the result. InvalidArgument for an odd or
// out-of-range length.
absl::StatusOr<std::string> EcdsaRawToDer(std::string_view raw);
// DER -> raw r||s with each integer left-padded to `half` bytes;
// InvalidArgument naming the problem when the DER is malformed or an integer
// is longer than `half`.
absl::StatusOr<std::string> EcdsaDerToRaw(std::string_view der, size_t half);

}  // namespace tokensign::hsm

#endif  // TOKENSIGN_HSM_OPENSSL_UTIL_H_
