// Support for the end-to-end tests of token exchange, transaction tokens and
// status lists against the real tokensignd (daemon_exchange_test.cc,
// daemon_exchange_status_test.cc): the daemon's config (issuers as, other and
// partner; as with a status list and an exchange trust domain; partner
// trusting as's tokens as parents), a started daemon with its first keys, the
// requests of the AI-agent scenario, PyJWT as the outside verifier, claim
// readers, and a forged parent.
// Thread-safety: test helpers for one test thread.
#ifndef TOKENSIGN_TESTS_SERVICE_DAEMON_EXCHANGE_SUPPORT_H_
#define TOKENSIGN_TESTS_SERVICE_DAEMON_EXCHANGE_SUPPORT_H_

#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/evp.h>

#include <algorithm>
#include <chrono>
#include <iostream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "nlohmann/json.hpp"
#include "tests/service/daemon_harness.h"

namespace tokensign::testing::exchange {


using v1::KeyAdmin;
using v1::TokenSigner;

constexpr char kStatusUri[] = "https://as.example/status/1";

inline std::string Toml(const std::string& audit, bool status_publisher) {
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
  // The outside status-list checker (status_list_check.py) on `tokens`
  // against the signed list `list_jwt` and the "as" issuer's JWKS: one
  // "INDEX VALID|INVALID" line per token in *out; its exit code.
  int CheckStatuses(const std::string& list_jwt,
                    const std::vector<std::string>& tokens, std::string* out) {
    WriteAll(h.Path("jwks.json"), Jwks("as"));
    WriteAll(h.Path("status_list.jwt"), list_jwt);
    WriteAll(h.Path("refs.json"), nlohmann::json(tokens).dump());
    out->clear();
    return Shell(std::string(kSystemPython) + " " TOKENSIGN_STATUS_CHECKER " " +
                     h.Path("jwks.json") + " " + h.Path("status_list.jwt") +
                     " " + h.Path("refs.json") + " 2>&1",
                 out);
  }
};

// The root of the AI-agent scenario: alice's access token via app, with its
// status list entry.
inline v1::SignTokenRequest RootRequest(int64_t idx,
                                        const std::string& issuer = "as") {
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

inline v1::ExchangeTokenRequest ExchangeRequest(
    const std::string& subject_token, const std::string& actor,
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
inline std::vector<nlohmann::json> PyJwtClaims(
    DaemonHarness& h, const std::vector<std::string>& tokens,
    const std::string& jwks, const std::string& iss) {
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

inline std::vector<std::string> Words(const nlohmann::json& claims,
                                      const char* name) {
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

inline std::vector<std::string> Actors(const nlohmann::json& claims) {
  std::vector<std::string> out;
  const nlohmann::json* act =
      claims.contains("act") ? &claims.at("act") : nullptr;
  while (act != nullptr) {
    out.push_back(act->at("sub").get<std::string>());
    act = act->contains("act") ? &act->at("act") : nullptr;
  }
  return out;
}

inline bool Subset(const std::vector<std::string>& a,
                   const std::vector<std::string>& b) {
  return std::all_of(a.begin(), a.end(), [&](const std::string& x) {
    return std::find(b.begin(), b.end(), x) != b.end();
  });
}

inline std::string B64Url(const unsigned char* p, size_t n) {
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
inline std::string Forge(const std::string& token) {
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

}  // namespace tokensign::testing::exchange

#endif  // TOKENSIGN_TESTS_SERVICE_DAEMON_EXCHANGE_SUPPORT_H_
