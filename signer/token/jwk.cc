#include "signer/token/jwk.h"

#include <openssl/core_names.h>
#include <openssl/err.h>

#include <string>

#include "absl/strings/str_cat.h"
#include "crypto/algorithm.h"
#include "crypto/openssl_error.h"
#include "crypto/ssl_ptr.h"
#include "signer/token/jws.h"

namespace tokensign::token {
namespace {

// BIGNUM parameter of `key` as big-endian bytes; pad > 0 left-pads to exactly
// `pad` bytes, pad == 0 gives the minimal encoding.
absl::StatusOr<std::string> BnParam(const EVP_PKEY* key, const char* name,
                                    int pad) {
  BIGNUM* raw = nullptr;
  if (EVP_PKEY_get_bn_param(key, name, &raw) != 1) {
    return crypto::OpenSslError(absl::StrCat("EVP_PKEY_get_bn_param(", name, ")"));
  }
  crypto::UniqueBn bn(raw);
  const int len = pad > 0 ? pad : BN_num_bytes(bn.get());
  std::string out(static_cast<size_t>(len), '\0');
  auto* p = reinterpret_cast<unsigned char*>(out.data());
  if (pad > 0 ? BN_bn2binpad(bn.get(), p, pad) != pad
              : BN_bn2bin(bn.get(), p) != len) {
    return absl::InternalError(
        absl::StrCat("key: ", name, " does not fit ", len, " bytes"));
  }
  return out;
}

absl::StatusOr<std::string> Member(const nlohmann::json& jwk,
                                   const char* name) {
  auto it = jwk.find(name);
  if (it == jwk.end() || !it->is_string() ||
      it->get_ref<const std::string&>().empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "jwk.", name,
        ": missing or not a non-empty string; required by RFC 7638"));
  }
  return it->get<std::string>();
}

}  // namespace

absl::StatusOr<nlohmann::json> PublicJwkMembers(const EVP_PKEY* key) {
  if (key == nullptr) return absl::InvalidArgumentError("key: missing");
  nlohmann::json jwk = nlohmann::json::object();
  if (EVP_PKEY_is_a(key, "EC")) {
    const int bits = EVP_PKEY_get_bits(key);
    if (bits != 256 && bits != 384) {
      return absl::InvalidArgumentError(
          absl::StrCat("key: EC key of ", bits,
                       " bits; only P-256 and P-384 are supported"));
    }
    if (CheckKeyForAlgorithm(key, bits == 256 ? crypto::SignAlgorithm::kES256
                                              : crypto::SignAlgorithm::kES384)
            .ok() == false) {
      return absl::InvalidArgumentError("key: EC curve is not P-256 or P-384");
    }
    const int field = bits / 8;
    absl::StatusOr<std::string> x =
        BnParam(key, OSSL_PKEY_PARAM_EC_PUB_X, field);
    if (!x.ok()) return x.status();
    absl::StatusOr<std::string> y =
        BnParam(key, OSSL_PKEY_PARAM_EC_PUB_Y, field);
    if (!y.ok()) return y.status();
    jwk["kty"] = "EC";
    jwk["crv"] = bits == 256 ? "P-256" : "P-384";
    jwk["x"] = Base64UrlEncode(*x);
    jwk["y"] = Base64UrlEncode(*y);
  } else if (EVP_PKEY_is_a(key, "ED25519")) {
    unsigned char raw[32];
    size_t len = sizeof(raw);
    if (EVP_PKEY_get_raw_public_key(key, raw, &len) != 1 ||
        len != sizeof(raw)) {
      return crypto::OpenSslError("EVP_PKEY_get_raw_public_key(Ed25519)");
    }
    jwk["kty"] = "OKP";
    jwk["crv"] = "Ed25519";
    jwk["x"] =
        Base64UrlEncode(std::string_view(reinterpret_cast<char*>(raw), len));
  } else if (EVP_PKEY_is_a(key, "RSA")) {
    absl::StatusOr<std::string> n = BnParam(key, OSSL_PKEY_PARAM_RSA_N, 0);
    if (!n.ok()) return n.status();
    absl::StatusOr<std::string> e = BnParam(key, OSSL_PKEY_PARAM_RSA_E, 0);
    if (!e.ok()) return e.status();
    jwk["kty"] = "RSA";
    jwk["n"] = Base64UrlEncode(*n);
    jwk["e"] = Base64UrlEncode(*e);
  } else {
    const char* name = EVP_PKEY_get0_type_name(key);
    return absl::InvalidArgumentError(absl::StrCat(
        "key: type ", name != nullptr ? name : "unknown",
        " has no JWK here; supported: EC P-256/P-384, Ed25519, RSA"));
  }
  return jwk;
}

absl::StatusOr<std::string> JwkThumbprint(const nlohmann::json& jwk) {
  if (!jwk.is_object())
    return absl::InvalidArgumentError("jwk: must be a JSON object");
  absl::StatusOr<std::string> kty = Member(jwk, "kty");
  if (!kty.ok()) return kty.status();
  std::vector<const char*> names;
  if (*kty == "EC") {
    names = {"crv", "kty", "x", "y"};
  } else if (*kty == "OKP") {
    names = {"crv", "kty", "x"};
  } else if (*kty == "RSA") {
    names = {"e", "kty", "n"};
  } else {
    return absl::InvalidArgumentError(absl::StrCat(
        "jwk.kty: \"", kty->substr(0, 16), "\" unsupported; EC, OKP or RSA"));
  }
  // std::map-backed json sorts members lexicographically; dump() adds no
  // whitespace.
  nlohmann::json canonical = nlohmann::json::object();
  for (const char* name : names) {
    absl::StatusOr<std::string> v = Member(jwk, name);
    if (!v.ok()) return v.status();
    canonical[name] = *std::move(v);
  }
  const std::string text = canonical.dump();
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int md_len = 0;
  if (EVP_Digest(text.data(), text.size(), md, &md_len, EVP_sha256(),
                 nullptr) != 1) {
    return crypto::OpenSslError("EVP_Digest(SHA256)");
  }
  return Base64UrlEncode(std::string_view(reinterpret_cast<char*>(md), md_len));
}

absl::StatusOr<std::string> JwkThumbprint(const EVP_PKEY* key) {
  absl::StatusOr<nlohmann::json> jwk = PublicJwkMembers(key);
  if (!jwk.ok()) return jwk.status();
  return JwkThumbprint(*jwk);
}

absl::StatusOr<nlohmann::json> PublishedJwk(const EVP_PKEY* key,
                                            crypto::SignAlgorithm alg,
                                            std::string_view kid) {
  if (absl::Status s = CheckKeyForAlgorithm(key, alg); !s.ok()) return s;
  if (kid.empty())
    return absl::InvalidArgumentError(
        "kid: empty; a published key needs a kid");
  absl::StatusOr<nlohmann::json> jwk = PublicJwkMembers(key);
  if (!jwk.ok()) return jwk.status();
  (*jwk)["kid"] = std::string(kid);
  (*jwk)["alg"] = std::string(crypto::SignAlgorithmName(alg));
  (*jwk)["use"] = "sig";
  return jwk;
}

absl::StatusOr<nlohmann::json> BuildJwks(
    const std::vector<JwksEntry>& entries) {
  nlohmann::json keys = nlohmann::json::array();
  for (size_t i = 0; i < entries.size(); ++i) {
    absl::StatusOr<nlohmann::json> jwk =
        PublishedJwk(entries[i].public_key, entries[i].alg, entries[i].kid);
    if (!jwk.ok()) {
      return absl::Status(
          jwk.status().code(),
          absl::StrCat("keys[", i, "]: ", jwk.status().message()));
    }
    keys.push_back(*std::move(jwk));
  }
  return nlohmann::json{{"keys", std::move(keys)}};
}

}  // namespace tokensign::token
