#include "crypto/ecdsa_encoding.h"

#include <openssl/ecdsa.h>

#include <cstring>
#include <string>

#include "absl/strings/str_cat.h"
#include "crypto/openssl_error.h"
#include "crypto/ssl_ptr.h"

namespace tokensign::crypto {
namespace {

constexpr size_t kMaxEcdsaHalf = 60;  // keeps every DER length in short form

// Appends one DER INTEGER (minimal magnitude, 0x00 before a set high bit).
void PutDerInteger(const unsigned char* v, size_t n, std::string* out) {
  while (n > 1 && v[0] == 0) ++v, --n;
  const bool pad = (v[0] & 0x80) != 0;
  out->push_back(0x02);
  out->push_back(static_cast<char>(n + (pad ? 1 : 0)));
  if (pad) out->push_back('\0');
  out->append(reinterpret_cast<const char*>(v), n);
}

// Parses one short-form, non-negative DER INTEGER at der[*pos] into
// out[0..half), left-padded. False for anything else (EcdsaDerToRaw then asks
// OpenSSL's parser).
bool TakeDerInteger(const unsigned char* der, size_t der_len, size_t* pos,
                    size_t half, unsigned char* out) {
  if (*pos + 2 > der_len || der[*pos] != 0x02) return false;
  size_t len = der[*pos + 1];
  size_t at = *pos + 2;
  if (len == 0 || len > 0x7f || at + len > der_len) return false;
  if ((der[at] & 0x80) != 0) return false;  // negative
  *pos = at + len;
  while (len > 0 && der[at] == 0) {  // leading zero octets
    ++at;
    --len;
  }
  if (len > half) return false;
  std::memset(out, 0, half - len);
  std::memcpy(out + half - len, der + at, len);
  return true;
}

}  // namespace

absl::StatusOr<std::string> EcdsaRawToDer(std::string_view raw) {
  const size_t half = raw.size() / 2;
  if (half == 0 || half > kMaxEcdsaHalf || raw.size() % 2 != 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "ECDSA signature: raw r||s of ", raw.size(),
        " bytes; need an even length of 2..", 2 * kMaxEcdsaHalf));
  }
  const auto* r = reinterpret_cast<const unsigned char*>(raw.data());
  std::string der("\x30\x00", 2);  // SEQUENCE; length set below
  der.reserve(2 + 2 * (3 + half));
  PutDerInteger(r, half, &der);
  PutDerInteger(r + half, half, &der);
  der[1] = static_cast<char>(der.size() - 2);
  return der;
}

absl::StatusOr<std::string> EcdsaDerToRaw(std::string_view der_view,
                                          size_t half) {
  const auto* der = reinterpret_cast<const unsigned char*>(der_view.data());
  const size_t der_len = der_view.size();
  std::string raw(2 * half, '\0');
  auto* out = reinterpret_cast<unsigned char*>(raw.data());
  // Fast path without BIGNUMs: SEQUENCE { INTEGER r, INTEGER s }, short form.
  if (der_len >= 2 && der[0] == 0x30 && der[1] == der_len - 2) {
    size_t pos = 2;
    if (TakeDerInteger(der, der_len, &pos, half, out) &&
        TakeDerInteger(der, der_len, &pos, half, out + half) &&
        pos == der_len) {
      return raw;
    }
  }
  const unsigned char* p = der;
  SslPtr<ECDSA_SIG> sig(d2i_ECDSA_SIG(nullptr, &p, static_cast<long>(der_len)));
  if (sig == nullptr || p != der + der_len) {
    return OpenSslError("ECDSA signature: DER decode",
                        absl::StatusCode::kInvalidArgument);
  }
  const BIGNUM* r = nullptr;
  const BIGNUM* s = nullptr;
  ECDSA_SIG_get0(sig.get(), &r, &s);
  if (BN_bn2binpad(r, out, static_cast<int>(half)) < 0 ||
      BN_bn2binpad(s, out + half, static_cast<int>(half)) < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("ECDSA signature: r or s longer than ", half, " bytes"));
  }
  return raw;
}

}  // namespace tokensign::crypto
