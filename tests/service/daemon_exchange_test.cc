// End-to-end tests of token exchange through the real tokensignd: random
// chains of exchanges with guaranteed attenuation, each child verified with
// PyJWT and linked to its parent in the audit log, and every refusal naming
// its rule. Helpers: daemon_exchange_support.h.
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <map>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "tests/service/daemon_exchange_support.h"
#include "tests/service/daemon_harness.h"
#include "tests/support/sha256_hex.h"

namespace tokensign::testing {
namespace {

using namespace ::tokensign::testing::exchange;  // NOLINT: the suite's helpers
using v1::KeyAdmin;
using v1::TokenSigner;

// Random chains of exchanges (depth up to the issuer's max of 4 actors): no
// child ever has a scope, audience or exp outside its parent's, every child
// verifies with PyJWT, carries the root's status reference and nests its
// parent's actor chain; the audit log links each child to its verified parent.
TEST(DaemonExchangeTest, RandomChainsAttenuateAndVerifyWithPyJwt) {
  Daemon s;
  s.Start();
  s.FirstKeys();
  std::mt19937 rng(15);
  const std::vector<std::string> scopes = {"read", "write", "send"};
  const std::vector<std::string> auds = {
      "https://api.example", "https://tools.example", "https://mail.example"};
  // Mostly inside the parent's grant, sometimes outside (mail is in no
  // root's audience; an explicit ttl may pass the parent's exp).
  auto pick = [&](const std::vector<std::string>& from) {
    std::vector<std::string> out;
    for (const std::string& x : from) {
      const bool outside = x == "https://mail.example";
      if (rng() % (outside ? 8 : 3) == (outside ? 0 : 1)) out.push_back(x);
    }
    return out;
  };
  struct Hop {
    std::string parent, child;
    std::vector<std::string> new_actor;  // empty or one
  };
  std::vector<std::string> roots;
  std::vector<Hop> hops;
  int refused = 0;
  for (int chain = 0; chain < 10; ++chain) {
    v1::SignTokenResponse root;
    ASSERT_TRUE(s.Sign(RootRequest(100 + chain), &root).ok());
    roots.push_back(root.token());
    std::string parent = root.token();
    for (int depth = 0; depth < 5; ++depth) {
      std::string actor =
          rng() % 4 == 0 ? "" : "agent-" + std::to_string(rng() % 9);
      v1::ExchangeTokenRequest x = ExchangeRequest(parent, actor);
      for (const std::string& sc : pick(scopes)) x.add_scope(sc);
      for (const std::string& a : pick(auds)) x.add_audience(a);
      x.set_ttl_seconds(rng() % 3 == 0 ? 0 : rng() % 2000);
      v1::SignTokenResponse child;
      grpc::Status st = s.Exchange(x, &child);
      if (!st.ok()) {
        ++refused;
        EXPECT_TRUE(st.error_code() == grpc::StatusCode::PERMISSION_DENIED ||
                    st.error_code() == grpc::StatusCode::INVALID_ARGUMENT)
            << st.error_message();
        const std::string& m = st.error_message();
        EXPECT_TRUE(m.rfind("scope: ", 0) == 0 || m.rfind("aud: ", 0) == 0 ||
                    m.rfind("exp: ", 0) == 0 ||
                    m.rfind("act.act.act.act.act.sub: chain depth 5", 0) == 0)
            << m;
        continue;
      }
      hops.push_back({parent, child.token(),
                      actor.empty() ? std::vector<std::string>{}
                                    : std::vector<std::string>{actor}});
      parent = child.token();
    }
  }
  ASSERT_GT(hops.size(), 10u);
  EXPECT_GT(refused, 3);

  std::vector<std::string> tokens;
  for (const Hop& hop : hops) {
    tokens.push_back(hop.parent);
    tokens.push_back(hop.child);
  }
  std::vector<nlohmann::json> v =
      PyJwtClaims(s.h, tokens, s.Jwks("as"), "https://as.example");
  ASSERT_EQ(v.size(), tokens.size());
  std::set<std::string> root_set(roots.begin(), roots.end());
  for (size_t i = 0; i < hops.size(); ++i) {
    const nlohmann::json& p = v[2 * i];
    const nlohmann::json& c = v[2 * i + 1];
    ASSERT_FALSE(p.contains("error")) << p;
    ASSERT_FALSE(c.contains("error")) << c;
    const nlohmann::json& pc = p["claims"];
    const nlohmann::json& cc = c["claims"];
    EXPECT_EQ(c["typ"], "at+jwt");
    EXPECT_TRUE(Subset(Words(cc, "scope"), Words(pc, "scope"))) << cc;
    std::vector<std::string> caud =
        cc["aud"].is_array() ? Words(cc, "aud")
                             : std::vector<std::string>{cc["aud"].get<std::string>()};
    std::vector<std::string> paud =
        pc["aud"].is_array() ? Words(pc, "aud")
                             : std::vector<std::string>{pc["aud"].get<std::string>()};
    EXPECT_TRUE(Subset(caud, paud)) << cc;
    EXPECT_LE(cc["exp"].get<int64_t>(), pc["exp"].get<int64_t>());
    EXPECT_EQ(cc["sub"], "alice");
    EXPECT_EQ(cc["client_id"], "app");
    EXPECT_EQ(cc["status"], pc["status"]) << "the root's status reference";
    EXPECT_EQ(cc["status"]["status_list"]["uri"], kStatusUri);
    std::vector<std::string> want = hops[i].new_actor;
    for (const std::string& a : Actors(pc)) want.push_back(a);
    EXPECT_EQ(Actors(cc), want);
    EXPECT_LE(Actors(cc).size(), 4u);
  }

  // The audit record of each child names its verified parent.
  std::map<std::string, nlohmann::json> signed_by_hash;
  for (const nlohmann::json& line : s.h.AuditLines(s.h.Path("audit.log"))) {
    if (line.value("outcome", "") == "signed")
      signed_by_hash[line.value("token_sha256", "")] = line;
  }
  for (const Hop& hop : hops) {
    const nlohmann::json& rec = signed_by_hash[Sha256Hex(hop.child)];
    const nlohmann::json& prec = signed_by_hash[Sha256Hex(hop.parent)];
    EXPECT_EQ(rec.value("parent_jti", ""), prec.value("jti", "?"));
    EXPECT_EQ(rec.value("parent_token_sha256", ""), Sha256Hex(hop.parent));
    EXPECT_EQ(rec.value("status_uri", ""), kStatusUri);
  }
  // tokensignctl audit lineage walks the last chain back to its root.
  const nlohmann::json& leaf = signed_by_hash[Sha256Hex(hops.back().child)];
  std::string out;
  // "--": a jti is base64url and begins with '-' one time in 64, which the
  // command line would take for an option.
  ASSERT_EQ(Shell(std::string(TOKENSIGNCTL_PATH) + " audit lineage " +
                      s.h.Path("audit.log") + " -- " + leaf.value("jti", ""),
                  &out),
            0)
      << out;
  std::string walk = hops.back().child;
  for (const Hop& hop : std::vector<Hop>(hops.rbegin(), hops.rend())) {
    if (hop.child != walk) continue;
    EXPECT_NE(out.find(signed_by_hash[Sha256Hex(hop.parent)].value("jti", "?")),
              std::string::npos)
        << out;
    walk = hop.parent;
  }
  EXPECT_TRUE(root_set.contains(walk)) << "the walk ends at a root";
  EXPECT_EQ(s.h.Stop(s.d, SIGTERM), 0);
}

// Each refusal names its rule, and is audited as denied.
TEST(DaemonExchangeTest, EachRefusalNamesItsRule) {
  Daemon s;
  s.Start();
  s.FirstKeys();
  v1::SignTokenResponse root;
  ASSERT_TRUE(s.Sign(RootRequest(1), &root).ok());
  auto refused = [&](const v1::ExchangeTokenRequest& x,
                     const std::string& prefix) {
    v1::SignTokenResponse r;
    grpc::Status st = s.Exchange(x, &r);
    EXPECT_FALSE(st.ok()) << prefix;
    EXPECT_EQ(st.error_message().substr(0, prefix.size()), prefix)
        << st.error_message();
  };
  v1::ExchangeTokenRequest x = ExchangeRequest(root.token(), "agent-7");
  x.add_scope("admin");
  refused(x, "scope: \"admin\" is not in the subject token's scope");
  x.clear_scope();
  x.add_audience("https://mail.example");
  refused(x, "aud: \"https://mail.example\" is not in the subject token's");
  x.clear_audience();
  x.set_ttl_seconds(1900);
  refused(x, "exp: ttl_seconds 1900 would end at");
  x.set_ttl_seconds(0);

  // A forged parent: same header and claims, another key's signature.
  refused(ExchangeRequest(Forge(root.token()), "agent-7"),
          "subject_token: signature does not verify");
  // A parent of an issuer that `as` does not trust; `partner` trusts `as`.
  v1::SignTokenResponse foreign;
  ASSERT_TRUE(s.Sign(RootRequest(0, "other"), &foreign).ok());
  refused(ExchangeRequest(foreign.token(), "agent-7"),
          "subject_token: issued by issuer \"other\"");
  v1::SignTokenResponse across;
  grpc::Status st =
      s.Exchange(ExchangeRequest(root.token(), "agent-7", "partner"), &across);
  EXPECT_TRUE(st.ok()) << st.error_message();
  // may_act names someone else.
  v1::SignTokenRequest guarded = RootRequest(2);
  guarded.mutable_may_act()->set_sub("agent-7");
  v1::SignTokenResponse guarded_token;
  ASSERT_TRUE(s.Sign(guarded, &guarded_token).ok());
  refused(ExchangeRequest(guarded_token.token(), "mallory"),
          "actor: \"mallory\" is not permitted by the subject token's may_act");
  EXPECT_TRUE(s.Exchange(ExchangeRequest(guarded_token.token(), "agent-7"),
                         &across)
                  .ok());
  // transaction -> access.
  v1::ExchangeTokenRequest to_txn = ExchangeRequest(root.token(), "agent-7");
  to_txn.set_kind(v1::TRANSACTION_TOKEN);
  to_txn.set_req_wl("gateway.example");
  v1::SignTokenResponse txn;
  ASSERT_TRUE(s.Exchange(to_txn, &txn).ok());
  refused(ExchangeRequest(txn.token(), ""),
          "kind: a transaction token cannot be exchanged for an access token");
  // An expired parent (clock_skew_seconds = 0 in this config).
  v1::SignTokenRequest brief = RootRequest(3);
  brief.set_ttl_seconds(1);
  v1::SignTokenResponse brief_token;
  ASSERT_TRUE(s.Sign(brief, &brief_token).ok());
  sleep(2);
  refused(ExchangeRequest(brief_token.token(), "agent-7"),
          "subject_token: expired at");

  // Keys: a retired key that is still published verifies its tokens; a
  // withdrawn key's tokens are refused.
  v1::SignTokenResponse by_first;
  ASSERT_TRUE(s.Sign(RootRequest(4), &by_first).ok());
  {
    grpc::ClientContext ctx;
    v1::RotateKeyRequest req;
    req.set_issuer("as");
    v1::RotateKeyResponse r;
    ASSERT_TRUE(KeyAdmin::NewStub(s.ch)->RotateKey(&ctx, req, &r).ok());
    grpc::ClientContext actx;
    v1::ActivateKeyRequest areq;
    areq.set_issuer("as");
    areq.set_kid(r.active().kid());
    areq.set_force(true);
    areq.set_reason("test: retire the first key now");
    v1::ActivateKeyResponse ar;
    st = KeyAdmin::NewStub(s.ch)->ActivateKey(&actx, areq, &ar);
    ASSERT_TRUE(st.ok()) << st.error_message();
  }
  st = s.Exchange(ExchangeRequest(by_first.token(), "agent-7"), &across);
  EXPECT_TRUE(st.ok()) << "retired, still published: " << st.error_message();
  v1::SignTokenResponse by_second;
  ASSERT_TRUE(s.Sign(RootRequest(5), &by_second).ok());
  {
    grpc::ClientContext ctx;
    v1::RotateKeyRequest req;
    req.set_issuer("as");
    req.set_mode(v1::EMERGENCY);
    req.set_reason("test: key compromised");
    v1::RotateKeyResponse r;
    st = KeyAdmin::NewStub(s.ch)->RotateKey(&ctx, req, &r);
    ASSERT_TRUE(st.ok()) << st.error_message();
  }
  refused(ExchangeRequest(by_second.token(), "agent-7"),
          "subject_token: kid \"");

  int denied = 0;
  for (const nlohmann::json& line : s.h.AuditLines(s.h.Path("audit.log"))) {
    if (line.value("outcome", "") == "denied" &&
        line.value("reason", "").rfind("subject_token: ", 0) == 0) {
      ++denied;
    }
  }
  EXPECT_EQ(denied, 4) << "forged, untrusted, expired, withdrawn";
  EXPECT_EQ(s.h.Stop(s.d, SIGTERM), 0);
}

}  // namespace
}  // namespace tokensign::testing
