#include "crypto/spki.h"

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/x509.h>

#include "crypto/openssl_error.h"

namespace tokensign::crypto {

absl::StatusOr<std::string> SpkiDer(const EVP_PKEY* key) {
  unsigned char* der = nullptr;
  int len = i2d_PUBKEY(const_cast<EVP_PKEY*>(key), &der);
  if (len <= 0) return OpenSslError("i2d_PUBKEY");
  std::string out(reinterpret_cast<const char*>(der), static_cast<size_t>(len));
  OPENSSL_free(der);
  return out;
}

absl::StatusOr<UniquePkey> ParseSpki(std::string_view der) {
  const unsigned char* p = reinterpret_cast<const unsigned char*>(der.data());
  UniquePkey key(d2i_PUBKEY(nullptr, &p, static_cast<long>(der.size())));
  if (key == nullptr ||
      p != reinterpret_cast<const unsigned char*>(der.data()) + der.size()) {
    ERR_clear_error();
    return absl::InvalidArgumentError(
        "public key: not one DER SubjectPublicKeyInfo");
  }
  return key;
}

}  // namespace tokensign::crypto
