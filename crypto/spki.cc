#include "crypto/spki.h"

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/params.h>
#include <openssl/x509.h>

#include <cstring>

#include "crypto/openssl_error.h"

namespace tokensign::crypto {
namespace {

// The DER SubjectPublicKeyInfo headers of the keys tokensign makes, up to and
// including the BIT STRING's unused-bits byte; the key bytes follow.
// P-256 and P-384: id-ecPublicKey, the named curve, then an uncompressed
// point (0x04 || x || y). Ed25519: id-Ed25519, then the 32-byte key.
constexpr unsigned char kP256Header[] = {
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01,
    0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00};
constexpr unsigned char kP384Header[] = {
    0x30, 0x76, 0x30, 0x10, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02,
    0x01, 0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x22, 0x03, 0x62, 0x00};
constexpr unsigned char kEd25519Header[] = {0x30, 0x2a, 0x30, 0x05, 0x06, 0x03,
                                            0x2b, 0x65, 0x70, 0x03, 0x21, 0x00};

struct KnownForm {
  const unsigned char* header;
  size_t header_size;
  size_t key_size;
  const char* group;  // EC group name; nullptr = Ed25519
};
constexpr KnownForm kKnownForms[] = {
    {kP256Header, sizeof(kP256Header), 65, "P-256"},
    {kP384Header, sizeof(kP384Header), 97, "P-384"},
    {kEd25519Header, sizeof(kEd25519Header), 32, nullptr},
};

// The key of `der` when it is exactly one of kKnownForms (EC: an
// uncompressed point, which the import checks is on the curve); nullptr
// otherwise, or when OpenSSL refuses it: ParseSpki then decodes it in full
// and gives d2i_PUBKEY's verdict.
EVP_PKEY* FromKnownForm(std::string_view der) {
  const auto* bytes = reinterpret_cast<const unsigned char*>(der.data());
  for (const KnownForm& form : kKnownForms) {
    if (der.size() != form.header_size + form.key_size ||
        std::memcmp(bytes, form.header, form.header_size) != 0) {
      continue;
    }
    const unsigned char* key = bytes + form.header_size;
    if (form.group == nullptr) {
      return EVP_PKEY_new_raw_public_key_ex(nullptr, "ED25519", nullptr, key,
                                            form.key_size);
    }
    if (key[0] != 0x04) return nullptr;
    UniquePkeyCtx ctx(EVP_PKEY_CTX_new_from_name(nullptr, "EC", nullptr));
    if (ctx == nullptr || EVP_PKEY_fromdata_init(ctx.get()) != 1) return nullptr;
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME,
                                         const_cast<char*>(form.group), 0),
        OSSL_PARAM_construct_octet_string(OSSL_PKEY_PARAM_PUB_KEY,
                                          const_cast<unsigned char*>(key),
                                          form.key_size),
        OSSL_PARAM_construct_end()};
    EVP_PKEY* pkey = nullptr;
    if (EVP_PKEY_fromdata(ctx.get(), &pkey, EVP_PKEY_PUBLIC_KEY, params) != 1) {
      return nullptr;
    }
    return pkey;
  }
  return nullptr;
}

}  // namespace

absl::StatusOr<std::string> SpkiDer(const EVP_PKEY* key) {
  unsigned char* der = nullptr;
  int len = i2d_PUBKEY(const_cast<EVP_PKEY*>(key), &der);
  if (len <= 0) return OpenSslError("i2d_PUBKEY");
  std::string out(reinterpret_cast<const char*>(der), static_cast<size_t>(len));
  OPENSSL_free(der);
  return out;
}

absl::StatusOr<UniquePkey> ParseSpki(std::string_view der) {
  // The forms tokensign makes are built from their key bytes directly:
  // d2i_PUBKEY sets up an OpenSSL 3 decoder chain on every call (~0.15 ms,
  // once per key at every keyset load).
  if (EVP_PKEY* known = FromKnownForm(der)) return UniquePkey(known);
  ERR_clear_error();
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
