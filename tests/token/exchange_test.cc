// Token exchange in signer/token: transaction-token claim rules, may_act and
// status in minted tokens, VerifyParent (signature, issuer, time) and
// DeriveChild/Exchange (attenuation), with software keys. Property-style:
// random chains never widen scope, audience or exp and keep the root's status.
#include "signer/token/exchange.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <limits>
#include <random>
#include <set>

#include "absl/strings/str_split.h"
#include "crypto/algorithm.h"
#include "signer/token/jws.h"
#include "tests/token/policy_cases.h"
#include "tests/token/test_keys.h"

namespace tokensign::token {
namespace {

using crypto::SignAlgorithm;
using ::testing::HasSubstr;
using ::testing::StartsWith;
using testing::BaseRequest;
using testing::MakeSigningKey;
using testing::TestSigningKey;

const absl::Time kNow = absl::FromUnixSeconds(1767225600);

IssuerPolicy Policy() {
  IssuerPolicy p;
  p.iss = "https://issuer.example";
  p.allowed_audiences = {"https://api.example", "https://tools.example",
                         "https://mail.example", "trust.example"};
  p.allowed_scopes = {"read", "write", "send", "admin"};
  p.any_actor = true;
  p.max_chain_depth = 6;
  p.status_lists = {{"https://status.example/1", 1000, 1}};
  p.exchange.trust_domain = "trust.example";
  return p;
}

TokenRequest Root() {
  TokenRequest r = BaseRequest();
  r.audience = {"https://api.example", "https://tools.example"};
  r.scope = {"read", "write", "send"};
  r.actor_chain.clear();
  r.ttl_seconds = 3600;
  r.status = StatusReference{"https://status.example/1", 42};
  return r;
}

// A lookup that knows `key` for the policy's iss, as issuer "self".
ParentKeyLookup LookupFor(const SigningKey& key, const std::string& iss) {
  return [key, iss](std::string_view got_iss, std::string_view kid)
             -> absl::StatusOr<ParentKey> {
    if (got_iss != iss) {
      return absl::PermissionDeniedError("subject_token: issuer not trusted");
    }
    if (kid != key.kid) {
      return absl::PermissionDeniedError("subject_token: kid not published");
    }
    return ParentKey{key.public_key, key.alg, "self", nullptr};
  };
}

absl::StatusOr<VerifiedParent> Verify(const std::string& token,
                                      const SigningKey& key,
                                      absl::Time now = kNow) {
  return VerifyParent(token, LookupFor(key, Policy().iss), now,
                      absl::Seconds(60));
}

nlohmann::json ClaimsOf(const std::string& token) {
  size_t a = token.find('.'), b = token.find('.', a + 1);
  return nlohmann::json::parse(*Base64UrlDecode(token.substr(a + 1, b - a - 1)));
}

TEST(TransactionTokenRules, ReqWlAndScopeRequiredTxnGenerated) {
  TestSigningKey key = MakeSigningKey(SignAlgorithm::kES256);
  TokenRequest r = BaseRequest();
  r.kind = TokenKind::kTransactionToken;
  r.ttl_seconds = 60;
  r.audience = {"trust.example"};
  absl::StatusOr<MintedToken> t = Mint(Policy(), key, r, kNow);
  ASSERT_FALSE(t.ok());
  EXPECT_THAT(std::string(t.status().message()), StartsWith("req_wl: empty"));
  r.req_wl = "gateway.example";
  r.scope.clear();
  t = Mint(Policy(), key, r, kNow);
  ASSERT_FALSE(t.ok());
  EXPECT_THAT(std::string(t.status().message()), StartsWith("scope: empty"));
  r.scope = {"read"};
  t = Mint(Policy(), key, r, kNow);
  ASSERT_TRUE(t.ok()) << t.status();
  nlohmann::json c = ClaimsOf(t->token);
  for (const char* claim :
       {"txn", "sub", "aud", "scope", "req_wl", "iat", "exp"}) {
    EXPECT_TRUE(c.contains(claim)) << claim;
  }
  EXPECT_EQ(c["txn"].get<std::string>().size(), 22u);  // 128 bits, base64url
  EXPECT_EQ(c["txn"], t->txn);
  absl::StatusOr<MintedToken> t2 = Mint(Policy(), key, r, kNow);
  ASSERT_TRUE(t2.ok());
  EXPECT_NE(t2->txn, t->txn);
  r.txn = "given-txn";
  t2 = Mint(Policy(), key, r, kNow);
  ASSERT_TRUE(t2.ok());
  EXPECT_EQ(ClaimsOf(t2->token)["txn"], "given-txn");
}

TEST(StatusAndMayAct, WrittenAndChecked) {
  TestSigningKey key = MakeSigningKey(SignAlgorithm::kES256);
  TokenRequest r = Root();
  r.may_act = Actor{"agent-7", "https://agents.example"};
  absl::StatusOr<MintedToken> t = Mint(Policy(), key, r, kNow);
  ASSERT_TRUE(t.ok()) << t.status();
  nlohmann::json c = ClaimsOf(t->token);
  EXPECT_EQ(c["status"], nlohmann::json::parse(
                             R"({"status_list":{"idx":42,"uri":"https://status.example/1"}})"));
  EXPECT_EQ(c["may_act"], nlohmann::json::parse(
                              R"({"sub":"agent-7","iss":"https://agents.example"})"));

  IssuerPolicy p = Policy();
  r.status->idx = 1000;
  absl::Status s = CheckRequest(p, r);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(s.message()), StartsWith("status.idx: 1000 is outside"));
  r.status = StatusReference{"https://other.example/s", 1};
  s = CheckRequest(p, r);
  EXPECT_EQ(s.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(std::string(s.message()), StartsWith("status.uri: "));
  r.status.reset();
  EXPECT_TRUE(CheckRequest(p, r).ok());
  p.require_status = true;
  s = CheckRequest(p, r);
  EXPECT_THAT(std::string(s.message()), StartsWith("status: missing"));
  r.may_act = Actor{"", ""};
  r.status = StatusReference{"https://status.example/1", 0};
  s = CheckRequest(p, r);
  EXPECT_THAT(std::string(s.message()), StartsWith("may_act.sub: empty"));
}

TEST(VerifyParent, AcceptsOwnTokenAndReadsIt) {
  TestSigningKey key = MakeSigningKey(SignAlgorithm::kES256);
  TokenRequest r = Root();
  r.actor_chain = {{"agent-7", "https://agents.example"}, {"planner", ""}};
  r.cnf = Confirmation{testing::kJkt, ""};
  absl::StatusOr<MintedToken> t = Mint(Policy(), key, r, kNow);
  ASSERT_TRUE(t.ok());
  absl::StatusOr<VerifiedParent> p = Verify(t->token, key);
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(p->issuer, "self");
  EXPECT_EQ(p->sub, "alice");
  EXPECT_EQ(p->aud, r.audience);
  EXPECT_EQ(p->scope, r.scope);
  ASSERT_EQ(p->actor_chain.size(), 2u);
  EXPECT_EQ(p->actor_chain[0].iss, "https://agents.example");
  EXPECT_EQ(p->actor_chain[1].sub, "planner");
  EXPECT_EQ(p->status, r.status);
  EXPECT_EQ(p->cnf, r.cnf);
  EXPECT_EQ(p->jti, t->jti);
  EXPECT_EQ(p->exp, t->exp);
  EXPECT_EQ(p->sha256.size(), 64u);
}

TEST(VerifyParent, RefusesForgedExpiredFutureAndForeign) {
  TestSigningKey key = MakeSigningKey(SignAlgorithm::kES256);
  absl::StatusOr<MintedToken> t = Mint(Policy(), key, Root(), kNow);
  ASSERT_TRUE(t.ok());
  // Forged: same header (kid), same claims, another key's signature.
  TestSigningKey other = MakeSigningKey(SignAlgorithm::kES384);
  SigningKey forger = key;
  forger.signer = testing::SoftwareSigner(
      testing::GenerateKey(SignAlgorithm::kES256), nullptr,
      SignAlgorithm::kES256);
  IssuerPolicy no_verify = Policy();
  no_verify.verify_before_release = false;
  absl::StatusOr<MintedToken> forged = Mint(no_verify, forger, Root(), kNow);
  ASSERT_TRUE(forged.ok()) << forged.status();
  absl::StatusOr<VerifiedParent> p = Verify(forged->token, key);
  ASSERT_FALSE(p.ok());
  EXPECT_EQ(p.status().code(), absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(std::string(p.status().message()),
              StartsWith("subject_token: signature does not verify"));
  // A changed payload under the real signature.
  std::string tampered = t->token;
  size_t a = tampered.find('.'), b = tampered.find('.', a + 1);
  nlohmann::json c = ClaimsOf(t->token);
  c["scope"] = "read write send admin";
  tampered = tampered.substr(0, a + 1) + Base64UrlEncode(c.dump()) +
             tampered.substr(b);
  p = Verify(tampered, key);
  EXPECT_EQ(p.status().code(), absl::StatusCode::kPermissionDenied);
  // Expired (past exp + leeway), not yet valid.
  p = Verify(t->token, key, kNow + absl::Seconds(3600 + 60));
  EXPECT_THAT(std::string(p.status().message()),
              StartsWith("subject_token: expired at"));
  EXPECT_TRUE(Verify(t->token, key, kNow + absl::Seconds(3600 + 59)).ok());
  p = Verify(t->token, key, kNow - absl::Seconds(61));
  EXPECT_THAT(std::string(p.status().message()),
              StartsWith("subject_token: not yet valid"));
  // Another issuer's token: the lookup refuses its iss.
  IssuerPolicy foreign = Policy();
  foreign.iss = "https://other.example";
  absl::StatusOr<MintedToken> f = Mint(foreign, key, Root(), kNow);
  ASSERT_TRUE(f.ok());
  p = Verify(f->token, key);
  EXPECT_THAT(std::string(p.status().message()),
              StartsWith("subject_token: issuer not trusted"));
  // Not a JWS; a typ tokensign does not exchange.
  EXPECT_EQ(Verify("a.b", key).status().code(),
            absl::StatusCode::kInvalidArgument);
  absl::StatusOr<std::string> odd = SignCompact(
      key.private_key.get(), key.alg, key.kid, "JWT", ClaimsOf(t->token).dump());
  ASSERT_TRUE(odd.ok());
  EXPECT_THAT(std::string(Verify(*odd, key).status().message()),
              HasSubstr("typ \"JWT\" is not at+jwt"));
  (void)other;
}

// Header members of another type than string are refused by name, never
// thrown out of VerifyParent: nlohmann's value("kid", "") throws type_error
// for {"kid": 7}, and in tokensignd that exception ended the process on an
// ExchangeToken call (found by subject_token_fuzzer; regress_header_kid_number
// in its corpus).
TEST(VerifyParent, HeaderMembersOfAnotherTypeAreRefusedByName) {
  TestSigningKey key = MakeSigningKey(SignAlgorithm::kES256);
  absl::StatusOr<MintedToken> t = Mint(Policy(), key, Root(), kNow);
  ASSERT_TRUE(t.ok());
  const std::string rest = t->token.substr(t->token.find('.'));
  for (const char* name : {"kid", "typ", "alg"}) {
    for (const nlohmann::json& odd :
         {nlohmann::json(7), nlohmann::json(nullptr), nlohmann::json::object(),
          nlohmann::json::array({"x"}), nlohmann::json(true)}) {
      nlohmann::json header = {
          {"alg", "ES256"}, {"kid", key.kid}, {"typ", "at+jwt"}};
      header[name] = odd;
      absl::StatusOr<VerifiedParent> p =
          Verify(Base64UrlEncode(header.dump()) + rest, key);
      ASSERT_FALSE(p.ok()) << header;
      EXPECT_EQ(p.status().code(), absl::StatusCode::kInvalidArgument);
      EXPECT_EQ(std::string(p.status().message()),
                std::string("subject_token: header ") + name +
                    " is not a string")
          << header;
    }
  }
}

struct Fixture {
  TestSigningKey key = MakeSigningKey(SignAlgorithm::kES256);
  IssuerPolicy policy = Policy();

  VerifiedParent Parent(const TokenRequest& r, absl::Time now = kNow) {
    absl::StatusOr<MintedToken> t = Mint(policy, key, r, now);
    EXPECT_TRUE(t.ok()) << t.status();
    absl::StatusOr<VerifiedParent> p = Verify(t->token, key, now);
    EXPECT_TRUE(p.ok()) << p.status();
    return *p;
  }
  absl::Status Refusal(const VerifiedParent& p, const ExchangeRequest& x) {
    absl::StatusOr<Exchanged> e = Exchange(policy, key, p, x, kNow);
    return e.status();
  }
};

TEST(Exchange, ChildInheritsAndAttenuates) {
  Fixture f;
  TokenRequest root = Root();
  root.cnf = Confirmation{testing::kJkt, ""};
  VerifiedParent parent = f.Parent(root);
  ExchangeRequest x;
  x.actor = Actor{"agent-7", "https://agents.example"};
  x.scope = {"read"};
  x.audience = {"https://tools.example"};
  absl::StatusOr<Exchanged> e = Exchange(f.policy, f.key, parent, x, kNow);
  ASSERT_TRUE(e.ok()) << e.status();
  nlohmann::json c = ClaimsOf(e->minted.token);
  EXPECT_EQ(c["sub"], "alice");
  EXPECT_EQ(c["client_id"], "app");
  EXPECT_EQ(c["scope"], "read");
  EXPECT_EQ(c["aud"], "https://tools.example");
  EXPECT_EQ(c["act"], nlohmann::json::parse(
                          R"({"sub":"agent-7","iss":"https://agents.example"})"));
  EXPECT_EQ(c["status"]["status_list"]["idx"], 42);
  EXPECT_EQ(c["cnf"]["jkt"], testing::kJkt);
  EXPECT_LE(c["exp"].get<int64_t>(), parent.exp);
  EXPECT_EQ(e->request.parent_jti, parent.jti);
  EXPECT_EQ(e->request.parent_token_sha256, parent.sha256);

  // The child, exchanged again: the chain grows outermost-first.
  absl::StatusOr<VerifiedParent> child = Verify(e->minted.token, f.key);
  ASSERT_TRUE(child.ok());
  x.actor = Actor{"sub-agent", ""};
  x.audience.clear();
  x.scope.clear();
  e = Exchange(f.policy, f.key, *child, x, kNow);
  ASSERT_TRUE(e.ok()) << e.status();
  c = ClaimsOf(e->minted.token);
  EXPECT_EQ(c["act"]["sub"], "sub-agent");
  EXPECT_EQ(c["act"]["act"]["sub"], "agent-7");
  EXPECT_EQ(c["scope"], "read");
}

TEST(Exchange, EachRefusalNamesItsRule) {
  Fixture f;
  VerifiedParent parent = f.Parent(Root());
  auto expect = [&](const VerifiedParent& p, const ExchangeRequest& x,
                    const std::string& prefix) {
    absl::Status s = f.Refusal(p, x);
    EXPECT_FALSE(s.ok()) << prefix;
    EXPECT_THAT(std::string(s.message()), StartsWith(prefix));
  };
  ExchangeRequest x;
  x.scope = {"admin"};
  expect(parent, x, "scope: \"admin\" is not in the subject token's scope");
  x = {};
  x.audience = {"https://mail.example"};
  expect(parent, x, "aud: \"https://mail.example\" is not in the subject");
  f.policy.exchange.audience_map["https://api.example"] = {
      "https://mail.example"};
  EXPECT_TRUE(f.Refusal(parent, x).ok()) << "mapped audience allowed";
  x = {};
  x.ttl_seconds = 3601;
  expect(parent, x, "exp: ttl_seconds 3601 would end at");
  // A ttl near INT64_MAX: refused without overflowing now + ttl (UB; the
  // message once gave a negative end).
  x.ttl_seconds = std::numeric_limits<int64_t>::max();
  expect(parent, x,
         "exp: ttl_seconds 9223372036854775807 would end past the largest "
         "time int64 seconds hold, beyond the subject token's exp");
  x.ttl_seconds = 0;
  absl::StatusOr<Exchanged> e = Exchange(f.policy, f.key, parent, x,
                                         kNow + absl::Seconds(3500));
  ASSERT_TRUE(e.ok()) << e.status();
  EXPECT_EQ(e->minted.exp, parent.exp) << "default ttl cut to the parent's exp";

  TokenRequest with_may_act = Root();
  with_may_act.may_act = Actor{"agent-7", ""};
  VerifiedParent guarded = f.Parent(with_may_act);
  x = {};
  x.actor = Actor{"mallory", ""};
  expect(guarded, x, "actor: \"mallory\" is not permitted by the subject "
                     "token's may_act, which names \"agent-7\"");
  x.actor = Actor{"agent-7", "https://anywhere.example"};
  EXPECT_TRUE(f.Refusal(guarded, x).ok());

  TokenRequest bound = Root();
  bound.cnf = Confirmation{testing::kJkt, ""};
  VerifiedParent bound_parent = f.Parent(bound);
  x = {};
  x.cnf = Confirmation{"", testing::kJkt};
  expect(bound_parent, x, "cnf: the subject token is bound to another key");
  f.policy.exchange.allow_cnf_rebind = true;
  TokenRequest derived;
  e = Exchange(f.policy, f.key, bound_parent, x, kNow, &derived);
  ASSERT_TRUE(e.ok()) << e.status();
  EXPECT_EQ(e->request.parent_cnf, bound.cnf) << "audited with both keys";

  // Depth: the issuer's max applies to the whole chain.
  f.policy.max_chain_depth = 1;
  TokenRequest deep = Root();
  deep.actor_chain = {{"agent-7", ""}};
  VerifiedParent deep_parent = f.Parent(deep);
  x = {};
  x.actor = Actor{"sub-agent", ""};
  expect(deep_parent, x, "act.act.sub: chain depth 2 exceeds max 1");

  // Transaction tokens.
  x = {};
  x.kind = TokenKind::kTransactionToken;
  expect(parent, x, "req_wl: empty");
  x.req_wl = "gateway.example";
  x.ttl_seconds = 60;
  e = Exchange(f.policy, f.key, parent, x, kNow);
  ASSERT_TRUE(e.ok()) << e.status();
  nlohmann::json txn = ClaimsOf(e->minted.token);
  EXPECT_EQ(txn["aud"], "trust.example");
  EXPECT_EQ(txn["txn"].get<std::string>().size(), 22u);
  absl::StatusOr<VerifiedParent> txn_parent = Verify(e->minted.token, f.key);
  ASSERT_TRUE(txn_parent.ok()) << txn_parent.status();
  ExchangeRequest back;
  expect(*txn_parent, back, "kind: a transaction token cannot be exchanged");
  ExchangeRequest replace;
  replace.kind = TokenKind::kTransactionToken;
  replace.actor = Actor{"payments", ""};
  replace.scope = {"read"};
  replace.tctx = {{"step", 2}};
  e = Exchange(f.policy, f.key, *txn_parent, replace, kNow);
  ASSERT_TRUE(e.ok()) << e.status();
  nlohmann::json r2 = ClaimsOf(e->minted.token);
  EXPECT_EQ(r2["txn"], txn["txn"]);
  EXPECT_EQ(r2["sub"], txn["sub"]);
  EXPECT_EQ(r2["aud"], txn["aud"]);
  EXPECT_EQ(r2["req_wl"], "gateway.example");
  absl::StatusOr<VerifiedParent> second = Verify(e->minted.token, f.key);
  ASSERT_TRUE(second.ok());
  replace.tctx = {{"step", 3}};
  expect(*second, replace, "tctx.step: changes the subject token's value");
  replace.tctx = nullptr;
  replace.audience = {"https://api.example"};
  expect(*second, replace, "aud: a replacement transaction token keeps");
  f.policy.exchange.trust_domain.clear();
  expect(parent, x, "aud: this issuer has no exchange.trust_domain");

  // A parent without status where the issuer requires one.
  TokenRequest bare = Root();
  bare.status.reset();
  VerifiedParent bare_parent = f.Parent(bare);
  f.policy.require_status = true;
  expect(bare_parent, ExchangeRequest{}, "status: the subject token has no status");
}

// Random chains: every child stays inside its parent and carries the root's
// status reference.
TEST(Exchange, RandomChainsNeverWiden) {
  Fixture f;
  f.policy.max_chain_depth = 4;
  std::mt19937 rng(20260101);
  const std::vector<std::string> scopes = {"read", "write", "send", "admin"};
  const std::vector<std::string> auds = {"https://api.example",
                                         "https://tools.example",
                                         "https://mail.example"};
  auto pick = [&](const std::vector<std::string>& from) {
    std::vector<std::string> out;
    for (const std::string& s : from)
      if (rng() % 2 == 0) out.push_back(s);
    return out;
  };
  int accepted = 0, refused = 0;
  for (int chain = 0; chain < 60; ++chain) {
    VerifiedParent p = f.Parent(Root());
    for (int depth = 0; depth < 5; ++depth) {
      ExchangeRequest x;
      if (rng() % 4 != 0) x.actor = Actor{"actor-" + std::to_string(rng() % 5), ""};
      x.scope = pick(scopes);
      x.audience = pick(auds);
      x.ttl_seconds = rng() % 3 == 0 ? 0 : static_cast<int64_t>(rng() % 5000);
      absl::Time now = kNow + absl::Seconds(rng() % 100);
      absl::StatusOr<Exchanged> e = Exchange(f.policy, f.key, p, x, now);
      if (!e.ok()) {
        ++refused;
        continue;
      }
      ++accepted;
      absl::StatusOr<VerifiedParent> child = Verify(e->minted.token, f.key, now);
      ASSERT_TRUE(child.ok()) << child.status();
      for (const std::string& s : child->scope)
        EXPECT_TRUE(std::count(p.scope.begin(), p.scope.end(), s)) << s;
      for (const std::string& a : child->aud)
        EXPECT_TRUE(std::count(p.aud.begin(), p.aud.end(), a)) << a;
      EXPECT_LE(child->exp, p.exp);
      EXPECT_EQ(child->status, Root().status);
      EXPECT_EQ(child->actor_chain.size(),
                p.actor_chain.size() + (x.actor.has_value() ? 1 : 0));
      p = *child;
    }
  }
  EXPECT_GT(accepted, 50);
  EXPECT_GT(refused, 20);
}

// Found by tests/fuzz/subject_token_fuzzer: `now >= exp + leeway` overflowed
// (undefined behaviour) for an exp near INT64_MAX and, wrapped, called a
// far-future token expired. Any exp is compared without overflow now.
TEST(VerifyParent, ExpAtTheEdgesOfInt64) {
  TestSigningKey key = MakeSigningKey(SignAlgorithm::kES256);
  auto token_with_exp = [&](int64_t exp) {
    nlohmann::json c = {{"iss", Policy().iss}, {"sub", "alice"},
                        {"client_id", "app"},  {"aud", "https://api.example"},
                        {"iat", absl::ToUnixSeconds(kNow)},
                        {"exp", exp},          {"jti", "j-edge"}};
    return *SignCompact(key.private_key.get(), key.alg, key.kid, "at+jwt",
                        c.dump());
  };
  absl::StatusOr<VerifiedParent> p =
      Verify(token_with_exp(std::numeric_limits<int64_t>::max()), key);
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(p->exp, std::numeric_limits<int64_t>::max());
  p = Verify(token_with_exp(std::numeric_limits<int64_t>::max() - 59), key);
  EXPECT_TRUE(p.ok()) << p.status();
  p = Verify(token_with_exp(std::numeric_limits<int64_t>::min()), key);
  ASSERT_FALSE(p.ok());
  EXPECT_THAT(std::string(p.status().message()),
              StartsWith("subject_token: expired at"));
}

}  // namespace
}  // namespace tokensign::token
