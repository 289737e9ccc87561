#include "signer/token/minter.h"

#include <openssl/rand.h>

#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "signer/token/jws.h"

namespace tokensign::token {

absl::StatusOr<std::string> NewJti() {
  unsigned char bytes[16];
  if (RAND_bytes(bytes, sizeof(bytes)) != 1)
    return hsm::OpenSslError("RAND_bytes(jti)");
  return Base64UrlEncode(
      std::string_view(reinterpret_cast<char*>(bytes), sizeof(bytes)));
}

nlohmann::json BuildClaims(const IssuerPolicy& policy, const TokenRequest& req,
                           int64_t iat, int64_t exp, std::string_view jti) {
  nlohmann::json claims = nlohmann::json::object();
  claims["iss"] = policy.iss;
  claims["sub"] = req.subject;
  claims["client_id"] = req.client_id;
  if (req.audience.size() == 1) {
    claims["aud"] = req.audience.front();
  } else {
    claims["aud"] = req.audience;
  }
  if (!req.scope.empty()) claims["scope"] = absl::StrJoin(req.scope, " ");
  claims["iat"] = iat;
  claims["nbf"] = iat;
  claims["exp"] = exp;
  claims["jti"] = std::string(jti);
  // Innermost (oldest) actor first, wrapped outwards; actor_chain[0] ends
  // outermost.
  nlohmann::json act;
  for (auto it = req.actor_chain.rbegin(); it != req.actor_chain.rend(); ++it) {
    nlohmann::json level = nlohmann::json::object();
    level["sub"] = it->sub;
    if (!it->iss.empty()) level["iss"] = it->iss;
    if (!act.is_null()) level["act"] = std::move(act);
    act = std::move(level);
  }
  if (!act.is_null()) claims["act"] = std::move(act);
  if (req.cnf.has_value()) {
    claims["cnf"] = req.cnf->jkt.empty()
                        ? nlohmann::json{{"x5t#S256", req.cnf->x5t_s256}}
                        : nlohmann::json{{"jkt", req.cnf->jkt}};
  }
  if (req.kind == TokenKind::kTransactionToken) {
    if (!req.txn.empty()) claims["txn"] = req.txn;
    if (!req.req_wl.empty()) claims["req_wl"] = req.req_wl;
    if (req.rctx.is_object()) claims["rctx"] = req.rctx;
    if (req.tctx.is_object()) claims["tctx"] = req.tctx;
  }
  if (req.extra_claims.is_object()) {
    for (const auto& item : req.extra_claims.items())
      claims[item.key()] = item.value();
  }
  return claims;
}

absl::StatusOr<MintedToken> Mint(const IssuerPolicy& policy,
                                 const SigningKey& key, const TokenRequest& req,
                                 absl::Time now) {
  if (policy.iss.empty()) {
    return absl::FailedPreconditionError(
        "iss: issuer policy has no iss value; configure one");
  }
  if (key.private_key == nullptr || key.kid.empty()) {
    return absl::FailedPreconditionError(
        "key: signing key has no private key or no kid");
  }
  if (absl::Status s = CheckKeyForAlgorithm(key.private_key.get(), key.alg);
      !s.ok()) {
    return absl::FailedPreconditionError(s.message());
  }
  if (policy.verify_before_release && key.public_key == nullptr) {
    return absl::FailedPreconditionError(
        "key: no public key; verify-before-release needs one (or turn it off "
        "per issuer)");
  }
  if (absl::Status s = CheckRequest(policy, req); !s.ok()) return s;

  MintedToken out;
  out.iat = absl::ToUnixSeconds(now);
  out.exp = out.iat + EffectiveTtl(policy, req);
  absl::StatusOr<std::string> jti = NewJti();
  if (!jti.ok()) return jti.status();
  out.jti = *std::move(jti);
  out.kid = key.kid;
  out.claims = BuildClaims(policy, req, out.iat, out.exp, out.jti);
  std::string payload;
  try {
    payload = out.claims.dump();
  } catch (const nlohmann::json::exception& e) {
    return absl::InvalidArgumentError(
        absl::StrCat("claims: cannot serialize: ", e.what()));
  }
  const char* typ = TokenKindTyp(req.kind);
  absl::StatusOr<std::string> token =
      SignCompact(key.private_key.get(), key.alg, key.kid, typ, payload);
  if (!token.ok()) return token.status();
  if (policy.verify_before_release) {
    absl::StatusOr<nlohmann::json> verified = VerifyCompact(
        *token, key.public_key.get(), JwsExpectation{key.alg, key.kid, typ});
    if (!verified.ok()) {
      return absl::InternalError(absl::StrCat(
          "verify-before-release: fresh token does not verify, withheld: ",
          verified.status().message()));
    }
  }
  out.token = *std::move(token);
  return out;
}

}  // namespace tokensign::token
