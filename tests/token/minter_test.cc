// Mint: claims as signed, both token kinds, every algorithm,
// verify-before-release.
#include "signer/token/minter.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <set>

#include "crypto/algorithm.h"
#include "crypto/ssl_ptr.h"
#include "signer/token/jws.h"
#include "tests/token/policy_cases.h"
#include "tests/token/test_keys.h"

namespace tokensign::token {
namespace {

using crypto::SignAlgorithm;
using testing::B64;
using testing::GenerateKey;
using ::testing::HasSubstr;
using testing::BaseRequest;
using testing::MakeSigningKey;
using testing::TestSigningKey;
using testing::PublicOnly;

const absl::Time kNow =
    absl::FromUnixSeconds(1767225600);  // 2026-01-01T00:00:00Z

IssuerPolicy Policy() {
  IssuerPolicy p;
  p.iss = "https://issuer.example";
  p.allowed_audiences = {"https://api.example", "https://tools.example"};
  p.allowed_scopes = {"read", "write"};
  p.any_actor = true;
  p.allowed_extra_claims = {"tenant"};
  return p;
}

TEST(Mint, AccessTokenClaimsAsSigned) {
  TestSigningKey key = MakeSigningKey(SignAlgorithm::kES256);
  TokenRequest r = BaseRequest();
  r.cnf = Confirmation{"0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I", ""};
  r.extra_claims = {{"tenant", "t1"}};
  r.parent_jti = "parent-1";
  absl::StatusOr<MintedToken> t = Mint(Policy(), key, r, kNow);
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ(t->kid, key.kid);
  EXPECT_EQ(t->iat, 1767225600);
  EXPECT_EQ(t->exp, 1767225600 + 600);
  EXPECT_EQ(t->jti.size(), 22u);
  EXPECT_EQ(B64(t->jti).size(), 16u);

  absl::StatusOr<nlohmann::json> claims =
      VerifyCompact(t->token, key.public_key.get(),
                    {SignAlgorithm::kES256, key.kid, "at+jwt"});
  ASSERT_TRUE(claims.ok()) << claims.status();
  EXPECT_EQ(*claims, nlohmann::json::parse(t->payload));
  const nlohmann::json want = {
      {"iss", "https://issuer.example"},
      {"sub", "alice"},
      {"client_id", "app"},
      {"aud", "https://api.example"},
      {"scope", "read"},
      {"iat", 1767225600},
      {"nbf", 1767225600},
      {"exp", 1767226200},
      {"jti", t->jti},
      {"act",
       {{"sub", "agent-7"},
        {"act", {{"sub", "planner"}, {"iss", "https://agents.example"}}}}},
      {"cnf", {{"jkt", "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"}}},
      {"tenant", "t1"}};
  EXPECT_EQ(*claims, want) << claims->dump(2);
  EXPECT_FALSE(claims->contains("parent_jti"));
}

TEST(Mint, ManyAudiencesScopesDefaultTtlNoActor) {
  TestSigningKey key = MakeSigningKey(SignAlgorithm::kEdDSA);
  TokenRequest r = BaseRequest();
  r.audience = {"https://api.example", "https://tools.example"};
  r.scope = {"read", "write"};
  r.actor_chain.clear();
  r.ttl_seconds = 0;
  r.cnf = Confirmation{"", "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"};
  absl::StatusOr<MintedToken> t = Mint(Policy(), key, r, kNow);
  ASSERT_TRUE(t.ok()) << t.status();
  const nlohmann::json claims = nlohmann::json::parse(t->payload);
  EXPECT_EQ(claims["aud"], nlohmann::json::array({"https://api.example",
                                                     "https://tools.example"}));
  EXPECT_EQ(claims["scope"], "read write");
  EXPECT_EQ(t->exp - t->iat, 600);  // policy default_ttl_access
  EXPECT_FALSE(claims.contains("act"));
  EXPECT_EQ(claims["cnf"],
            (nlohmann::json{
                {"x5t#S256", "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"}}));
}

TEST(Mint, TransactionTokenPerAlgorithm) {
  for (SignAlgorithm alg :
       {SignAlgorithm::kES256, SignAlgorithm::kES384, SignAlgorithm::kEdDSA,
        SignAlgorithm::kPS256, SignAlgorithm::kRS256}) {
    TestSigningKey key = MakeSigningKey(alg);
    TokenRequest r = BaseRequest();
    r.kind = TokenKind::kTransactionToken;
    r.ttl_seconds = 0;
    r.txn = "97053963-771d-49cc-a4e3-20aad399c312";
    r.req_wl = "apigateway.example";
    r.rctx = {{"req_ip", "198.51.100.7"}};
    r.tctx = {{"action", "BUY"}};
    absl::StatusOr<MintedToken> t = Mint(Policy(), key, r, kNow);
    ASSERT_TRUE(t.ok()) << t.status();
    absl::StatusOr<nlohmann::json> c = VerifyCompact(
        t->token, key.public_key.get(), {alg, key.kid, "txntoken+jwt"});
    ASSERT_TRUE(c.ok()) << c.status();
    EXPECT_EQ((*c)["aud"], "https://api.example");
    EXPECT_EQ((*c)["txn"], "97053963-771d-49cc-a4e3-20aad399c312");
    EXPECT_EQ((*c)["req_wl"], "apigateway.example");
    EXPECT_EQ((*c)["rctx"]["req_ip"], "198.51.100.7");
    EXPECT_EQ((*c)["tctx"]["action"], "BUY");
    EXPECT_EQ((*c)["exp"].get<int64_t>() - (*c)["iat"].get<int64_t>(), 60);
  }
}

TEST(Mint, JtiIsFreshEachTime) {
  TestSigningKey key = MakeSigningKey(SignAlgorithm::kES256);
  std::set<std::string> seen;
  for (int i = 0; i < 200; ++i) {
    absl::StatusOr<MintedToken> t = Mint(Policy(), key, BaseRequest(), kNow);
    ASSERT_TRUE(t.ok());
    EXPECT_TRUE(seen.insert(t->jti).second);
  }
}

TEST(Mint, PolicyRejectionIsPassedThrough) {
  TestSigningKey key = MakeSigningKey(SignAlgorithm::kES256);
  TokenRequest r = BaseRequest();
  r.extra_claims = {{"iss", "https://evil"}};
  absl::StatusOr<MintedToken> t = Mint(Policy(), key, r, kNow);
  EXPECT_EQ(t.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(t.status().message(), HasSubstr("extra_claims.iss: "));
}

// A key whose public half does not match its private half stands in for an HSM
// fault: the token must be withheld unless the issuer turned verification off.
TEST(Mint, VerifyBeforeReleaseWithholdsBadSignature) {
  TestSigningKey key = MakeSigningKey(SignAlgorithm::kES256);
  crypto::UniquePkey other = GenerateKey(SignAlgorithm::kES256);
  key.public_key = std::shared_ptr<EVP_PKEY>(PublicOnly(other.get()).release(),
                                             EVP_PKEY_free);
  // The signer verifies with that public key while signing with another
  // private key (what a faulty HSM would amount to).
  key.signer = testing::SoftwareSigner(key.private_key, key.public_key,
                                       SignAlgorithm::kES256);
  IssuerPolicy p = Policy();
  absl::StatusOr<MintedToken> t = Mint(p, key, BaseRequest(), kNow);
  ASSERT_FALSE(t.ok());
  EXPECT_EQ(t.status().code(), absl::StatusCode::kInternal);
  EXPECT_THAT(t.status().message(), HasSubstr("verify-before-release"));
  p.verify_before_release = false;
  EXPECT_TRUE(Mint(p, key, BaseRequest(), kNow).ok());
}

TEST(Mint, RefusesUnusableConfig) {
  TestSigningKey key = MakeSigningKey(SignAlgorithm::kES256);
  IssuerPolicy p = Policy();
  p.iss.clear();
  EXPECT_EQ(Mint(p, key, BaseRequest(), kNow).status().code(),
            absl::StatusCode::kFailedPrecondition);
  SigningKey wrong = key;
  wrong.alg = SignAlgorithm::kES384;
  absl::StatusOr<MintedToken> t = Mint(Policy(), wrong, BaseRequest(), kNow);
  EXPECT_EQ(t.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(t.status().message(), HasSubstr("does not fit alg ES384"));
  SigningKey no_pub = key;
  no_pub.public_key.reset();
  EXPECT_THAT(Mint(Policy(), no_pub, BaseRequest(), kNow).status().message(),
              HasSubstr("verify-before-release needs one"));
  SigningKey no_kid = key;
  no_kid.kid.clear();
  EXPECT_FALSE(Mint(Policy(), no_kid, BaseRequest(), kNow).ok());
}

// ClaimsJson writes the payload without a JSON DOM: it must equal what a JSON
// library builds from the same request, escape what JSON requires, refuse
// bytes that are not UTF-8, and never emit a claim twice.
nlohmann::json ReferenceClaims(const IssuerPolicy& p, const TokenRequest& r,
                               int64_t iat, int64_t exp, const std::string& jti) {
  nlohmann::json c = {{"iss", p.iss},      {"sub", r.subject},
                      {"client_id", r.client_id},
                      {"iat", iat},        {"nbf", iat},
                      {"exp", exp},        {"jti", jti}};
  c["aud"] = r.audience.size() == 1 ? nlohmann::json(r.audience[0])
                                    : nlohmann::json(r.audience);
  if (!r.scope.empty()) {
    std::string joined;
    for (const std::string& s : r.scope) joined += (joined.empty() ? "" : " ") + s;
    c["scope"] = joined;
  }
  nlohmann::json act;
  for (auto it = r.actor_chain.rbegin(); it != r.actor_chain.rend(); ++it) {
    nlohmann::json level = {{"sub", it->sub}};
    if (!it->iss.empty()) level["iss"] = it->iss;
    if (!act.is_null()) level["act"] = act;
    act = level;
  }
  if (!act.is_null()) c["act"] = act;
  if (r.cnf.has_value()) {
    c["cnf"] = r.cnf->jkt.empty() ? nlohmann::json{{"x5t#S256", r.cnf->x5t_s256}}
                                  : nlohmann::json{{"jkt", r.cnf->jkt}};
  }
  if (r.kind == TokenKind::kTransactionToken) {
    if (!r.txn.empty()) c["txn"] = r.txn;
    if (!r.req_wl.empty()) c["req_wl"] = r.req_wl;
    if (r.rctx.is_object()) c["rctx"] = r.rctx;
    if (r.tctx.is_object()) c["tctx"] = r.tctx;
  }
  for (const auto& item : r.extra_claims.items()) c[item.key()] = item.value();
  return c;
}

TEST(ClaimsJson, MatchesAJsonLibraryAndEscapes) {
  TokenRequest r = BaseRequest();
  r.subject = "al\"ice\\ \n\t\x01 \xc3\xa9\xe2\x82\xac";  // quote, controls, UTF-8
  r.client_id = "app";
  r.audience = {"https://api.example", "https://tools.example"};
  r.scope = {"read", "write"};
  r.actor_chain = {{"agent-7", ""}, {"planner", "https://agents.example"},
                   {"root", "https://\"x\""}};
  r.cnf = Confirmation{"", "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"};
  r.extra_claims = {{"tenant", "t\"1"}, {"n", 3}, {"nested", {{"a", {1, 2}}}}};
  const std::string jti = "jti-1";
  auto json = ClaimsJson(Policy(), r, 10, 20, jti);
  ASSERT_TRUE(json.ok()) << json.status();
  EXPECT_EQ(nlohmann::json::parse(*json), ReferenceClaims(Policy(), r, 10, 20, jti))
      << *json;
  EXPECT_NE(json->find(R"("sub":"al\"ice\\ \n\t\u0001 )"), std::string::npos)
      << *json;

  r.kind = TokenKind::kTransactionToken;
  r.txn = "txn-1";
  r.req_wl = "wl";
  r.rctx = {{"ip", "10.0.0.1"}};
  r.tctx = {{"amount", 5}};
  r.audience = {"https://api.example"};
  r.scope.clear();
  r.actor_chain.clear();
  r.cnf.reset();
  json = ClaimsJson(Policy(), r, 10, 20, jti);
  ASSERT_TRUE(json.ok()) << json.status();
  EXPECT_EQ(nlohmann::json::parse(*json), ReferenceClaims(Policy(), r, 10, 20, jti))
      << *json;
  EXPECT_EQ(json->find("\"scope\""), std::string::npos);
}

TEST(ClaimsJson, RefusesInvalidUtf8AndReservedExtraClaims) {
  TokenRequest r = BaseRequest();
  r.subject = "bad\xff\xfe";
  auto bad = ClaimsJson(Policy(), r, 10, 20, "j");
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(bad.status().message(), HasSubstr("claims: cannot serialize"));

  r = BaseRequest();
  r.extra_claims = {{"Sub", "mallory"}};  // case-insensitive reserved name
  auto dup = ClaimsJson(Policy(), r, 10, 20, "j");
  EXPECT_EQ(dup.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(dup.status().message(), HasSubstr("extra_claims.Sub"));
}

}  // namespace
}  // namespace tokensign::token
