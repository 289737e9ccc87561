// Mint: claims as signed, both token kinds, every algorithm,
// verify-before-release.
#include "signer/token/minter.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <set>

#include "signer/token/jws.h"
#include "tests/token/test_keys.h"

namespace tokensign::token {
namespace {

using hsm::SignAlgorithm;
using testing::B64;
using testing::GenerateKey;
using ::testing::HasSubstr;
using testing::MakeSigningKey;
using testing::PublicOnly;

const absl::Time kNow =
    absl::FromUnixSeconds(1767225600);  // 2026-01-01T00:00:00Z

IssuerPolicy Policy() {
  IssuerPolicy p;
  p.iss = "https://issuer.example";
  p.allowed_audiences = {"https://api.example", "https://tools.example"};
  p.allowed_scopes = {"read", "write"};
  p.any_actor = true;
  return p;
}

TokenRequest Scenario() {
  TokenRequest r;
  r.subject = "alice";
  r.client_id = "app";
  r.audience = {"https://api.example"};
  r.scope = {"read"};
  r.actor_chain = {{"agent-7", ""}, {"planner", "https://agents.example"}};
  r.ttl_seconds = 600;
  return r;
}

TEST(Mint, AccessTokenClaimsAsSigned) {
  SigningKey key = MakeSigningKey(SignAlgorithm::kES256);
  TokenRequest r = Scenario();
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
  EXPECT_EQ(*claims, t->claims);
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
  SigningKey key = MakeSigningKey(SignAlgorithm::kEdDSA);
  TokenRequest r = Scenario();
  r.audience = {"https://api.example", "https://tools.example"};
  r.scope = {"read", "write"};
  r.actor_chain.clear();
  r.ttl_seconds = 0;
  r.cnf = Confirmation{"", "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"};
  absl::StatusOr<MintedToken> t = Mint(Policy(), key, r, kNow);
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ(t->claims["aud"], nlohmann::json::array({"https://api.example",
                                                     "https://tools.example"}));
  EXPECT_EQ(t->claims["scope"], "read write");
  EXPECT_EQ(t->exp - t->iat, 600);  // policy default_ttl_access
  EXPECT_FALSE(t->claims.contains("act"));
  EXPECT_EQ(t->claims["cnf"],
            (nlohmann::json{
                {"x5t#S256", "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"}}));
}

TEST(Mint, TransactionTokenPerAlgorithm) {
  for (SignAlgorithm alg :
       {SignAlgorithm::kES256, SignAlgorithm::kES384, SignAlgorithm::kEdDSA,
        SignAlgorithm::kPS256, SignAlgorithm::kRS256}) {
    SigningKey key = MakeSigningKey(alg);
    TokenRequest r = Scenario();
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
  SigningKey key = MakeSigningKey(SignAlgorithm::kES256);
  std::set<std::string> seen;
  for (int i = 0; i < 200; ++i) {
    absl::StatusOr<MintedToken> t = Mint(Policy(), key, Scenario(), kNow);
    ASSERT_TRUE(t.ok());
    EXPECT_TRUE(seen.insert(t->jti).second);
  }
}

TEST(Mint, PolicyRejectionIsPassedThrough) {
  SigningKey key = MakeSigningKey(SignAlgorithm::kES256);
  TokenRequest r = Scenario();
  r.extra_claims = {{"iss", "https://evil"}};
  absl::StatusOr<MintedToken> t = Mint(Policy(), key, r, kNow);
  EXPECT_EQ(t.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(t.status().message(), HasSubstr(R"(extra_claims["iss"])"));
}

// A key whose public half does not match its private half stands in for an HSM
// fault: the token must be withheld unless the issuer turned verification off.
TEST(Mint, VerifyBeforeReleaseWithholdsBadSignature) {
  SigningKey key = MakeSigningKey(SignAlgorithm::kES256);
  hsm::UniquePkey other = GenerateKey(SignAlgorithm::kES256);
  key.public_key = std::shared_ptr<EVP_PKEY>(PublicOnly(other.get()).release(),
                                             EVP_PKEY_free);
  IssuerPolicy p = Policy();
  absl::StatusOr<MintedToken> t = Mint(p, key, Scenario(), kNow);
  ASSERT_FALSE(t.ok());
  EXPECT_EQ(t.status().code(), absl::StatusCode::kInternal);
  EXPECT_THAT(t.status().message(), HasSubstr("verify-before-release"));
  p.verify_before_release = false;
  EXPECT_TRUE(Mint(p, key, Scenario(), kNow).ok());
}

TEST(Mint, RefusesUnusableConfig) {
  SigningKey key = MakeSigningKey(SignAlgorithm::kES256);
  IssuerPolicy p = Policy();
  p.iss.clear();
  EXPECT_EQ(Mint(p, key, Scenario(), kNow).status().code(),
            absl::StatusCode::kFailedPrecondition);
  SigningKey wrong = key;
  wrong.alg = SignAlgorithm::kES384;
  absl::StatusOr<MintedToken> t = Mint(Policy(), wrong, Scenario(), kNow);
  EXPECT_EQ(t.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(t.status().message(), HasSubstr("does not fit alg ES384"));
  SigningKey no_pub = key;
  no_pub.public_key.reset();
  EXPECT_THAT(Mint(Policy(), no_pub, Scenario(), kNow).status().message(),
              HasSubstr("verify-before-release needs one"));
  SigningKey no_kid = key;
  no_kid.kid.clear();
  EXPECT_FALSE(Mint(Policy(), no_kid, Scenario(), kNow).ok());
}

}  // namespace
}  // namespace tokensign::token
