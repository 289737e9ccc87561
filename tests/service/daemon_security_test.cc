// End-to-end tests of tokensignd (part 2): every signing algorithm through a
// config-file daemon verified by PyJWT against the HTTP JWKS, the PIN kept out
// of argv and logs, the audit log holding only token hashes, client
// certificates that try to pass for a CN-named caller, and the PIN, pid and
// ready files (permissions, planted symlinks).
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>

#include <set>
#include <string>
#include <vector>

#include "tests/service/daemon_harness.h"
#include "tests/support/sha256_hex.h"

namespace tokensign::testing {
namespace {

using v1::KeyAdmin;
using v1::TokenSigner;


struct AlgCase {
  const char* issuer;
  const char* alg;
};
constexpr AlgCase kAlgs[] = {{"es256", "ES256"},
                             {"es384", "ES384"},
                             {"eddsa", "EdDSA"},
                             {"ps256", "PS256"},
                             {"rs256", "RS256"}};


grpc::Status Sign(const std::shared_ptr<grpc::Channel>& ch,
                  const v1::SignTokenRequest& req,
                  v1::SignTokenResponse* resp) {
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
  return TokenSigner::NewStub(ch)->SignToken(&ctx, req, resp);
}

v1::SignTokenRequest TxnRequest(const std::string& issuer) {
  v1::SignTokenRequest r = ScenarioRequest(issuer);
  r.set_kind(v1::TRANSACTION_TOKEN);
  r.set_ttl_seconds(120);
  r.set_txn("txn-" + issuer);
  r.set_req_wl("gateway.example");  // required (transaction tokens draft)
  return r;
}

// Config file: plaintext loopback; the "loopback" caller signs for every
// issuer and is custodian; one issuer per algorithm, no keys yet.
std::string AlgorithmsToml(const std::string& audit) {
  std::string toml = "[hsm]\nmodule = \"" TOKENSIGN_SOFTHSM_MODULE
                     "\"\ntoken_label = \"tokensign-dev\"\npin_env = "
                     "\"TOKENSIGN_TEST_PIN\"\n\n"
                     "[server]\ninsecure = true\n\n[audit]\npath = \"" +
                     audit +
                     "\"\n\n[[callers]]\nid = \"loopback\"\nroles = "
                     "[\"signer\", \"custodian\"]\nissuers = [\"*\"]\n";
  for (const AlgCase& c : kAlgs) {
    toml += std::string("\n[issuers.") + c.issuer + "]\niss = \"https://" +
            c.issuer + ".example\"\nalgorithm = \"" + c.alg +
            "\"\naudiences = [\"https://api.example\"]\nscopes = [\"read\"]\n"
            "any_actor = true\n";
  }
  return toml;
}

TEST(DaemonAlgorithmsTest, EveryAlgorithmSignsBothKindsAndPyJwtVerifies) {
  DaemonHarness h;
  std::string state = h.Path("state");
  h.InitDevState(state);
  std::string pin = ReadAll(state + "/pin");
  ASSERT_FALSE(pin.empty());
  WriteAll(h.Path("algs.toml"), AlgorithmsToml(h.Path("audit.log")));
  DaemonProcess d = h.Start({"--config", h.Path("algs.toml")},
                            {"SOFTHSM2_CONF=" + state + "/softhsm2.conf",
                             "TOKENSIGN_TEST_PIN=" + pin});
  ASSERT_GT(d.pid, 0);
  auto ch = h.Insecure(d);

  // The custodian gives each issuer its first key (algorithm from config).
  for (const AlgCase& c : kAlgs) {
    grpc::ClientContext ctx;
    v1::RotateKeyRequest req;
    req.set_issuer(c.issuer);
    v1::RotateKeyResponse r;
    grpc::Status st = KeyAdmin::NewStub(ch)->RotateKey(&ctx, req, &r);
    ASSERT_TRUE(st.ok()) << c.issuer << ": " << st.error_message();
    EXPECT_EQ(r.active().alg(), c.alg);
  }

  v1::SignTokensRequest batch;
  for (const AlgCase& c : kAlgs) {
    SCOPED_TRACE(c.alg);
    std::string iss = std::string("https://") + c.issuer + ".example";
    int code = 0;
    std::string jwks =
        h.HttpGet(d, std::string("/issuers/") + c.issuer + "/jwks.json", &code);
    ASSERT_EQ(code, 200) << jwks;
    v1::SignTokenResponse access, txn;
    grpc::Status st = Sign(ch, ScenarioRequest(c.issuer), &access);
    ASSERT_TRUE(st.ok()) << st.error_message();
    EXPECT_EQ(PyJwtVerify(h, access.token(), jwks, c.alg, iss),
              std::string(c.alg) + " at+jwt alice");
    st = Sign(ch, TxnRequest(c.issuer), &txn);
    ASSERT_TRUE(st.ok()) << st.error_message();
    EXPECT_EQ(PyJwtVerify(h, txn.token(), jwks, c.alg, iss),
              std::string(c.alg) + " txntoken+jwt alice");
    // The verifier must reject a wrong algorithm (the check is real).
    EXPECT_NE(
        PyJwtVerify(h, access.token(), jwks,
                    std::string(c.alg) == "ES256" ? "ES384" : "ES256", iss),
        std::string(c.alg) + " at+jwt alice");
    *batch.add_requests() = ScenarioRequest(c.issuer);
  }

  // A batch mixing all five algorithms: each item verifies with its issuer's
  // JWKS.
  grpc::ClientContext ctx;
  v1::SignTokensResponse resp;
  grpc::Status st = TokenSigner::NewStub(ch)->SignTokens(&ctx, batch, &resp);
  ASSERT_TRUE(st.ok()) << st.error_message();
  ASSERT_EQ(resp.results_size(), 5);
  for (int i = 0; i < 5; ++i) {
    const AlgCase& c = kAlgs[i];
    ASSERT_TRUE(resp.results(i).has_response()) << c.alg;
    std::string jwks =
        h.HttpGet(d, std::string("/issuers/") + c.issuer + "/jwks.json");
    EXPECT_EQ(PyJwtVerify(h, resp.results(i).response().token(), jwks, c.alg,
                          std::string("https://") + c.issuer + ".example"),
              std::string(c.alg) + " at+jwt alice");
  }
  EXPECT_EQ(h.Stop(d, SIGTERM), 0);
}

TEST(DaemonSecretsTest, PinNeverInArgvOrLogsAndPinFilesAre0600) {
  DaemonHarness h;
  std::string state = h.Path("state");
  DaemonProcess d =
      h.Start({"--dev", "--state-dir", state, "--log-level", "trace"});
  ASSERT_GT(d.pid, 0);
  std::string pin = ReadAll(state + "/pin");
  std::string so_pin = ReadAll(state + "/so-pin");
  ASSERT_GE(pin.size(), 16u);
  ASSERT_GE(so_pin.size(), 16u);
  for (const char* f : {"/pin", "/so-pin"}) {
    struct stat st {};
    ASSERT_EQ(::stat((state + f).c_str(), &st), 0) << f;
    EXPECT_EQ(st.st_mode & 0777, 0600u) << f;
  }
  struct stat dir_st {};
  ASSERT_EQ(::stat(state.c_str(), &dir_st), 0);
  EXPECT_EQ(dir_st.st_mode & 0077, 0u);  // state dir private

  std::string cmdline = ReadAll("/proc/" + std::to_string(d.pid) + "/cmdline");
  ASSERT_NE(cmdline.find("--dev"), std::string::npos);  // read the right file
  EXPECT_EQ(cmdline.find(pin), std::string::npos);
  EXPECT_EQ(cmdline.find(so_pin), std::string::npos);
  std::string environ = ReadAll("/proc/" + std::to_string(d.pid) + "/environ");
  EXPECT_EQ(environ.find(pin), std::string::npos);

  v1::SignTokenResponse resp;
  ASSERT_TRUE(Sign(h.Insecure(d), ScenarioRequest(), &resp).ok());
  std::string sig = resp.token().substr(resp.token().rfind('.') + 1);
  ASSERT_EQ(h.Stop(d, SIGTERM), 0);

  // Config mode with the PIN in an environment variable: argv and log clean.
  WriteAll(h.Path("pin.toml"),
           "[hsm]\nmodule = \"" TOKENSIGN_SOFTHSM_MODULE
           "\"\ntoken_label = \"tokensign-dev\"\npin_env = \"MY_PIN\"\n\n"
           "[server]\ninsecure = true\n\n[audit]\npath = \"" +
               h.Path("audit.log") +
               "\"\n\n[[callers]]\nid = \"loopback\"\nroles = [\"signer\"]\n"
               "issuers = [\"dev\"]\n\n[issuers.dev]\niss = \"https://issuer.example\"\n"
               "audiences = [\"https://api.example\"]\nscopes = [\"read\"]\n"
               "any_actor = true\n");
  DaemonProcess c =
      h.Start({"--config", h.Path("pin.toml"), "--log-level", "trace"},
              {"SOFTHSM2_CONF=" + state + "/softhsm2.conf", "MY_PIN=" + pin});
  ASSERT_GT(c.pid, 0);
  std::string cmdline2 = ReadAll("/proc/" + std::to_string(c.pid) + "/cmdline");
  ASSERT_NE(cmdline2.find("--config"), std::string::npos);
  EXPECT_EQ(cmdline2.find(pin), std::string::npos);
  // Read once at start, then scrubbed from the process environment; signing
  // (re-login included) keeps working from the pool's copy.
  std::string environ2 = ReadAll("/proc/" + std::to_string(c.pid) + "/environ");
  EXPECT_NE(environ2.find("SOFTHSM2_CONF="), std::string::npos);
  EXPECT_EQ(environ2.find(pin), std::string::npos);
  grpc::Status signed_after_scrub = Sign(h.Insecure(c), ScenarioRequest(), &resp);
  EXPECT_TRUE(signed_after_scrub.ok()) << signed_after_scrub.error_message();
  ASSERT_EQ(h.Stop(c, SIGTERM), 0);

  for (const std::string& log : {d.log_path, c.log_path}) {
    std::string text = ReadAll(log);
    ASSERT_FALSE(text.empty()) << log;  // the daemon did log
    EXPECT_EQ(text.find(pin), std::string::npos) << log;
    EXPECT_EQ(text.find(so_pin), std::string::npos) << log;
    EXPECT_EQ(text.find(sig), std::string::npos) << log;  // no whole token
  }
}

TEST(DaemonSecretsTest, AuditLogHoldsOnlyTheTokensSha256) {
  DaemonHarness h;
  std::string state = h.Path("state");
  DaemonProcess d = h.Start({"--dev", "--state-dir", state});
  ASSERT_GT(d.pid, 0);
  auto ch = h.Insecure(d);
  std::vector<std::string> tokens;
  v1::SignTokenResponse r;
  ASSERT_TRUE(Sign(ch, ScenarioRequest(), &r).ok());
  tokens.push_back(r.token());
  ASSERT_TRUE(Sign(ch, TxnRequest("dev"), &r).ok());
  tokens.push_back(r.token());
  v1::SignTokensRequest batch;
  for (int i = 0; i < 4; ++i) *batch.add_requests() = ScenarioRequest();
  v1::SignTokenRequest denied = ScenarioRequest();
  denied.set_audience(0, "https://evil.example");
  *batch.add_requests() = denied;
  grpc::ClientContext ctx;
  v1::SignTokensResponse resp;
  ASSERT_TRUE(TokenSigner::NewStub(ch)->SignTokens(&ctx, batch, &resp).ok());
  for (const auto& item : resp.results()) {
    if (item.has_response()) tokens.push_back(item.response().token());
  }
  ASSERT_EQ(tokens.size(), 6u);
  ASSERT_EQ(h.Stop(d, SIGTERM), 0);

  std::string text = ReadAll(state + "/audit.log");
  std::set<std::string> want, got;
  for (const std::string& t : tokens) {
    want.insert(Sha256Hex(t));
    size_t dot1 = t.find('.'), dot2 = t.rfind('.');
    EXPECT_EQ(text.find(t), std::string::npos);
    EXPECT_EQ(text.find(t.substr(dot1 + 1, dot2 - dot1 - 1)),
              std::string::npos);                                 // payload
    EXPECT_EQ(text.find(t.substr(dot2 + 1)), std::string::npos);  // signature
  }
  int denied_lines = 0;
  for (const auto& l : h.AuditLines(state + "/audit.log")) {
    std::string outcome = l.value("outcome", "");
    if (outcome == "signed") got.insert(l.value("token_sha256", ""));
    if (outcome == "denied") {
      ++denied_lines;
      EXPECT_EQ(l.value("token_sha256", ""), "") << l.dump();
    }
  }
  EXPECT_EQ(got, want);
  EXPECT_EQ(denied_lines, 1);
}

// Client certificates from the harness CA (after MakeCerts) that try to pass
// for the CN-named caller custodian-1: a URI SAN without ':' naming it, and
// subjects with two CNs, custodian-1 first or second.
void MakeImpostorCerts(DaemonHarness& h) {
  std::string script = "set -e\ncd \"" + h.dir() + R"("
gen() { openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout $1.key -out $1.csr -subj "$2" 2>/dev/null; }
sign() { openssl x509 -req -in $1.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out $1.pem -days 2 -extfile $1.ext 2>/dev/null; }
gen uri-nocolon /CN=stranger; printf 'subjectAltName=URI:custodian-1\n' > uri-nocolon.ext; sign uri-nocolon
gen two-cn-first /CN=custodian-1/CN=stranger; printf 'basicConstraints=CA:FALSE\n' > two-cn-first.ext; sign two-cn-first
gen two-cn-last /CN=stranger/CN=custodian-1; printf 'basicConstraints=CA:FALSE\n' > two-cn-last.ext; sign two-cn-last
)";
  WriteAll(h.Path("impostors.sh"), script);
  std::string out;
  ASSERT_EQ(Shell("bash " + h.Path("impostors.sh") + " 2>&1", &out), 0) << out;
}

TEST(DaemonCallerIdentityTest, UriSanWithoutColonAndTwoCnsAreNobody) {
  DaemonHarness h;
  std::string state = h.Path("state");
  h.InitDevState(state);
  h.MakeCerts();
  MakeImpostorCerts(h);
  WriteAll(h.Path("tls.toml"),
           "[hsm]\nmodule = \"" TOKENSIGN_SOFTHSM_MODULE
           "\"\ntoken_label = \"tokensign-dev\"\npin_file = \"" +
               state + "/pin\"\n\n[server]\ntls_cert = \"" + h.Path("server.pem") +
               "\"\ntls_key = \"" + h.Path("server.key") + "\"\nclient_ca = \"" +
               h.Path("ca.pem") + "\"\n\n[audit]\npath = \"" + h.Path("audit.log") +
               "\"\n\n[[callers]]\nid = \"custodian-1\"\nroles = [\"custodian\"]\n"
               "issuers = [\"*\"]\n\n[issuers.dev]\niss = \"https://issuer.example\"\n"
               "audiences = [\"https://api.example\"]\nscopes = [\"read\"]\n"
               "any_actor = true\n");
  DaemonProcess d = h.Start({"--config", h.Path("tls.toml")},
                            {"SOFTHSM2_CONF=" + state + "/softhsm2.conf"});
  ASSERT_GT(d.pid, 0);
  auto list = [&](const std::string& cert) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
    v1::ListKeysRequest req;
    req.set_issuer("dev");
    v1::ListKeysResponse resp;
    return KeyAdmin::NewStub(h.Tls(d, cert))->ListKeys(&ctx, req, &resp);
  };
  // The real custodian-1 (CN, no URI SAN) is the custodian.
  grpc::Status st = list("custodian");
  ASSERT_TRUE(st.ok()) << st.error_message();
  for (const char* impostor : {"uri-nocolon", "two-cn-first", "two-cn-last"}) {
    st = list(impostor);
    EXPECT_EQ(st.error_code(), grpc::StatusCode::PERMISSION_DENIED) << impostor;
    EXPECT_EQ(st.error_message(), "caller: \"\" is not a configured caller") << impostor;
  }
  ASSERT_EQ(h.Stop(d, SIGTERM), 0);
  int denied = 0;
  for (const auto& l : h.AuditLines(h.Path("audit.log"))) {
    if (l.value("kind", "") != "key_admin.ListKeys") continue;
    EXPECT_EQ(l.value("caller", "?"), "") << l.dump();
    EXPECT_EQ(l.value("outcome", ""), "denied") << l.dump();
    ++denied;
  }
  EXPECT_EQ(denied, 3);

  // A configured id that is neither a URI nor a CN is refused at start.
  std::string toml = ReadAll(h.Path("tls.toml"));
  toml.replace(toml.find("id = \"custodian-1\""), 18, "id = \":custodian-1\"");
  WriteAll(h.Path("bad-id.toml"), toml);
  std::string out;
  EXPECT_NE(h.RunToExit({"--config", h.Path("bad-id.toml")}, &out), 0);
  EXPECT_NE(out.find("callers[0].id: contains ':' so it must be a URI"), std::string::npos)
      << out;
}

// A config-mode daemon on plaintext loopback whose PIN comes from `pin_file`.
std::string PinFileToml(DaemonHarness& h, const std::string& pin_file) {
  return "[hsm]\nmodule = \"" TOKENSIGN_SOFTHSM_MODULE
         "\"\ntoken_label = \"tokensign-dev\"\npin_file = \"" +
         pin_file + "\"\n\n[server]\ninsecure = true\n\n[audit]\npath = \"" +
         h.Path("audit.log") +
         "\"\n\n[[callers]]\nid = \"loopback\"\nroles = [\"signer\"]\n"
         "issuers = [\"dev\"]\n\n[issuers.dev]\niss = \"https://issuer.example\"\n"
         "audiences = [\"https://api.example\"]\nscopes = [\"read\"]\n"
         "any_actor = true\n";
}

TEST(DaemonFilesTest, WritablePinFileRefusesStartReadableOneIsWarnedOf) {
  DaemonHarness h;
  std::string state = h.Path("state");
  h.InitDevState(state);
  const std::string pin_file = h.Path("pin");
  WriteAll(pin_file, ReadAll(state + "/pin"));
  WriteAll(h.Path("pin.toml"), PinFileToml(h, pin_file));

  ASSERT_EQ(::chmod(pin_file.c_str(), 0666), 0);
  std::string out;
  EXPECT_NE(h.RunToExit({"--config", h.Path("pin.toml")}, &out), 0);
  EXPECT_NE(out.find("pin_file " + pin_file +
                     ": mode 0666 lets group and others write it; chmod 600 " + pin_file),
            std::string::npos)
      << out;

  // 0644 (a typical secret mount): starts, signs, and says what to change.
  ASSERT_EQ(::chmod(pin_file.c_str(), 0644), 0);
  DaemonProcess d = h.Start({"--config", h.Path("pin.toml")},
                            {"SOFTHSM2_CONF=" + state + "/softhsm2.conf"});
  ASSERT_GT(d.pid, 0);
  v1::SignTokenResponse resp;
  EXPECT_TRUE(Sign(h.Insecure(d), ScenarioRequest(), &resp).ok());
  ASSERT_EQ(h.Stop(d, SIGTERM), 0);
  EXPECT_NE(ReadAll(d.log_path).find("pin_file " + pin_file +
                                     ": mode 0644 lets others read the PIN; chmod 600 " +
                                     pin_file),
            std::string::npos)
      << ReadAll(d.log_path);
}

TEST(DaemonFilesTest, PidFileIsANewFile0644NeverWrittenThroughASymlink) {
  DaemonHarness h;
  std::string state = h.Path("state");
  const std::string pid_file = h.Path("tokensignd.pid");
  WriteAll(h.Path("victim"), "precious\n");
  WriteAll(h.Path("victim-tmp"), "also precious\n");
  // Planted at the pid file and at the temporary name the old writer used.
  ASSERT_EQ(::symlink(h.Path("victim").c_str(), pid_file.c_str()), 0);
  ASSERT_EQ(::symlink(h.Path("victim-tmp").c_str(), (pid_file + ".tmp").c_str()), 0);
  // Mode 0644 whatever the umask (the daemon inherits this one).
  mode_t old_umask = ::umask(077);
  DaemonProcess d = h.Start({"--dev", "--state-dir", state, "--pid-file", pid_file});
  ::umask(old_umask);
  ASSERT_GT(d.pid, 0);
  struct stat st {};
  ASSERT_EQ(::lstat(pid_file.c_str(), &st), 0);
  EXPECT_TRUE(S_ISREG(st.st_mode));
  EXPECT_EQ(st.st_mode & 07777, 0644u);
  EXPECT_EQ(ReadAll(pid_file), std::to_string(d.pid) + "\n");
  EXPECT_EQ(ReadAll(h.Path("victim")), "precious\n");
  EXPECT_EQ(ReadAll(h.Path("victim-tmp")), "also precious\n");
  ASSERT_EQ(h.Stop(d, SIGTERM), 0);
}

}  // namespace
}  // namespace tokensign::testing
