#include "signer/audit/checkpoint_keys.h"

#include <openssl/core_names.h>
#include <openssl/param_build.h>

#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "crypto/algorithm.h"
#include "crypto/openssl_error.h"
#include "crypto/ssl_ptr.h"
#include "signer/text/json_member.h"
#include "signer/token/jwk.h"
#include "signer/token/jws.h"

namespace tokensign::audit {
namespace {

struct ParamBldFree {
  void operator()(OSSL_PARAM_BLD* b) const { OSSL_PARAM_BLD_free(b); }
};
struct ParamFree {
  void operator()(OSSL_PARAM* p) const { OSSL_PARAM_free(p); }
};

absl::StatusOr<std::string> B64Member(const nlohmann::json& jwk,
                                      const char* name) {
  auto it = jwk.find(name);
  if (it == jwk.end() || !it->is_string()) {
    return absl::InvalidArgumentError(
        absl::StrCat("jwk.", name, ": missing or not a string"));
  }
  return token::Base64UrlDecode(it->get<std::string>(),
                                absl::StrCat("jwk.", name));
}

absl::StatusOr<crypto::UniquePkey> FromParams(const char* type,
                                           OSSL_PARAM_BLD* bld) {
  std::unique_ptr<OSSL_PARAM, ParamFree> params(OSSL_PARAM_BLD_to_param(bld));
  crypto::UniquePkeyCtx ctx(EVP_PKEY_CTX_new_from_name(nullptr, type, nullptr));
  EVP_PKEY* out = nullptr;
  if (params == nullptr || ctx == nullptr ||
      EVP_PKEY_fromdata_init(ctx.get()) != 1 ||
      EVP_PKEY_fromdata(ctx.get(), &out, EVP_PKEY_PUBLIC_KEY, params.get()) !=
          1) {
    return crypto::OpenSslError(absl::StrCat("jwk: EVP_PKEY_fromdata(", type, ")"));
  }
  return crypto::UniquePkey(out);
}

// Splits a compact JWS and returns its decoded header, whose kid, alg and
// typ are strings when present (a log line is untrusted input: nlohmann's
// value() would throw on {"alg":null}, and `audit verify` or the daemon's
// start check would end on it).
absl::StatusOr<nlohmann::json> JwsHeader(std::string_view jws) {
  size_t dot = jws.find('.');
  if (dot == std::string_view::npos)
    return absl::InvalidArgumentError("checkpoint: not a compact JWS");
  auto header = token::Base64UrlDecode(jws.substr(0, dot), "checkpoint header");
  if (!header.ok()) return header.status();
  nlohmann::json h = nlohmann::json::parse(*header, nullptr, false);
  if (!h.is_object())
    return absl::InvalidArgumentError("checkpoint header: not a JSON object");
  for (const char* name : {"kid", "alg", "typ"}) {
    if (text::HasNonStringMember(h, name)) {
      return absl::InvalidArgumentError(
          absl::StrCat("checkpoint header.", name, ": not a string"));
    }
  }
  return h;
}

}  // namespace

absl::StatusOr<crypto::UniquePkey> PublicKeyFromJwk(const nlohmann::json& jwk) {
  if (!jwk.is_object())
    return absl::InvalidArgumentError("jwk: not a JSON object");
  auto kty_it = jwk.find("kty");
  if (kty_it == jwk.end() || !kty_it->is_string())
    return absl::InvalidArgumentError("jwk.kty: missing or not a string");
  const std::string kty = kty_it->get<std::string>();
  if (kty == "OKP") {
    if (text::StringMemberOrEmpty(jwk, "crv") != "Ed25519")
      return absl::InvalidArgumentError("jwk.crv: only Ed25519 for OKP");
    auto x = B64Member(jwk, "x");
    if (!x.ok()) return x.status();
    crypto::UniquePkey key(EVP_PKEY_new_raw_public_key(
        EVP_PKEY_ED25519, nullptr,
        reinterpret_cast<const unsigned char*>(x->data()), x->size()));
    if (key == nullptr) return crypto::OpenSslError("jwk: Ed25519 public key");
    return key;
  }
  std::unique_ptr<OSSL_PARAM_BLD, ParamBldFree> bld(OSSL_PARAM_BLD_new());
  if (bld == nullptr) return crypto::OpenSslError("OSSL_PARAM_BLD_new");
  if (kty == "EC") {
    const std::string crv = text::StringMemberOrEmpty(jwk, "crv");
    size_t field = crv == "P-256" ? 32 : crv == "P-384" ? 48 : 0;
    if (field == 0)
      return absl::InvalidArgumentError("jwk.crv: only P-256 or P-384 for EC");
    auto x = B64Member(jwk, "x");
    if (!x.ok()) return x.status();
    auto y = B64Member(jwk, "y");
    if (!y.ok()) return y.status();
    if (x->size() != field || y->size() != field) {
      return absl::InvalidArgumentError(
          absl::StrCat("jwk.x, jwk.y: must be ", field, " bytes for ", crv));
    }
    std::string point = "\x04" + *x + *y;
    const char* group = field == 32 ? "P-256" : "P-384";
    if (OSSL_PARAM_BLD_push_utf8_string(bld.get(), OSSL_PKEY_PARAM_GROUP_NAME,
                                        group, 0) != 1 ||
        OSSL_PARAM_BLD_push_octet_string(bld.get(), OSSL_PKEY_PARAM_PUB_KEY,
                                         point.data(), point.size()) != 1) {
      return crypto::OpenSslError("jwk: EC parameters");
    }
    return FromParams("EC", bld.get());
  }
  if (kty == "RSA") {
    auto n = B64Member(jwk, "n");
    if (!n.ok()) return n.status();
    auto e = B64Member(jwk, "e");
    if (!e.ok()) return e.status();
    // RFC 7518 6.3.1: minimal octets, so one key has one JWK (and one
    // thumbprint of its text).
    for (const auto& [name, value] : {std::pair{"n", &*n}, std::pair{"e", &*e}}) {
      if (value->empty() || (*value)[0] == '\0') {
        return absl::InvalidArgumentError(absl::StrCat(
            "jwk.", name, ": must be the minimal big-endian octets (no leading "
            "zero byte)"));
      }
    }
    auto bn = [](const std::string& b) {
      return crypto::UniqueBn(BN_bin2bn(
          reinterpret_cast<const unsigned char*>(b.data()),
          static_cast<int>(b.size()), nullptr));
    };
    crypto::UniqueBn bn_n = bn(*n), bn_e = bn(*e);
    if (bn_n == nullptr || bn_e == nullptr ||
        OSSL_PARAM_BLD_push_BN(bld.get(), OSSL_PKEY_PARAM_RSA_N, bn_n.get()) !=
            1 ||
        OSSL_PARAM_BLD_push_BN(bld.get(), OSSL_PKEY_PARAM_RSA_E, bn_e.get()) !=
            1) {
      return crypto::OpenSslError("jwk: RSA parameters");
    }
    return FromParams("RSA", bld.get());
  }
  return absl::InvalidArgumentError(
      absl::StrCat("jwk.kty: \"", kty, "\" is not EC, OKP or RSA"));
}

absl::StatusOr<CheckpointTrust> CheckpointTrust::FromJwks(
    std::string_view jwks_json) {
  nlohmann::json doc = nlohmann::json::parse(jwks_json, nullptr, false);
  if (!doc.is_object() || !doc.contains("keys") || !doc["keys"].is_array()) {
    return absl::InvalidArgumentError(
        "audit keys: not a JWKS ({\"keys\":[...]})");
  }
  CheckpointTrust t;
  t.source_ = Source::kKeys;
  int i = 0;
  for (const nlohmann::json& jwk : doc["keys"]) {
    const std::string where = absl::StrCat("audit keys: keys[", i++, "]");
    auto key = PublicKeyFromJwk(jwk);
    if (!key.ok())
      return absl::InvalidArgumentError(
          absl::StrCat(where, ": ", key.status().message()));
    auto thumb = token::JwkThumbprint(key->get());
    if (!thumb.ok()) return thumb.status();
    if (text::StringMemberOrEmpty(jwk, "kid") != *thumb) {
      return absl::InvalidArgumentError(absl::StrCat(
          where, ".kid: must be the key's RFC 7638 thumbprint ", *thumb));
    }
    t.keys_[*thumb] = std::shared_ptr<EVP_PKEY>(std::move(*key));
  }
  if (t.keys_.empty())
    return absl::InvalidArgumentError("audit keys: the JWKS holds no key");
  return t;
}

CheckpointTrust CheckpointTrust::Pinned(std::vector<std::string> thumbprints) {
  CheckpointTrust t;
  t.source_ = Source::kPins;
  t.pins_.insert(thumbprints.begin(), thumbprints.end());
  return t;
}

CheckpointTrust CheckpointTrust::Embedded() { return CheckpointTrust(); }

std::string CheckpointTrust::Describe() const {
  switch (source_) {
    case Source::kKeys: {
      std::vector<std::string> kids;
      for (const auto& [kid, _] : keys_) kids.push_back(kid);
      return absl::StrCat("audit keys from a JWKS: ", absl::StrJoin(kids, ", "));
    }
    case Source::kPins:
      return absl::StrCat("pinned audit key(s): ", absl::StrJoin(pins_, ", "));
    case Source::kEmbedded:
      break;
  }
  return "audit keys embedded in the log itself (unpinned: this proves the "
         "log consistent with itself only; pass --keys or --pin)";
}

absl::StatusOr<CheckpointPayload> CheckpointTrust::Verify(
    std::string_view jws, std::string_view embedded_jwk) const {
  auto header = JwsHeader(jws);
  if (!header.ok()) return header.status();
  const std::string kid = text::StringMemberOrEmpty(*header, "kid");
  const std::string alg_name = text::StringMemberOrEmpty(*header, "alg");
  std::optional<crypto::SignAlgorithm> alg = crypto::ParseSignAlgorithm(alg_name);
  if (!alg) {
    return absl::InvalidArgumentError(
        absl::StrCat("checkpoint header.alg: \"", alg_name, "\" not supported"));
  }
  std::shared_ptr<EVP_PKEY> key;
  if (source_ == Source::kKeys) {
    auto it = keys_.find(kid);
    if (it == keys_.end()) {
      return absl::UnauthenticatedError(absl::StrCat(
          "checkpoint signed by kid ", kid, ", which is not an audit key"));
    }
    key = it->second;
  } else {
    nlohmann::json jwk = nlohmann::json::parse(embedded_jwk, nullptr, false);
    auto k = PublicKeyFromJwk(jwk);
    if (!k.ok()) return k.status();
    auto thumb = token::JwkThumbprint(k->get());
    if (!thumb.ok()) return thumb.status();
    if (*thumb != kid) {
      return absl::UnauthenticatedError(absl::StrCat(
          "checkpoint kid ", kid, " is not the thumbprint ", *thumb,
          " of the key beside it"));
    }
    if (source_ == Source::kPins && pins_.count(*thumb) == 0) {
      return absl::UnauthenticatedError(absl::StrCat(
          "checkpoint signed by key ", *thumb, ", which is not pinned"));
    }
    key = std::shared_ptr<EVP_PKEY>(std::move(*k));
  }
  auto payload = token::VerifyCompact(
      jws, key.get(), token::JwsExpectation{*alg, kid, kCheckpointTyp});
  if (!payload.ok()) return payload.status();
  return ParseCheckpointPayload(*payload);
}

}  // namespace tokensign::audit
