// End-to-end tests: the real tokensignd (from the build dir) on ephemeral
// loopback ports, each test with its own temp dir and SoftHSM token, driven
// over gRPC and HTTP.
#include <gtest/gtest.h>
#include <signal.h>

#include <atomic>
#include <thread>

#include "tests/service/daemon_harness.h"

namespace tokensign::testing {
namespace {

using v1::KeyAdmin;
using v1::TokenSigner;


grpc::Status Sign(const std::shared_ptr<grpc::Channel>& ch,
                  const v1::SignTokenRequest& req, v1::SignTokenResponse* resp,
                  int deadline_ms = 30000) {
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() +
                   std::chrono::milliseconds(deadline_ms));
  return TokenSigner::NewStub(ch)->SignToken(&ctx, req, resp);
}

std::string Jwks(const std::shared_ptr<grpc::Channel>& ch,
                 const std::string& issuer) {
  grpc::ClientContext ctx;
  v1::GetJwksRequest req;
  req.set_issuer(issuer);
  v1::GetJwksResponse resp;
  grpc::Status st = TokenSigner::NewStub(ch)->GetJwks(&ctx, req, &resp);
  EXPECT_TRUE(st.ok()) << st.error_message();
  return resp.jwks_json();
}

// PyJWT accepts `token` (the JWK's alg, the dev issuer); `typ_sub` is what it
// must report after the alg, e.g. "at+jwt alice".
void ExpectPyJwtVerifies(DaemonHarness& h, const std::string& token,
                         const std::string& jwks, const std::string& typ_sub) {
  const std::string out =
      PyJwtVerify(h, token, jwks, "", "https://issuer.example");
  const size_t space = out.find(' ');
  ASSERT_NE(space, std::string::npos) << out;
  EXPECT_EQ(out.substr(space + 1), typ_sub) << out;
}

std::string KidOf(const std::string& jwks_json) {
  auto j = nlohmann::json::parse(jwks_json);
  return j["keys"][0]["kid"].get<std::string>();
}

// A config-mode TOML using the dev token made in `state`.
std::string ConfigToml(
    DaemonHarness& h, const std::string& state, bool tls,
    const std::string& extra_server = "",
    const std::string& dev_scopes = "[\"read\", \"write\"]") {
  std::string server = tls ? "tls_cert = \"" + h.Path("server.pem") +
                                 "\"\ntls_key = \"" + h.Path("server.key") +
                                 "\"\nclient_ca = \"" + h.Path("ca.pem") +
                                 "\"\n"
                           : "insecure = true\n";
  return "[hsm]\nmodule = \"" TOKENSIGN_SOFTHSM_MODULE
         "\"\ntoken_label = \"tokensign-dev\"\n"
         "pin_file = \"" +
         state + "/pin\"\n\n[server]\n" + server + extra_server +
         "\n[audit]\npath = \"" + h.Path("audit.log") +
         "\"\n\n"
         "[[callers]]\nid = \"spiffe://test/signer\"\nroles = "
         "[\"signer\"]\nissuers = [\"dev\"]\n"
         "[[callers]]\nid = \"loopback\"\nroles = [\"signer\"]\nissuers = "
         "[\"dev\"]\n"
         "[[callers]]\nid = \"custodian-1\"\nroles = [\"custodian\", "
         "\"auditor\"]\nissuers = [\"*\"]\n\n"
         "[issuers.dev]\niss = \"https://issuer.example\"\n"
         "audiences = [\"https://api.example\"]\nscopes = " +
         dev_scopes + "\nany_actor = true\n" +
         // `other` (no key until the custodian makes one) only in the mTLS
         // test.
         (tls ? "[issuers.other]\niss = \"https://other.example\"\n"
                "audiences = [\"https://api.example\"]\nscopes = [\"read\"]\n"
                "any_actor = true\n"
              : "");
}

std::vector<std::string> SoftHsmEnv(const std::string& state) {
  return {"SOFTHSM2_CONF=" + state + "/softhsm2.conf"};
}

TEST(DaemonE2ETest, DevModeSignsBothKindsVerifiesAndRestartKeepsKid) {
  DaemonHarness h;
  std::string state = h.Path("dev-state");
  DaemonProcess d = h.Start({"--dev", "--state-dir", state});
  ASSERT_GT(d.pid, 0);
  auto ch = h.Insecure(d);
  std::string grpc_jwks = Jwks(ch, "dev");
  int code = 0;
  std::string http_jwks = h.HttpGet(d, "/issuers/dev/jwks.json", &code);
  EXPECT_EQ(code, 200);
  EXPECT_EQ(nlohmann::json::parse(http_jwks), nlohmann::json::parse(grpc_jwks));

  v1::SignTokenResponse access;
  grpc::Status st = Sign(ch, ScenarioRequest(), &access);
  ASSERT_TRUE(st.ok()) << st.error_message();
  EXPECT_EQ(access.kid(), KidOf(grpc_jwks));
  ExpectPyJwtVerifies(h, access.token(), http_jwks, "at+jwt alice");

  v1::SignTokenRequest txn = ScenarioRequest();
  txn.set_kind(v1::TRANSACTION_TOKEN);
  txn.set_ttl_seconds(120);
  txn.set_txn("txn-1");
  txn.set_req_wl("gateway.example");  // required (transaction tokens draft)
  v1::SignTokenResponse txn_resp;
  st = Sign(ch, txn, &txn_resp);
  ASSERT_TRUE(st.ok()) << st.error_message();
  ExpectPyJwtVerifies(h, txn_resp.token(), grpc_jwks, "txntoken+jwt alice");

  EXPECT_EQ(h.HttpGet(d, "/readyz", &code).substr(0, 2), "ok");
  std::string metrics = h.HttpGet(d, "/metrics", &code);
  EXPECT_NE(metrics.find(
                "tokensign_requests_total{code=\"OK\",method=\"SignToken\"} 2"),
            std::string::npos)
      << metrics;
  // Two tokens: two decision records durable, in at least one commit.
  EXPECT_NE(metrics.find("tokensign_audit_records_total 2\n"), std::string::npos)
      << metrics;
  EXPECT_NE(metrics.find("tokensign_audit_healthy 1\n"), std::string::npos) << metrics;
  EXPECT_EQ(metrics.find("tokensign_audit_commits_total 0\n"), std::string::npos)
      << metrics;
  std::string kid = access.kid();
  ASSERT_EQ(h.Stop(d, SIGTERM), 0);

  DaemonProcess again = h.Start({"--dev", "--state-dir", state});
  ASSERT_GT(again.pid, 0);
  v1::SignTokenResponse after;
  ASSERT_TRUE(Sign(h.Insecure(again), ScenarioRequest(), &after).ok());
  EXPECT_EQ(after.kid(), kid);
  EXPECT_EQ(h.Stop(again, SIGTERM), 0);
  // Three signed decisions across both runs, chained in one log.
  int signed_count = 0;
  for (const auto& line : h.AuditLines(state + "/audit.log")) {
    if (line.value("outcome", "") == "signed") ++signed_count;
  }
  EXPECT_EQ(signed_count, 3);
}

TEST(DaemonE2ETest, MtlsCallerRolesAreEnforcedAndAudited) {
  DaemonHarness h;
  std::string state = h.Path("state");
  h.InitDevState(state);
  h.MakeCerts();
  WriteAll(h.Path("tokensignd.toml"), ConfigToml(h, state, /*tls=*/true));
  DaemonProcess d =
      h.Start({"--config", h.Path("tokensignd.toml")}, SoftHsmEnv(state));
  ASSERT_GT(d.pid, 0);
  v1::SignTokenResponse resp;

  // The signer for `dev` signs.
  auto signer = h.Tls(d, "signer");
  grpc::Status st = Sign(signer, ScenarioRequest(), &resp);
  ASSERT_TRUE(st.ok()) << st.error_message();
  // No client certificate / a certificate from an unknown CA: the handshake
  // fails.
  EXPECT_EQ(Sign(h.Tls(d, ""), ScenarioRequest(), &resp, 5000).error_code(),
            grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(
      Sign(h.Tls(d, "rogue"), ScenarioRequest(), &resp, 5000).error_code(),
      grpc::StatusCode::UNAVAILABLE);
  // A plaintext client cannot talk to the mTLS port.
  EXPECT_NE(Sign(h.Insecure(d), ScenarioRequest(), &resp, 5000).error_code(),
            grpc::StatusCode::OK);
  // Signer for `dev` asking for `other`.
  st = Sign(signer, ScenarioRequest("other"), &resp);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_NE(st.error_message().find("may not sign for issuer \"other\""),
            std::string::npos);
  // A valid certificate that names no configured caller.
  EXPECT_EQ(Sign(h.Tls(d, "stranger"), ScenarioRequest(), &resp).error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  // Signer calling KeyAdmin.
  {
    grpc::ClientContext ctx;
    v1::RotateKeyRequest req;
    req.set_issuer("dev");
    v1::RotateKeyResponse r;
    EXPECT_EQ(KeyAdmin::NewStub(signer)->RotateKey(&ctx, req, &r).error_code(),
              grpc::StatusCode::PERMISSION_DENIED);
  }
  // The custodian (by CN) rotates `other`'s key (none yet -> first active key).
  {
    grpc::ClientContext ctx;
    v1::RotateKeyRequest req;
    req.set_issuer("other");
    v1::RotateKeyResponse r;
    st = KeyAdmin::NewStub(h.Tls(d, "custodian"))->RotateKey(&ctx, req, &r);
    ASSERT_TRUE(st.ok()) << st.error_message();
    EXPECT_EQ(r.active().state(), v1::ACTIVE);
    EXPECT_EQ(r.active().alg(), "ES256");
  }
  ASSERT_EQ(h.Stop(d, SIGTERM), 0);

  bool wrong_issuer = false, admin_denied = false, stranger = false,
       rotated = false;
  int64_t requested_seq = -1, done_seq = -1;
  for (const auto& l : h.AuditLines(h.Path("audit.log"))) {
    std::string caller = l.value("caller", ""),
                outcome = l.value("outcome", "");
    std::string kind = l.value("kind", ""), issuer = l.value("issuer", "");
    if (caller == "spiffe://test/signer" && issuer == "other" &&
        outcome == "denied") {
      wrong_issuer = true;
    }
    if (caller == "spiffe://test/signer" && kind == "key_admin.RotateKey" &&
        outcome == "denied") {
      admin_denied = true;
    }
    if (caller == "stranger" && outcome == "denied") stranger = true;
    if (caller == "custodian-1" && kind == "key_admin.RotateKey" &&
        outcome == "done") {
      rotated = true;
      done_seq = l.value("seq", int64_t{-1});
    }
    if (kind == "key_admin.RotateKey" && outcome == "requested") {
      // Only an authorized change is announced, before the HSM is touched.
      EXPECT_EQ(caller, "custodian-1") << l.dump();
      requested_seq = l.value("seq", int64_t{-1});
    }
  }
  EXPECT_GE(requested_seq, 0);
  EXPECT_LT(requested_seq, done_seq);
  EXPECT_TRUE(wrong_issuer);
  EXPECT_TRUE(admin_denied);
  EXPECT_TRUE(stranger);
  EXPECT_TRUE(rotated);
}

TEST(DaemonE2ETest, BatchAnswersEachItemInOrder) {
  DaemonHarness h;
  DaemonProcess d = h.Start({"--dev", "--state-dir", h.Path("state")});
  ASSERT_GT(d.pid, 0);
  v1::SignTokensRequest req;
  *req.add_requests() = ScenarioRequest();
  v1::SignTokenRequest bad_aud = ScenarioRequest();
  bad_aud.set_audience(0, "https://evil.example");
  *req.add_requests() = bad_aud;
  *req.add_requests() = ScenarioRequest("nope");
  v1::SignTokenRequest deep = ScenarioRequest();
  for (int i = 0; i < 6; ++i)
    deep.add_actor_chain()->set_sub("a" + std::to_string(i));
  *req.add_requests() = deep;
  for (int i = 0; i < 12; ++i) *req.add_requests() = ScenarioRequest();
  grpc::ClientContext ctx;
  v1::SignTokensResponse resp;
  grpc::Status st =
      TokenSigner::NewStub(h.Insecure(d))->SignTokens(&ctx, req, &resp);
  ASSERT_TRUE(st.ok()) << st.error_message();
  ASSERT_EQ(resp.results_size(), 16);
  EXPECT_TRUE(resp.results(0).has_response());
  ASSERT_TRUE(resp.results(1).has_error());
  EXPECT_EQ(resp.results(1).error().field(), "aud[0]");
  EXPECT_EQ(resp.results(1).error().code(),
            grpc::StatusCode::PERMISSION_DENIED);
  ASSERT_TRUE(resp.results(2).has_error());
  EXPECT_EQ(resp.results(2).error().code(), grpc::StatusCode::NOT_FOUND);
  ASSERT_TRUE(resp.results(3).has_error());
  EXPECT_NE(resp.results(3).error().field().find("act"), std::string::npos)
      << resp.results(3).error().message();
  std::set<std::string> jtis;
  for (int i = 4; i < 16; ++i) {
    ASSERT_TRUE(resp.results(i).has_response()) << i;
    jtis.insert(resp.results(i).response().jti());
  }
  EXPECT_EQ(jtis.size(), 12u);
  h.Stop(d, SIGTERM);
}

TEST(DaemonE2ETest, ExpiredDeadlineIsNotSigned) {
  DaemonHarness h;
  std::string state = h.Path("state");
  DaemonProcess d = h.Start({"--dev", "--state-dir", state},
                            {"TOKENSIGN_TEST_WORK_DELAY_MS=400"});
  ASSERT_GT(d.pid, 0);
  v1::SignTokenRequest late = ScenarioRequest();
  late.set_subject("late-user");
  v1::SignTokenResponse resp;
  // Connected first, so the 50 ms race the daemon's work and not the
  // connection set-up: under ASan that alone took longer, and the request
  // expired in the client before the daemon saw it (no record to check).
  std::shared_ptr<grpc::Channel> ch = h.Insecure(d);
  ASSERT_TRUE(ch->WaitForConnected(std::chrono::system_clock::now() +
                                   std::chrono::seconds(30)));
  EXPECT_EQ(Sign(ch, late, &resp, 50).error_code(),
            grpc::StatusCode::DEADLINE_EXCEEDED);
  ASSERT_EQ(h.Stop(d, SIGTERM),
            0);  // drains: the late item has been dealt with
  // Never signed; the refusal is on record.
  int refusals = 0;
  for (const auto& l : h.AuditLines(state + "/audit.log")) {
    if (l.value("sub", "") != "late-user") continue;
    EXPECT_EQ(l.value("outcome", ""), "denied") << l.dump();
    EXPECT_EQ(l.value("token_sha256", "x"), "") << l.dump();
    EXPECT_EQ(l.value("reason", ""),
              "deadline passed before signing; not signed");
    ++refusals;
  }
  EXPECT_EQ(refusals, 1);
}

TEST(DaemonE2ETest, FullQueueAnswersResourceExhaustedAndStaysHealthy) {
  DaemonHarness h;
  std::string state = h.Path("state");
  h.InitDevState(state);
  WriteAll(h.Path("t.toml"),
           ConfigToml(h, state, false, "worker_threads = 1\nmax_queue = 2\n"));
  DaemonProcess d =
      h.Start({"--config", h.Path("t.toml")},
              {SoftHsmEnv(state)[0], "TOKENSIGN_TEST_WORK_DELAY_MS=300"});
  ASSERT_GT(d.pid, 0);
  auto ch = h.Insecure(d);
  std::atomic<int> ok{0}, exhausted{0}, other{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < 8; ++i) {
    threads.emplace_back([&] {
      v1::SignTokenResponse r;
      grpc::Status st = Sign(ch, ScenarioRequest(), &r);
      if (st.ok()) {
        ++ok;
      } else if (st.error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED) {
        ++exhausted;
      } else {
        ++other;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_GE(ok.load(), 1);
  EXPECT_GE(exhausted.load(), 1);
  EXPECT_EQ(other.load(), 0);
  int code = 0;
  EXPECT_EQ(h.HttpGet(d, "/healthz", &code).substr(0, 2), "ok");
  EXPECT_EQ(h.HttpGet(d, "/readyz", &code).substr(0, 2), "ok");
  v1::SignTokenResponse r;
  EXPECT_TRUE(Sign(ch, ScenarioRequest(), &r).ok());
  EXPECT_EQ(h.Stop(d, SIGTERM), 0);
}

TEST(DaemonE2ETest, SighupReloadChangesPolicy) {
  DaemonHarness h;
  std::string state = h.Path("state");
  h.InitDevState(state);
  WriteAll(h.Path("t.toml"), ConfigToml(h, state, false));
  DaemonProcess d = h.Start({"--config", h.Path("t.toml")}, SoftHsmEnv(state));
  ASSERT_GT(d.pid, 0);
  auto ch = h.Insecure(d);
  v1::SignTokenRequest write = ScenarioRequest();
  write.set_scope(0, "write");
  v1::SignTokenResponse r;
  ASSERT_TRUE(Sign(ch, write, &r).ok());
  // A broken config on SIGHUP is refused and the old policy kept.
  WriteAll(h.Path("t.toml"), "[hsm\n");
  h.Signal(d, SIGHUP);
  WriteAll(h.Path("t.toml"), ConfigToml(h, state, false, "", "[\"read\"]"));
  h.Signal(d, SIGHUP);
  grpc::StatusCode code = grpc::StatusCode::OK;
  for (int i = 0; i < 200 && code == grpc::StatusCode::OK; ++i) {
    code = Sign(ch, write, &r).error_code();
    if (code == grpc::StatusCode::OK)
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_EQ(code, grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_TRUE(Sign(ch, ScenarioRequest(), &r).ok());  // read still allowed
  EXPECT_EQ(h.Stop(d, SIGTERM), 0);
}

TEST(DaemonE2ETest, SigtermDrainsInFlightAndLosesNoAuditedResponse) {
  DaemonHarness h;
  std::string state = h.Path("state");
  DaemonProcess d = h.Start({"--dev", "--state-dir", state},
                            {"TOKENSIGN_TEST_WORK_DELAY_MS=200"});
  ASSERT_GT(d.pid, 0);
  auto ch = h.Insecure(d);
  std::mutex mu;
  std::vector<std::string> jtis;
  std::vector<std::thread> threads;
  for (int i = 0; i < 6; ++i) {
    threads.emplace_back([&] {
      v1::SignTokenResponse r;
      if (Sign(ch, ScenarioRequest(), &r).ok()) {
        std::lock_guard l(mu);
        jtis.push_back(r.jti());
      }
    });
  }
  // Wait until work is queued, then stop.
  for (int i = 0; i < 400; ++i) {
    std::string m = h.HttpGet(d, "/metrics");
    if (m.find("tokensign_queue_depth 0") == std::string::npos &&
        m.find("tokensign_queue_depth") != std::string::npos) {
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_EQ(h.Stop(d, SIGTERM), 0);
  for (auto& t : threads) t.join();
  EXPECT_GE(jtis.size(), 1u);
  std::set<std::string> audited;
  for (const auto& l : h.AuditLines(state + "/audit.log")) {
    if (l.value("outcome", "") == "signed") audited.insert(l.value("jti", ""));
  }
  for (const std::string& jti : jtis) EXPECT_TRUE(audited.contains(jti)) << jti;
}

TEST(DaemonE2ETest, BadConfigIsRefusedNamingTheKey) {
  DaemonHarness h;
  std::string state = h.Path("state");
  std::string toml = ConfigToml(h, state, false);
  toml.replace(toml.find("any_actor = true"), 0, "max_chain_depth = 40\n");
  WriteAll(h.Path("bad.toml"), toml);
  std::string out;
  EXPECT_EQ(h.RunToExit({"--config", h.Path("bad.toml")}, &out), 2);
  EXPECT_NE(out.find("issuers.dev.max_chain_depth: must be 0..16, got 40"),
            std::string::npos)
      << out;
  WriteAll(h.Path("bad2.toml"), ConfigToml(h, state, false) + "[server2]\n");
  EXPECT_EQ(h.RunToExit({"--config", h.Path("bad2.toml")}, &out), 2);
  EXPECT_NE(out.find("server2: unknown key"), std::string::npos) << out;
}

TEST(DaemonE2ETest, PythonClientBuiltFromTheProtoSigns) {
  DaemonHarness h;
  DaemonProcess d = h.Start({"--dev", "--state-dir", h.Path("state")});
  ASSERT_GT(d.pid, 0);
  std::string gen = h.Path("py");
  std::string out;
  ASSERT_EQ(Shell("mkdir -p " + gen +
                      " && protoc -I" TOKENSIGN_PROTO_DIR " --python_out=" +
                      gen + " --grpc_out=" + gen +
                      " --plugin=protoc-gen-grpc=/usr/bin/"
                      "grpc_python_plugin " TOKENSIGN_PROTO_DIR
                      "/tokensign/v1/tokensign.proto 2>&1",
                  &out),
            0)
      << out;
  WriteAll(gen + "/client.py", R"(import json, sys, grpc, jwt
from tokensign.v1 import tokensign_pb2 as pb, tokensign_pb2_grpc as rpc
ch = grpc.insecure_channel(sys.argv[1])
stub = rpc.TokenSignerStub(ch)
r = stub.SignToken(pb.SignTokenRequest(issuer="dev", kind=pb.ACCESS_TOKEN, subject="alice",
    client_id="app", audience=["https://api.example"], scope=["read"], ttl_seconds=600,
    actor_chain=[pb.Actor(sub="agent-7"), pb.Actor(sub="planner")]), timeout=30)
jwks = json.loads(stub.GetJwks(pb.GetJwksRequest(issuer="dev"), timeout=30).jwks_json)
key = next(k for k in jwks["keys"] if k["kid"] == r.kid)
c = jwt.decode(r.token, jwt.PyJWK(key).key, algorithms=["ES256"], audience="https://api.example")
assert c["act"] == {"sub": "agent-7", "act": {"sub": "planner"}}
print("python-ok", c["sub"])
)");
  out.clear();
  EXPECT_EQ(Shell("cd " + gen + " && " + kSystemPython + " client.py 127.0.0.1:" +
                      std::to_string(d.grpc_port) + " 2>&1",
                  &out),
            0)
      << out;
  EXPECT_NE(out.find("python-ok alice"), std::string::npos) << out;
  h.Stop(d, SIGTERM);
}

// Scale-out: two daemons on one HSM token. A key rotated in through one of them
// is published and used by the other after its keyset refresh, with no
// SIGHUP and no restart.
TEST(DaemonE2ETest, ReplicasOnOneHsmPickUpEachOthersRotation) {
  DaemonHarness h;
  const std::string state = h.Path("state");
  h.InitDevState(state);
  auto config = [&](const std::string& name) {
    return "[hsm]\nmodule = \"" TOKENSIGN_SOFTHSM_MODULE
           "\"\ntoken_label = \"tokensign-dev\"\npin_file = \"" +
           state +
           "/pin\"\n\n[server]\ninsecure = true\nkeyset_refresh_seconds = 1\n"
           // Publish lead = 0 + 1 + 0 s: the planned rotation activates
           // (on A's timer) a second after it is made.
           "jwks_max_age = 0\nclock_skew_seconds = 0\n\n"
           "[audit]\npath = \"" +
           h.Path(name + "-audit.log") +
           // Replicas on one HSM: each its own audit log and anchor.
           "\"\ninstance = \"replica-" + name +
           "\"\n\n[[callers]]\nid = \"loopback\"\nroles = [\"signer\", "
           "\"custodian\"]\nissuers = [\"dev\"]\n\n[issuers.dev]\niss = "
           "\"https://issuer.example\"\naudiences = [\"https://api.example\"]\n"
           "scopes = [\"read\", \"write\"]\nany_actor = true\n";
  };
  WriteAll(h.Path("a.toml"), config("a"));
  WriteAll(h.Path("b.toml"), config("b"));
  DaemonProcess a = h.Start({"--config", h.Path("a.toml")}, SoftHsmEnv(state));
  DaemonProcess b = h.Start({"--config", h.Path("b.toml")}, SoftHsmEnv(state));
  ASSERT_GT(a.pid, 0);
  ASSERT_GT(b.pid, 0);
  v1::SignTokenResponse from_a, from_b;
  ASSERT_TRUE(Sign(h.Insecure(a), ScenarioRequest(), &from_a).ok());
  ASSERT_TRUE(Sign(h.Insecure(b), ScenarioRequest(), &from_b).ok());
  EXPECT_EQ(from_a.kid(), from_b.kid());

  v1::RotateKeyResponse rotated;
  {
    grpc::ClientContext ctx;
    v1::RotateKeyRequest req;
    req.set_issuer("dev");
    grpc::Status st =
        KeyAdmin::NewStub(h.Insecure(a))->RotateKey(&ctx, req, &rotated);
    ASSERT_TRUE(st.ok()) << st.error_message();
  }
  const std::string new_kid = rotated.active().kid();
  ASSERT_NE(new_kid, from_a.kid());
  // Planned: pending now, published at once, active after the publish lead.
  EXPECT_EQ(rotated.active().state(), v1::PENDING);
  EXPECT_TRUE(rotated.active().has_activate_at());
  EXPECT_EQ(rotated.retired().state(), v1::ACTIVE);

  // B publishes and signs with the new key once it has refreshed (bounded
  // wait for a state change, not a timing assertion).
  bool picked_up = false;
  v1::SignTokenResponse after;
  for (int i = 0; i < 300 && !picked_up; ++i) {
    grpc::Status st = Sign(h.Insecure(b), ScenarioRequest(), &after);
    ASSERT_TRUE(st.ok()) << st.error_message() << "\nreplica B log:\n"
                         << ReadAll(b.log_path);
    picked_up = after.kid() == new_kid;
    if (!picked_up) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  ASSERT_TRUE(picked_up) << "replica B still signs with " << after.kid();
  const std::string b_jwks = Jwks(h.Insecure(b), "dev");
  EXPECT_NE(b_jwks.find(new_kid), std::string::npos);
  EXPECT_NE(b_jwks.find(from_a.kid()), std::string::npos);  // retired, published
  ExpectPyJwtVerifies(h, after.token(), b_jwks, "at+jwt alice");
  EXPECT_EQ(h.Stop(a, SIGTERM), 0);
  EXPECT_EQ(h.Stop(b, SIGTERM), 0);
}

}  // namespace
}  // namespace tokensign::testing
