// ECDSA signature encodings. JWS (RFC 7518 3.4) and PKCS#11 CKM_ECDSA use raw
// r||s, each half the curve's byte size; OpenSSL and X.509 use a DER
// ECDSA-Sig-Value. Pure functions; thread-safe.
#ifndef TOKENSIGN_CRYPTO_ECDSA_ENCODING_H_
#define TOKENSIGN_CRYPTO_ECDSA_ENCODING_H_

#include <cstddef>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace tokensign::crypto {

// raw r||s (each half <= 60 bytes, i.e. up to P-384 and beyond) -> DER, without
// BIGNUMs or heap work beyond the result. InvalidArgument for an odd or
// out-of-range length.
absl::StatusOr<std::string> EcdsaRawToDer(std::string_view raw);

// DER -> raw r||s with each integer left-padded to `half` bytes;
// InvalidArgument naming the problem when the DER is malformed or an integer
// is longer than `half`.
absl::StatusOr<std::string> EcdsaDerToRaw(std::string_view der, size_t half);

}  // namespace tokensign::crypto

#endif  // TOKENSIGN_CRYPTO_ECDSA_ENCODING_H_
