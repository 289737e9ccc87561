#include "signer/token/jws.h"

#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/rsa.h>

#include <cstring>
#include <memory>
#include <string>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "crypto/algorithm.h"
#include "crypto/ecdsa_encoding.h"
#include "crypto/openssl_error.h"
#include "crypto/ssl_ptr.h"
#include "crypto/str_cat.h"
#include "signer/token/json_text.h"

namespace tokensign::token {
namespace {

using crypto::SignAlgorithm;

constexpr int kMinRsaBits = 2048;

bool IsEcdsa(SignAlgorithm alg) {
  return alg == SignAlgorithm::kES256 || alg == SignAlgorithm::kES384;
}

// Digest name for EVP_DigestSignInit_ex; nullptr for Ed25519 (one-shot, no
// digest).
const char* DigestName(SignAlgorithm alg) {
  switch (alg) {
    case SignAlgorithm::kES384:
      return "SHA384";
    case SignAlgorithm::kEdDSA:
      return nullptr;
    default:
      return "SHA256";
  }
}

std::string AlgName(SignAlgorithm alg) {
  return std::string(crypto::SignAlgorithmName(alg));
}

std::string DescribeKey(const EVP_PKEY* key) {
  const char* name = EVP_PKEY_get0_type_name(key);
  return absl::StrCat(name != nullptr ? name : "unknown", " key of ",
                      EVP_PKEY_get_bits(key), " bits");
}

// Sets the RSA padding parameters on a sign/verify context.
absl::Status SetRsaPadding(EVP_PKEY_CTX* pctx, SignAlgorithm alg) {
  if (alg == SignAlgorithm::kPS256) {
    if (EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) != 1 ||
        EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST) != 1 ||
        EVP_PKEY_CTX_set_rsa_mgf1_md_name(pctx, "SHA256", nullptr) != 1) {
      return crypto::OpenSslError("PS256: setting RSA-PSS padding");
    }
  } else if (alg == SignAlgorithm::kRS256) {
    if (EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PADDING) != 1) {
      return crypto::OpenSslError("RS256: setting RSA PKCS#1 v1.5 padding");
    }
  }
  return absl::OkStatus();
}

bool IsBase64UrlChar(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
         (c >= '0' && c <= '9') || c == '-' || c == '_';
}

// The 6-bit value of a base64url character (IsBase64UrlChar(c) holds).
int Base64UrlValue(char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  return c == '-' ? 62 : 63;
}

}  // namespace

std::string Base64UrlEncode(std::string_view data) {
  std::string out;
  absl::WebSafeBase64Escape(AbslView(data), &out);
  return out;
}

absl::StatusOr<std::string> Base64UrlDecode(std::string_view data,
                                            std::string_view field) {
  for (char c : data) {
    if (!IsBase64UrlChar(c)) {
      return absl::InvalidArgumentError(absl::StrCat(
          AbslView(field),
          ": not base64url; only A-Z a-z 0-9 - _ without padding are allowed"));
    }
  }
  std::string out;
  if (data.size() % 4 == 1 || !absl::WebSafeBase64Unescape(AbslView(data), &out)) {
    return absl::InvalidArgumentError(absl::StrCat(
        AbslView(field), ": not base64url; length ", data.size(), " is impossible"));
  }
  // Only the canonical encoding: the unused low bits of a final partial group
  // must be zero. Otherwise "AQ", "AR", ... "Af" all decode to one byte, and a
  // token (or checkpoint) would have several texts that all verify, each with
  // its own SHA-256 in the audit log.
  const size_t rem = data.size() % 4;
  if (rem != 0 && (Base64UrlValue(data.back()) & (rem == 2 ? 0x0F : 0x03)) != 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        AbslView(field),
        ": not base64url in canonical form; the unused bits of the last "
        "character must be zero"));
  }
  return out;
}

absl::Status CheckKeyForAlgorithm(const EVP_PKEY* key, SignAlgorithm alg) {
  if (key == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat("key: missing; ", AlgName(alg), " needs a key"));
  }
  const int bits = EVP_PKEY_get_bits(key);
  bool ok = false;
  std::string want;
  switch (alg) {
    case SignAlgorithm::kES256:
    case SignAlgorithm::kES384: {
      const int need = alg == SignAlgorithm::kES256 ? 256 : 384;
      want =
          alg == SignAlgorithm::kES256 ? "an EC P-256 key" : "an EC P-384 key";
      ok = EVP_PKEY_is_a(key, "EC") && bits == need;
      // Software keys name their group; provider keys may not, then bits
      // decide.
      char group[64];
      size_t len = 0;
      if (ok &&
          EVP_PKEY_get_utf8_string_param(key, OSSL_PKEY_PARAM_GROUP_NAME, group,
                                         sizeof(group), &len) == 1) {
        std::string_view g(group, len);
        ok = need == 256
                 ? (g == "prime256v1" || g == "P-256" || g == "secp256r1")
                 : (g == "secp384r1" || g == "P-384");
      }
      ERR_clear_error();
      break;
    }
    case SignAlgorithm::kEdDSA:
      want = "an Ed25519 key";
      ok = EVP_PKEY_is_a(key, "ED25519");
      break;
    case SignAlgorithm::kPS256:
    case SignAlgorithm::kRS256:
      want = absl::StrCat("an RSA key of at least ", kMinRsaBits, " bits");
      ok = EVP_PKEY_is_a(key, "RSA") && bits >= kMinRsaBits;
      break;
  }
  if (!ok) {
    return absl::InvalidArgumentError(
        absl::StrCat("key: ", DescribeKey(key), " does not fit alg ",
                     AlgName(alg), "; ", AlgName(alg), " needs ", want));
  }
  return absl::OkStatus();
}

absl::StatusOr<size_t> SignatureLength(const EVP_PKEY* key, SignAlgorithm alg) {
  if (absl::Status s = CheckKeyForAlgorithm(key, alg); !s.ok()) return s;
  switch (alg) {
    case SignAlgorithm::kES256:
      return 64;
    case SignAlgorithm::kES384:
      return 96;
    case SignAlgorithm::kEdDSA:
      return 64;
    default:
      return static_cast<size_t>((EVP_PKEY_get_bits(key) + 7) / 8);
  }
}

absl::StatusOr<std::string> SignRaw(EVP_PKEY* key, SignAlgorithm alg,
                                    std::string_view signing_input) {
  crypto::ClearErrors();  // a failure below reports only its own errors
  absl::StatusOr<size_t> raw_len = SignatureLength(key, alg);
  if (!raw_len.ok()) return raw_len.status();
  crypto::UniqueMdCtx mdctx(EVP_MD_CTX_new());
  if (mdctx == nullptr) return crypto::OpenSslError("EVP_MD_CTX_new");
  EVP_PKEY_CTX* pctx = nullptr;  // owned by mdctx
  if (EVP_DigestSignInit_ex(mdctx.get(), &pctx, DigestName(alg), nullptr,
                            nullptr, key, nullptr) != 1) {
    return crypto::OpenSslError(
        absl::StrCat("EVP_DigestSignInit_ex(", AlgName(alg), ")"));
  }
  if (absl::Status s = SetRsaPadding(pctx, alg); !s.ok()) return s;
  // One call with a buffer of the key's maximum signature size (DER ECDSA may
  // be longer than raw r||s).
  const int max_size = EVP_PKEY_get_size(key);
  size_t sig_len = static_cast<size_t>(max_size > 0 ? max_size : 0) + 16;
  std::string sig(sig_len, '\0');
  if (EVP_DigestSign(
          mdctx.get(), reinterpret_cast<unsigned char*>(sig.data()), &sig_len,
          reinterpret_cast<const unsigned char*>(signing_input.data()),
          signing_input.size()) != 1) {
    return crypto::OpenSslError(
        absl::StrCat("EVP_DigestSign(", AlgName(alg), ")"));
  }
  sig.resize(sig_len);
  if (IsEcdsa(alg)) {
    return crypto::EcdsaDerToRaw(sig, *raw_len / 2);
  }
  if (sig.size() != *raw_len) {
    return absl::InternalError(
        absl::StrCat("EVP_DigestSign(", AlgName(alg), "): got ", sig.size(),
                     " signature bytes, expected ", *raw_len));
  }
  return sig;
}

absl::Status VerifyRaw(EVP_PKEY* key, SignAlgorithm alg,
                       std::string_view signing_input,
                       std::string_view signature) {
  crypto::ClearErrors();
  absl::StatusOr<size_t> raw_len = SignatureLength(key, alg);
  if (!raw_len.ok()) return raw_len.status();
  if (signature.size() != *raw_len) {
    return absl::InvalidArgumentError(
        absl::StrCat("signature: ", signature.size(), " bytes; ", AlgName(alg),
                     " with this key needs exactly ", *raw_len));
  }
  std::string der;
  std::string_view to_check = signature;
  if (IsEcdsa(alg)) {
    absl::StatusOr<std::string> d = crypto::EcdsaRawToDer(signature);
    if (!d.ok()) return d.status();
    der = *std::move(d);
    to_check = der;
  }
  crypto::UniqueMdCtx mdctx(EVP_MD_CTX_new());
  if (mdctx == nullptr) return crypto::OpenSslError("EVP_MD_CTX_new");
  EVP_PKEY_CTX* pctx = nullptr;
  if (EVP_DigestVerifyInit_ex(mdctx.get(), &pctx, DigestName(alg), nullptr,
                              nullptr, key, nullptr) != 1) {
    return crypto::OpenSslError(
        absl::StrCat("EVP_DigestVerifyInit_ex(", AlgName(alg), ")"));
  }
  if (absl::Status s = SetRsaPadding(pctx, alg); !s.ok()) return s;
  const int rc = EVP_DigestVerify(
      mdctx.get(), reinterpret_cast<const unsigned char*>(to_check.data()),
      to_check.size(),
      reinterpret_cast<const unsigned char*>(signing_input.data()),
      signing_input.size());
  ERR_clear_error();
  if (rc != 1) {
    return absl::UnauthenticatedError(absl::StrCat(
        "signature: does not verify (", AlgName(alg), ") with the public key"));
  }
  return absl::OkStatus();
}

std::string JwsHeaderJson(SignAlgorithm alg, std::string_view kid,
                          std::string_view typ) {
  if (IsPlainJsonString(kid) && IsPlainJsonString(typ)) {  // dump()'s bytes
    return absl::StrCat(R"({"alg":")", AbslView(crypto::SignAlgorithmName(alg)),
                        R"(","kid":")", AbslView(kid), R"(","typ":")", AbslView(typ),
                        R"("})");
  }
  // dump() escapes; kid and typ are normally plain ASCII.
  return absl::StrCat(R"({"alg":")", AbslView(crypto::SignAlgorithmName(alg)),
                      R"(","kid":)", nlohmann::json(std::string(kid)).dump(),
                      R"(,"typ":)", nlohmann::json(std::string(typ)).dump(),
                      "}");
}

absl::StatusOr<std::string> SignCompactWithHeader(EVP_PKEY* key,
                                                  SignAlgorithm alg,
                                                  std::string_view header_json,
                                                  std::string_view payload) {
  std::string out = Base64UrlEncode(header_json);
  out.push_back('.');
  out += Base64UrlEncode(payload);
  absl::StatusOr<std::string> sig = SignRaw(key, alg, out);
  if (!sig.ok()) return sig.status();
  out.push_back('.');
  out += Base64UrlEncode(*sig);
  return out;
}

absl::StatusOr<std::string> SignCompact(EVP_PKEY* key, SignAlgorithm alg,
                                        std::string_view kid,
                                        std::string_view typ,
                                        std::string_view payload) {
  return SignCompactWithHeader(key, alg, JwsHeaderJson(alg, kid, typ), payload);
}

absl::StatusOr<nlohmann::json> VerifyCompact(std::string_view jws,
                                             EVP_PKEY* public_key,
                                             const JwsExpectation& expect) {
  const size_t dot1 = jws.find('.');
  const size_t dot2 =
      dot1 == std::string_view::npos ? dot1 : jws.find('.', dot1 + 1);
  if (dot2 == std::string_view::npos ||
      jws.find('.', dot2 + 1) != std::string_view::npos) {
    return absl::InvalidArgumentError(
        "jws: not compact serialization; need exactly "
        "header.payload.signature");
  }
  const std::string_view header_b64 = jws.substr(0, dot1);
  const std::string_view payload_b64 = jws.substr(dot1 + 1, dot2 - dot1 - 1);
  const std::string_view sig_b64 = jws.substr(dot2 + 1);

  absl::StatusOr<std::string> header_bytes =
      Base64UrlDecode(header_b64, "jws.header");
  if (!header_bytes.ok()) return header_bytes.status();
  nlohmann::json header = nlohmann::json::parse(*header_bytes, nullptr, false);
  if (header.is_discarded() || !header.is_object()) {
    return absl::InvalidArgumentError("jws.header: not a JSON object");
  }
  for (const auto& [name, value] : header.items()) {
    if (name != "alg" && name != "kid" && name != "typ") {
      return absl::InvalidArgumentError(
          absl::StrCat("jws.header.", name.substr(0, 64),
                       ": not allowed; the header is exactly alg, kid, typ"));
    }
    if (!value.is_string()) {
      return absl::InvalidArgumentError(
          absl::StrCat("jws.header.", name, ": must be a string"));
    }
  }
  const std::string alg = header.value("alg", "");
  if (alg != crypto::SignAlgorithmName(expect.alg)) {
    return absl::InvalidArgumentError(
        absl::StrCat("jws.header.alg: \"", alg.substr(0, 32),
                     "\" does not match; the key signs ", AlgName(expect.alg)));
  }
  if (header.value("kid", "") != expect.kid) {
    return absl::InvalidArgumentError(absl::StrCat(
        "jws.header.kid: does not match; expected \"", AbslView(expect.kid), "\""));
  }
  if (header.value("typ", "") != expect.typ) {
    return absl::InvalidArgumentError(absl::StrCat(
        "jws.header.typ: does not match; expected \"", AbslView(expect.typ), "\""));
  }
  if (*header_bytes != JwsHeaderJson(expect.alg, expect.kid, expect.typ)) {
    return absl::InvalidArgumentError(
        "jws.header: not in canonical form; expected {\"alg\",\"kid\",\"typ\"} "
        "in that order");
  }
  absl::StatusOr<std::string> sig = Base64UrlDecode(sig_b64, "jws.signature");
  if (!sig.ok()) return sig.status();
  if (absl::Status s =
          VerifyRaw(public_key, expect.alg, jws.substr(0, dot2), *sig);
      !s.ok()) {
    return s;
  }
  absl::StatusOr<std::string> payload =
      Base64UrlDecode(payload_b64, "jws.payload");
  if (!payload.ok()) return payload.status();
  nlohmann::json claims = nlohmann::json::parse(*payload, nullptr, false);
  if (claims.is_discarded() || !claims.is_object()) {
    return absl::InvalidArgumentError("jws.payload: not a JSON object");
  }
  return claims;
}

}  // namespace tokensign::token
