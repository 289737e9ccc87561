// DER SubjectPublicKeyInfo of a key's public half, and back (default library
// context). Pure functions; thread-safe.
#ifndef TOKENSIGN_CRYPTO_SPKI_H_
#define TOKENSIGN_CRYPTO_SPKI_H_

#include <openssl/evp.h>

#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "crypto/ssl_ptr.h"

namespace tokensign::crypto {

absl::StatusOr<std::string> SpkiDer(const EVP_PKEY* key);
// InvalidArgument when the bytes are not exactly one SPKI.
absl::StatusOr<UniquePkey> ParseSpki(std::string_view der);

}  // namespace tokensign::crypto

#endif  // TOKENSIGN_CRYPTO_SPKI_H_
