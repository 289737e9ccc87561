#include "signer/token/parent_token.h"

#include <openssl/evp.h>

#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "crypto/algorithm.h"
#include "crypto/openssl_error.h"
#include "crypto/str_cat.h"
#include "signer/text/json_member.h"
#include "signer/token/jws.h"
#include "signer/token/policy_fields.h"

namespace tokensign::token {
namespace {

using policy_fields::Quote;

absl::Status Malformed(absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat("subject_token: ", what));
}

absl::Status Refused(absl::string_view what) {
  return absl::PermissionDeniedError(absl::StrCat("subject_token: ", what));
}

absl::StatusOr<std::string> HexSha256(std::string_view data) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (EVP_Digest(data.data(), data.size(), md, &len, EVP_sha256(), nullptr) !=
      1) {
    return crypto::OpenSslError("EVP_Digest(SHA256)");
  }
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (unsigned int i = 0; i < len; ++i) {
    out.push_back(kHex[md[i] >> 4]);
    out.push_back(kHex[md[i] & 15]);
  }
  return out;
}

// A segment of the compact JWS decoded as a JSON object, before any trust.
absl::StatusOr<nlohmann::json> DecodeObject(std::string_view b64,
                                            std::string_view what) {
  absl::StatusOr<std::string> bytes = Base64UrlDecode(b64, what);
  if (!bytes.ok()) return Malformed(bytes.status().message());
  nlohmann::json j = nlohmann::json::parse(*bytes, nullptr, false);
  if (j.is_discarded() || !j.is_object()) {
    return Malformed(absl::StrCat(AbslView(what),
                                  " is not a JSON object"));
  }
  return j;
}

absl::Status String(const nlohmann::json& c, const char* name, bool required,
                    std::string* out) {
  auto it = c.find(name);
  if (it == c.end()) {
    if (required) return Malformed(absl::StrCat(name, " claim missing"));
    return absl::OkStatus();
  }
  if (!it->is_string() || it->get_ref<const std::string&>().empty()) {
    return Malformed(absl::StrCat(name, " claim is not a non-empty string"));
  }
  *out = it->get<std::string>();
  return absl::OkStatus();
}

absl::Status Integer(const nlohmann::json& c, const char* name, bool required,
                     int64_t* out) {
  auto it = c.find(name);
  if (it == c.end()) {
    if (required) return Malformed(absl::StrCat(name, " claim missing"));
    return absl::OkStatus();
  }
  if (!it->is_number_integer()) {
    return Malformed(absl::StrCat(name, " claim is not an integer"));
  }
  *out = it->get<int64_t>();
  return absl::OkStatus();
}

// {"sub":..,"iss"?:..} (act levels also "act"); `nested` allows "act".
absl::StatusOr<Actor> ActorOf(const nlohmann::json& j, std::string_view field,
                              bool nested) {
  const std::string f(field);
  if (!j.is_object()) return Malformed(absl::StrCat(f, " is not an object"));
  Actor a;
  for (const auto& [name, value] : j.items()) {
    if (name == "sub" || name == "iss") {
      if (!value.is_string() || value.get_ref<const std::string&>().empty())
        return Malformed(absl::StrCat(f, ".", name, " is not a non-empty string"));
      (name == "sub" ? a.sub : a.iss) = value.get<std::string>();
    } else if (!(nested && name == "act")) {
      return Malformed(absl::StrCat(f, " has member ", Quote(name),
                                    "; tokensign writes only sub and iss"));
    }
  }
  if (a.sub.empty()) return Malformed(absl::StrCat(f, ".sub missing"));
  return a;
}

// Reads the verified claims into `p` (kind, iss, kid, issuer already set).
absl::Status ReadClaims(const nlohmann::json& c, VerifiedParent* p) {
  if (absl::Status s = String(c, "sub", true, &p->sub); !s.ok()) return s;
  if (absl::Status s = String(c, "client_id", true, &p->client_id); !s.ok())
    return s;
  if (absl::Status s = String(c, "jti", true, &p->jti); !s.ok()) return s;
  if (absl::Status s = Integer(c, "iat", true, &p->iat); !s.ok()) return s;
  if (absl::Status s = Integer(c, "exp", true, &p->exp); !s.ok()) return s;
  auto aud = c.find("aud");
  if (aud == c.end()) return Malformed("aud claim missing");
  if (aud->is_string()) {
    p->aud.push_back(aud->get<std::string>());
  } else if (aud->is_array() && !aud->empty()) {
    for (const auto& a : *aud) {
      if (!a.is_string()) return Malformed("aud claim holds a non-string");
      p->aud.push_back(a.get<std::string>());
    }
  } else {
    return Malformed("aud claim is neither a string nor a non-empty array");
  }
  std::string scope;
  if (absl::Status s = String(c, "scope", false, &scope); !s.ok()) return s;
  if (!scope.empty()) {
    p->scope = absl::StrSplit(scope, ' ', absl::SkipEmpty());
  }
  const nlohmann::json* act = c.contains("act") ? &c.at("act") : nullptr;
  for (std::string field = "act"; act != nullptr; field += ".act") {
    absl::StatusOr<Actor> a = ActorOf(*act, field, true);
    if (!a.ok()) return a.status();
    p->actor_chain.push_back(*std::move(a));
    act = act->contains("act") ? &act->at("act") : nullptr;
  }
  if (auto it = c.find("may_act"); it != c.end()) {
    absl::StatusOr<Actor> a = ActorOf(*it, "may_act", false);
    if (!a.ok()) return a.status();
    p->may_act = *std::move(a);
  }
  if (auto it = c.find("cnf"); it != c.end()) {
    if (!it->is_object() || it->size() != 1) {
      return Malformed("cnf claim is not an object with one member");
    }
    Confirmation cnf;
    if (auto j = it->find("jkt"); j != it->end() && j->is_string()) {
      cnf.jkt = j->get<std::string>();
    } else if (auto x = it->find("x5t#S256"); x != it->end() && x->is_string()) {
      cnf.x5t_s256 = x->get<std::string>();
    } else {
      return Malformed("cnf claim holds neither jkt nor x5t#S256");
    }
    p->cnf = std::move(cnf);
  }
  if (auto it = c.find("status"); it != c.end()) {
    const nlohmann::json* list = it->is_object() && it->contains("status_list")
                                     ? &it->at("status_list")
                                     : nullptr;
    if (list == nullptr || !list->is_object() || !list->contains("idx") ||
        !list->at("idx").is_number_unsigned() || !list->contains("uri") ||
        !list->at("uri").is_string()) {
      return Malformed(
          "status claim is not {\"status_list\":{\"idx\":N,\"uri\":\"...\"}}");
    }
    p->status = StatusReference{list->at("uri").get<std::string>(),
                                list->at("idx").get<int64_t>()};
  }
  if (p->kind == TokenKind::kTransactionToken) {
    if (absl::Status s = String(c, "txn", true, &p->txn); !s.ok()) return s;
    if (absl::Status s = String(c, "req_wl", false, &p->req_wl); !s.ok())
      return s;
    for (auto [name, out] : {std::pair{"rctx", &p->rctx},
                             std::pair{"tctx", &p->tctx}}) {
      if (auto it = c.find(name); it != c.end()) {
        if (!it->is_object())
          return Malformed(absl::StrCat(name, " claim is not an object"));
        *out = *it;
      }
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<VerifiedParent> VerifyParent(std::string_view token,
                                            const ParentKeyLookup& lookup,
                                            absl::Time now,
                                            absl::Duration leeway) {
  if (token.empty()) return Malformed("empty; give the token to exchange");
  if (token.size() > 16384) {
    return Malformed(absl::StrCat(token.size(),
                                  " bytes exceeds max 16384 for a token"));
  }
  const size_t dot1 = token.find('.');
  const size_t dot2 =
      dot1 == std::string_view::npos ? dot1 : token.find('.', dot1 + 1);
  if (dot2 == std::string_view::npos ||
      token.find('.', dot2 + 1) != std::string_view::npos) {
    return Malformed("not a compact JWS (header.payload.signature)");
  }
  absl::StatusOr<std::string> header_bytes =
      Base64UrlDecode(token.substr(0, dot1), "header");
  if (!header_bytes.ok()) return Malformed(header_bytes.status().message());
  nlohmann::json header = nlohmann::json::parse(*header_bytes, nullptr, false);
  if (header.is_discarded() || !header.is_object()) {
    return Malformed("header is not a JSON object");
  }
  for (const char* name : {"typ", "kid", "alg"}) {
    if (text::HasNonStringMember(header, name))
      return Malformed(absl::StrCat("header ", name, " is not a string"));
  }
  VerifiedParent p;
  const std::string typ = text::StringMemberOrEmpty(header, "typ");
  const std::string kid = text::StringMemberOrEmpty(header, "kid");
  const std::string alg = text::StringMemberOrEmpty(header, "alg");
  if (typ == TokenKindTyp(TokenKind::kAccessToken)) {
    p.kind = TokenKind::kAccessToken;
  } else if (typ == TokenKindTyp(TokenKind::kTransactionToken)) {
    p.kind = TokenKind::kTransactionToken;
  } else {
    return Malformed(absl::StrCat("typ ", Quote(typ),
                                  " is not at+jwt or txntoken+jwt; only "
                                  "access and transaction tokens are "
                                  "exchanged"));
  }
  if (kid.empty()) return Malformed("header has no kid");
  // Untrusted until the signature verifies: parsed once, used first only to
  // pick the key.
  absl::StatusOr<nlohmann::json> claims =
      DecodeObject(token.substr(dot1 + 1, dot2 - dot1 - 1), "payload");
  if (!claims.ok()) return claims.status();
  auto iss = claims->find("iss");
  if (iss == claims->end() || !iss->is_string()) {
    return Malformed("iss claim missing or not a string");
  }
  p.iss = iss->get<std::string>();
  p.kid = kid;
  absl::StatusOr<ParentKey> key = lookup(p.iss, kid);
  if (!key.ok()) return key.status();
  p.issuer = key->issuer;
  // The header tokensign writes, exactly (no extra members such as jku, no
  // other spelling), with the key's alg.
  if (*header_bytes != JwsHeaderJson(key->alg, kid, typ)) {
    return Malformed(absl::StrCat(
        "header is not {\"alg\",\"kid\",\"typ\"} as this service writes it "
        "with alg ",
        std::string(crypto::SignAlgorithmName(key->alg)), " (got alg ",
        Quote(alg), ")"));
  }
  absl::StatusOr<std::string> sig =
      Base64UrlDecode(token.substr(dot2 + 1), "signature");
  if (!sig.ok()) return Malformed(sig.status().message());
  const std::string_view signing_input = token.substr(0, dot2);
  absl::Status verified =
      key->verifier != nullptr
          ? key->verifier->Verify(signing_input, *sig)
          : VerifyRaw(key->public_key.get(), key->alg, signing_input, *sig);
  if (!verified.ok()) {
    return Refused(absl::StrCat(
        "signature does not verify with key ", Quote(kid), " of issuer ",
        Quote(p.issuer), "; not a token this service issued (forged?)"));
  }
  if (absl::Status s = ReadClaims(*claims, &p); !s.ok()) return s;
  const int64_t t = absl::ToUnixSeconds(now);
  const int64_t skew = absl::ToInt64Seconds(leeway);
  if (p.exp <= t - skew) {  // now >= exp + leeway, without overflow for any exp
    return Refused(absl::StrCat("expired at ", p.exp, " (now ", t,
                                ", leeway ", skew, " s)"));
  }
  int64_t nbf = p.iat;
  if (absl::Status s = Integer(*claims, "nbf", false, &nbf); !s.ok()) return s;
  if (nbf > t + skew || p.iat > t + skew) {
    return Refused(absl::StrCat("not yet valid (nbf ", nbf, ", iat ", p.iat,
                                ", now ", t, ", leeway ", skew, " s)"));
  }
  absl::StatusOr<std::string> sha = HexSha256(token);
  if (!sha.ok()) return sha.status();
  p.sha256 = *std::move(sha);
  return p;
}

}  // namespace tokensign::token
