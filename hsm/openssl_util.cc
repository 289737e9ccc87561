#include "hsm/openssl_util.h"

#include <openssl/ecdsa.h>
#include <openssl/err.h>
#include <openssl/x509.h>

#include <cstring>
#include <string>

#include "absl/strings/str_cat.h"

namespace tokensign::hsm {
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

struct EcdsaSigDeleter {
  void operator()(ECDSA_SIG* p) const { ECDSA_SIG_free(p); }
};

thread_local absl::Status provider_status;  // OK = none recorded

}  // namespace

void RecordProviderStatus(const absl::Status& status) {
  provider_status = status;
}

void ClearErrors() {
  ERR_clear_error();
  provider_status = absl::OkStatus();
}

absl::Status OpenSslError(std::string_view what, absl::StatusCode code) {
  if (!provider_status.ok()) {
    absl::Status from_provider = std::move(provider_status);
    provider_status = absl::OkStatus();
    ERR_clear_error();
    return absl::Status(from_provider.code(),
                        absl::StrCat(absl::string_view(what.data(), what.size()),
                                     ": ", from_provider.message()));
  }
  std::string message(what);
  bool first = true;
  unsigned long err;  // NOLINT(runtime/int): OpenSSL's type.
  const char* data = nullptr;
  int flags = 0;
  while ((err = ERR_get_error_all(nullptr, nullptr, nullptr, &data, &flags)) !=
         0) {
    char buf[256];
    ERR_error_string_n(err, buf, sizeof(buf));
    message += first ? ": " : "; ";
    message += buf;
    if ((flags & ERR_TXT_STRING) != 0 && data != nullptr && *data != '\0') {
      message += " (";
      message += data;
      message += ")";
    }
    first = false;
  }
  if (first) message += ": (no OpenSSL error queued)";
  return absl::Status(code, message);
}

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
  std::unique_ptr<ECDSA_SIG, EcdsaSigDeleter> sig(
      d2i_ECDSA_SIG(nullptr, &p, static_cast<long>(der_len)));
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

}  // namespace tokensign::hsm
