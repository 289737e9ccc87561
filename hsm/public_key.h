// Builds an OpenSSL EVP_PKEY (default library context) from the public
// attributes of a key object: CKA_EC_PARAMS + CKA_EC_POINT (DER OCTET STRING as
// the standard says, or raw as some modules store it) for EC and Ed25519,
// CKA_MODULUS + CKA_PUBLIC_EXPONENT for RSA. Thread-safety: stateless; the
// caller owns the session.
#ifndef TOKENSIGN_HSM_PUBLIC_KEY_H_
#define TOKENSIGN_HSM_PUBLIC_KEY_H_

#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "crypto/algorithm.h"
#include "crypto/ssl_ptr.h"
#include "hsm/pkcs11.h"
#include "hsm/pkcs11_call.h"

namespace tokensign::hsm {

absl::StatusOr<crypto::UniquePkey> ExportPublicKey(const P11& p11,
                                           CK_SESSION_HANDLE session,
                                           CK_OBJECT_HANDLE public_key,
                                           crypto::KeyType type);

// CKA_EC_POINT value -> raw point of `raw_size` bytes (65/97 uncompressed EC,
// 32 Ed25519).
absl::StatusOr<std::string> UnwrapEcPoint(std::string_view value,
                                          size_t raw_size);

}  // namespace tokensign::hsm

#endif  // TOKENSIGN_HSM_PUBLIC_KEY_H_
