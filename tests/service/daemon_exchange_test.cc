// End-to-end tests of issue 15 through the real tokensignd: token exchange
// with guaranteed attenuation (random chains checked with PyJWT, every
// refusal), transaction tokens (required claims, replacement), and revocation
// through a Token Status List checked by an outside Python checker written
// from the draft (tests/service/status_list_check.py: PyJWT + zlib).
#include <gtest/gtest.h>
#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "tests/service/daemon_harness.h"

namespace tokensign::testing {
namespace {

using v1::KeyAdmin;
using v1::TokenSigner;

constexpr char kStatusUri[] = "https://as.example/status/1";

std::string Toml(const std::string& audit, bool status_publisher) {
  const std::string issuer_common =
      "audiences = [\"https://api.example\", \"https://tools.example\", "
      "\"https://mail.example\", \"trust.example\"]\n"
      "scopes = [\"read\", \"write\", \"send\"]\nany_actor = true\n"
      "max_chain_depth = 4\n";
  return std::string("[hsm]\nmodule = \"" TOKENSIGN_SOFTHSM_MODULE
                     "\"\ntoken_label = \"tokensign-dev\"\npin_env = "
                     "\"TOKENSIGN_TEST_PIN\"\n\n"
                     "[server]\ninsecure = true\nclock_skew_seconds = 0\n\n"
                     "[audit]\npath = \"") +
         audit + "\"\n\n[[callers]]\nid = \"loopback\"\nroles = [\"signer\", " +
         (status_publisher ? "\"status-publisher\", " : "") +
         "\"custodian\"]\nissuers = [\"*\"]\n\n"
         "[issuers.as]\niss = \"https://as.example\"\n" + issuer_common +
         "require_status = true\n"
         "[[issuers.as.status_lists]]\nuri = \"" + kStatusUri +
         "\"\nsize = 4096\nbits = 1\n"
         "[issuers.as.exchange]\ntrust_domain = \"trust.example\"\n\n"
         "[issuers.other]\niss = \"https://other.example\"\n" + issuer_common +
         "\n[issuers.partner]\niss = \"https://partner.example\"\n" +
         issuer_common +
         "[issuers.partner.exchange]\ntrusted_parent_issuers = [\"as\"]\n";
}

struct Daemon {
  DaemonHarness h;
  DaemonProcess d;
  std::shared_ptr<grpc::Channel> ch;
  std::string state, pin;

  ~Daemon() {  // the daemon's log, when something failed
    if (::testing::Test::HasFailure() && !d.log_path.empty())
      std::cerr << "tokensignd log:\n" << ReadAll(d.log_path);
  }
  void Start(bool status_publisher = true) {
    if (state.empty()) {
      state = h.Path("state");
      h.InitDevState(state);
      pin = ReadAll(state + "/pin");
    }
    WriteAll(h.Path("cfg.toml"), Toml(h.Path("audit.log"), status_publisher));
    d = h.Start({"--config", h.Path("cfg.toml")},
                {"SOFTHSM2_CONF=" + state + "/softhsm2.conf",
                 "TOKENSIGN_TEST_PIN=" + pin});
    ASSERT_GT(d.pid, 0);
    ch = h.Insecure(d);
  }
  void FirstKeys() {
    for (const char* issuer : {"as", "other", "partner"}) {
      grpc::ClientContext ctx;
      v1::RotateKeyRequest req;
      req.set_issuer(issuer);
      v1::RotateKeyResponse r;
      grpc::Status st = KeyAdmin::NewStub(ch)->RotateKey(&ctx, req, &r);
      ASSERT_TRUE(st.ok()) << issuer << ": " << st.error_message();
    }
  }
  grpc::Status Sign(const v1::SignTokenRequest& req, v1::SignTokenResponse* r) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() +
                     std::chrono::seconds(30));
    return TokenSigner::NewStub(ch)->SignToken(&ctx, req, r);
  }
  grpc::Status Exchange(const v1::ExchangeTokenRequest& req,
                        v1::SignTokenResponse* r) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() +
                     std::chrono::seconds(30));
    return TokenSigner::NewStub(ch)->ExchangeToken(&ctx, req, r);
  }
  std::string Jwks(const std::string& issuer) {
    return h.HttpGet(d, "/issuers/" + issuer + "/jwks.json");
  }
};

// The root of the AI-agent scenario: alice's access token via app, with its
// status list entry.
v1::SignTokenRequest RootRequest(int64_t idx, const std::string& issuer = "as") {
  v1::SignTokenRequest r;
  r.set_issuer(issuer);
  r.set_kind(v1::ACCESS_TOKEN);
  r.set_subject("alice");
  r.set_client_id("app");
  r.add_audience("https://api.example");
  r.add_audience("https://tools.example");
  r.add_scope("read");
  r.add_scope("write");
  r.add_scope("send");
  r.set_ttl_seconds(1800);
  if (issuer == "as") {
    r.mutable_status()->set_uri(kStatusUri);
    r.mutable_status()->set_idx(idx);
  }
  return r;
}

v1::ExchangeTokenRequest ExchangeRequest(const std::string& subject_token,
                                         const std::string& actor,
                                         const std::string& issuer = "as") {
  v1::ExchangeTokenRequest x;
  x.set_issuer(issuer);
  x.set_subject_token(subject_token);
  x.set_kind(v1::ACCESS_TOKEN);
  if (!actor.empty()) x.mutable_actor()->set_sub(actor);
  return x;
}

// PyJWT verifies each token (key by kid from `jwks`, alg of that JWK, issuer
// checked, aud not) and returns its verified header typ and claims, or
// {"error": ...}.
std::vector<nlohmann::json> PyJwtClaims(DaemonHarness& h,
                                        const std::vector<std::string>& tokens,
                                        const std::string& jwks,
                                        const std::string& iss) {
  WriteAll(h.Path("tokens.json"), nlohmann::json(tokens).dump());
  WriteAll(h.Path("jwks.json"), jwks);
  WriteAll(h.Path("claims.py"), R"(import json, sys, jwt
tokens = json.load(open(sys.argv[1]))
jwks = json.load(open(sys.argv[2]))
for t in tokens:
    try:
        hdr = jwt.get_unverified_header(t)
        k = next(k for k in jwks["keys"] if k["kid"] == hdr["kid"])
        c = jwt.decode(t, jwt.PyJWK(k).key, algorithms=[k["alg"]],
                       issuer=sys.argv[3], options={"verify_aud": False})
        print(json.dumps({"typ": hdr["typ"], "claims": c}))
    except Exception as e:
        print(json.dumps({"error": repr(e)}))
)");
  std::string out;
  Shell(std::string(kSystemPython) + " " + h.Path("claims.py") + " " +
            h.Path("tokens.json") + " " + h.Path("jwks.json") + " " + iss +
            " 2>&1",
        &out);
  std::vector<nlohmann::json> result;
  std::istringstream lines(out);
  for (std::string line; std::getline(lines, line);) {
    nlohmann::json j = nlohmann::json::parse(line, nullptr, false);
    result.push_back(j.is_discarded() ? nlohmann::json{{"error", line}} : j);
  }
  return result;
}

std::vector<std::string> Words(const nlohmann::json& claims, const char* name) {
  std::vector<std::string> out;
  if (!claims.contains(name)) return out;
  const nlohmann::json& v = claims.at(name);
  if (v.is_array()) {
    for (const auto& e : v) out.push_back(e.get<std::string>());
  } else {
    std::istringstream in(v.get<std::string>());
    for (std::string w; in >> w;) out.push_back(w);
  }
  return out;
}

std::vector<std::string> Actors(const nlohmann::json& claims) {
  std::vector<std::string> out;
  const nlohmann::json* act = claims.contains("act") ? &claims.at("act") : nullptr;
  while (act != nullptr) {
    out.push_back(act->at("sub").get<std::string>());
    act = act->contains("act") ? &act->at("act") : nullptr;
  }
  return out;
}

bool Subset(const std::vector<std::string>& a, const std::vector<std::string>& b) {
  return std::all_of(a.begin(), a.end(), [&](const std::string& x) {
    return std::find(b.begin(), b.end(), x) != b.end();
  });
}

std::string Sha256Hex(const std::string& data) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(data.data(), data.size(), md, &len, EVP_sha256(), nullptr);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (unsigned int i = 0; i < len; ++i) {
    out.push_back(kHex[md[i] >> 4]);
    out.push_back(kHex[md[i] & 15]);
  }
  return out;
}

std::string B64Url(const unsigned char* p, size_t n) {
  std::string b64(4 * ((n + 2) / 3) + 1, '\0');
  int len = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(b64.data()), p,
                            static_cast<int>(n));
  b64.resize(len);
  for (char& c : b64) c = c == '+' ? '-' : c == '/' ? '_' : c;
  while (!b64.empty() && b64.back() == '=') b64.pop_back();
  return b64;
}

// `token` with its signature replaced by an ES256 signature of a fresh key
// (same header, kid and claims): a forged parent.
std::string Forge(const std::string& token) {
  const std::string input = token.substr(0, token.rfind('.'));
  EVP_PKEY* key = EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256");
  EVP_MD_CTX* md = EVP_MD_CTX_new();
  size_t len = 80;
  unsigned char der[80];
  EVP_DigestSignInit(md, nullptr, EVP_sha256(), nullptr, key);
  EVP_DigestSign(md, der, &len,
                 reinterpret_cast<const unsigned char*>(input.data()),
                 input.size());
  const unsigned char* p = der;
  ECDSA_SIG* sig = d2i_ECDSA_SIG(nullptr, &p, static_cast<long>(len));
  unsigned char raw[64];
  BN_bn2binpad(ECDSA_SIG_get0_r(sig), raw, 32);
  BN_bn2binpad(ECDSA_SIG_get0_s(sig), raw + 32, 32);
  ECDSA_SIG_free(sig);
  EVP_MD_CTX_free(md);
  EVP_PKEY_free(key);
  return input + "." + B64Url(raw, 64);
}

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

// Transaction tokens carry the draft's required claims; access -> transaction
// is the Txn-Token service flow; a replacement keeps txn, sub and aud.
TEST(DaemonExchangeTest, TransactionTokensCarryRequiredClaims) {
  Daemon s;
  s.Start();
  s.FirstKeys();
  v1::SignTokenRequest t = RootRequest(9);
  t.set_kind(v1::TRANSACTION_TOKEN);
  t.clear_audience();
  t.add_audience("trust.example");
  t.set_ttl_seconds(120);
  v1::SignTokenResponse r;
  grpc::Status st = s.Sign(t, &r);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(st.error_message().substr(0, 14), "req_wl: empty;");
  t.set_req_wl("gateway.example");
  ASSERT_TRUE(s.Sign(t, &r).ok());
  EXPECT_EQ(r.txn().size(), 22u) << "generated: 128 bits";

  v1::SignTokenResponse root, txn, replaced;
  ASSERT_TRUE(s.Sign(RootRequest(10), &root).ok());
  v1::ExchangeTokenRequest x = ExchangeRequest(root.token(), "agent-7");
  x.set_kind(v1::TRANSACTION_TOKEN);
  x.add_scope("read");
  x.add_scope("send");
  x.set_req_wl("gateway.example");
  st = s.Exchange(x, &txn);
  ASSERT_TRUE(st.ok()) << st.error_message();
  v1::ExchangeTokenRequest y = ExchangeRequest(txn.token(), "payments-agent");
  y.set_kind(v1::TRANSACTION_TOKEN);
  y.add_scope("send");
  st = s.Exchange(y, &replaced);
  ASSERT_TRUE(st.ok()) << st.error_message();

  std::vector<nlohmann::json> v = PyJwtClaims(
      s.h, {r.token(), txn.token(), replaced.token()}, s.Jwks("as"),
      "https://as.example");
  ASSERT_EQ(v.size(), 3u);
  for (const nlohmann::json& j : v) {
    ASSERT_FALSE(j.contains("error")) << j;
    EXPECT_EQ(j["typ"], "txntoken+jwt");
    for (const char* claim :
         {"txn", "sub", "aud", "scope", "req_wl", "iat", "exp"}) {
      EXPECT_TRUE(j["claims"].contains(claim)) << claim << " in " << j;
    }
    EXPECT_EQ(j["claims"]["aud"], "trust.example");
  }
  EXPECT_EQ(v[0]["claims"]["txn"], r.txn());
  EXPECT_EQ(v[1]["claims"]["txn"], txn.txn());
  EXPECT_EQ(v[2]["claims"]["txn"], v[1]["claims"]["txn"]);
  EXPECT_EQ(v[2]["claims"]["sub"], v[1]["claims"]["sub"]);
  EXPECT_EQ(v[2]["claims"]["aud"], v[1]["claims"]["aud"]);
  EXPECT_EQ(v[2]["claims"]["scope"], "send");
  EXPECT_EQ(v[2]["claims"]["act"]["sub"], "payments-agent");
  EXPECT_EQ(v[2]["claims"]["act"]["act"]["sub"], "agent-7");
  EXPECT_EQ(s.h.Stop(s.d, SIGTERM), 0);
}

// Revocation end to end: the AI-agent chain user -> agent -> sub-agent ->
// transaction token; a status list with the root's entry set; an outside
// checker says every descendant is revoked and an unrelated token is not.
TEST(DaemonExchangeTest, RevokingTheRootRevokesEveryDescendant) {
  Daemon s;
  s.Start(/*status_publisher=*/false);
  s.FirstKeys();
  v1::SignStatusListRequest list;
  list.set_issuer("as");
  list.set_uri(kStatusUri);
  v1::StatusEntry* e = list.add_entries();
  e->set_idx(7);
  e->set_status(1);
  {
    grpc::ClientContext ctx;
    v1::SignStatusListResponse r;
    grpc::Status st = TokenSigner::NewStub(s.ch)->SignStatusList(&ctx, list, &r);
    EXPECT_EQ(st.error_code(), grpc::StatusCode::PERMISSION_DENIED);
    EXPECT_NE(st.error_message().find("lacks the status-publisher role"),
              std::string::npos)
        << st.error_message();
  }
  ASSERT_EQ(s.h.Stop(s.d, SIGTERM), 0);
  s.Start(/*status_publisher=*/true);

  // SignToken's status checks.
  v1::SignTokenRequest bare = RootRequest(0);
  bare.clear_status();
  v1::SignTokenResponse r;
  grpc::Status st = s.Sign(bare, &r);
  EXPECT_EQ(st.error_message().substr(0, 16), "status: missing;");
  v1::SignTokenRequest outside = RootRequest(4096);
  st = s.Sign(outside, &r);
  EXPECT_EQ(st.error_message().substr(0, 34),
            "status.idx: 4096 is outside the li");

  v1::SignTokenResponse user, agent, sub_agent, txn, unrelated;
  ASSERT_TRUE(s.Sign(RootRequest(7), &user).ok());
  ASSERT_TRUE(s.Sign(RootRequest(8), &unrelated).ok());
  ASSERT_TRUE(s.Exchange(ExchangeRequest(user.token(), "agent"), &agent).ok());
  v1::ExchangeTokenRequest x = ExchangeRequest(agent.token(), "sub-agent");
  x.add_scope("read");
  ASSERT_TRUE(s.Exchange(x, &sub_agent).ok());
  v1::ExchangeTokenRequest y = ExchangeRequest(sub_agent.token(), "");
  y.set_kind(v1::TRANSACTION_TOKEN);
  y.set_req_wl("gateway.example");
  st = s.Exchange(y, &txn);
  ASSERT_TRUE(st.ok()) << st.error_message();

  v1::SignStatusListResponse signed_list;
  {
    grpc::ClientContext ctx;
    st = TokenSigner::NewStub(s.ch)->SignStatusList(&ctx, list, &signed_list);
    ASSERT_TRUE(st.ok()) << st.error_message();
  }
  EXPECT_EQ(signed_list.size(), 4096);
  EXPECT_EQ(signed_list.set_entries(), 1);
  {
    v1::SignStatusListRequest bad = list;
    bad.set_uri("https://elsewhere.example/status");
    grpc::ClientContext ctx;
    v1::SignStatusListResponse ignored;
    st = TokenSigner::NewStub(s.ch)->SignStatusList(&ctx, bad, &ignored);
    EXPECT_EQ(st.error_message().substr(0, 5), "uri: ");
  }

  WriteAll(s.h.Path("jwks.json"), s.Jwks("as"));
  WriteAll(s.h.Path("status_list.jwt"), signed_list.token());
  WriteAll(s.h.Path("refs.json"),
           nlohmann::json({user.token(), agent.token(), sub_agent.token(),
                           txn.token(), unrelated.token()})
               .dump());
  std::string out;
  int rc = Shell(std::string(kSystemPython) + " " TOKENSIGN_STATUS_CHECKER " " +
                     s.h.Path("jwks.json") + " " + s.h.Path("status_list.jwt") +
                     " " + s.h.Path("refs.json") + " 2>&1",
                 &out);
  EXPECT_EQ(rc, 0) << out;
  EXPECT_EQ(out, "0 INVALID\n1 INVALID\n2 INVALID\n3 INVALID\n4 VALID\n");

  // The status list is audited: uri, size, entries set, token hash.
  bool found = false;
  for (const nlohmann::json& line : s.h.AuditLines(s.h.Path("audit.log"))) {
    if (line.value("kind", "") != "status_list" ||
        line.value("outcome", "") != "signed") {
      continue;
    }
    found = true;
    EXPECT_EQ(line.value("status_uri", ""), kStatusUri);
    EXPECT_EQ(line.value("status_list_size", 0), 4096);
    EXPECT_EQ(line.value("status_list_set", 0), 1);
    EXPECT_EQ(line.value("token_sha256", ""), Sha256Hex(signed_list.token()));
  }
  EXPECT_TRUE(found);
  EXPECT_EQ(s.h.Stop(s.d, SIGTERM), 0);
}

// The operator commands: tokensignctl sign (--req-wl, --status-uri/idx),
// exchange and status-list sign, as the README's example runs them.
TEST(DaemonExchangeTest, CliExchangeAndStatusListSign) {
  Daemon s;
  s.Start();
  s.FirstKeys();
  const std::string ctl = std::string(TOKENSIGNCTL_PATH) +
                          " --insecure --server 127.0.0.1:" +
                          std::to_string(s.d.grpc_port) + " ";
  auto run = [&](const std::string& args, std::string* out) {
    out->clear();
    int rc = Shell(ctl + args + " 2>" + s.h.Path("stderr"), out);
    *out += ReadAll(s.h.Path("stderr"));
    while (!out->empty() && out->back() == '\n') out->pop_back();
    return rc;
  };
  std::string user, agent, sub_agent, txn, list, out;
  ASSERT_EQ(run("sign --issuer as --sub alice --client-id app --aud "
                "https://api.example --scope read --scope send --status-uri " +
                    std::string(kStatusUri) + " --status-idx 11 --ttl 900",
                &user),
            0)
      << user;
  WriteAll(s.h.Path("user.jwt"), user + "\n");
  ASSERT_EQ(run("exchange --issuer as --subject-token-file " +
                    s.h.Path("user.jwt") + " --actor agent --may-act sub-agent",
                &agent),
            0)
      << agent;
  WriteAll(s.h.Path("agent.jwt"), agent);
  EXPECT_EQ(run("exchange --issuer as --subject-token-file " +
                    s.h.Path("agent.jwt") + " --actor mallory",
                &out),
            1);
  EXPECT_NE(out.find("PERMISSION_DENIED: actor: \"mallory\" is not permitted"),
            std::string::npos)
      << out;
  ASSERT_EQ(run("exchange --issuer as --subject-token-file " +
                    s.h.Path("agent.jwt") + " --actor sub-agent --scope read",
                &sub_agent),
            0)
      << sub_agent;
  WriteAll(s.h.Path("sub_agent.jwt"), sub_agent);
  ASSERT_EQ(Shell(ctl + "exchange --issuer as --kind transaction --req-wl "
                        "gateway.example --subject-token-file - < " +
                      s.h.Path("sub_agent.jwt"),
                  &txn),
            0)
      << txn;
  while (!txn.empty() && txn.back() == '\n') txn.pop_back();
  EXPECT_EQ(run("sign --issuer as --kind transaction --sub alice --client-id "
                "app --aud trust.example --scope read --status-uri " +
                    std::string(kStatusUri) + " --status-idx 12",
                &out),
            1);
  EXPECT_NE(out.find("INVALID_ARGUMENT: req_wl: empty"), std::string::npos)
      << out;
  WriteAll(s.h.Path("revoked.txt"), "# revoked grants\n11\n");
  ASSERT_EQ(run("status-list sign --issuer as --uri " + std::string(kStatusUri) +
                    " --set-file " + s.h.Path("revoked.txt"),
                &list),
            0)
      << list;

  WriteAll(s.h.Path("jwks.json"), s.Jwks("as"));
  WriteAll(s.h.Path("status_list.jwt"), list);
  WriteAll(s.h.Path("refs.json"),
           nlohmann::json({user, agent, sub_agent, txn}).dump());
  out.clear();
  int rc = Shell(std::string(kSystemPython) + " " TOKENSIGN_STATUS_CHECKER " " +
                     s.h.Path("jwks.json") + " " + s.h.Path("status_list.jwt") +
                     " " + s.h.Path("refs.json") + " 2>&1",
                 &out);
  EXPECT_EQ(rc, 0) << out;
  EXPECT_EQ(out, "0 INVALID\n1 INVALID\n2 INVALID\n3 INVALID\n");
  EXPECT_EQ(s.h.Stop(s.d, SIGTERM), 0);
}

}  // namespace
}  // namespace tokensign::testing
