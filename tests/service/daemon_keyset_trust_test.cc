// The real tokensignd against issue 11's items 1 and 2, as they were seen:
// objects planted on its token through PKCS#11 without the PIN, and two
// replicas where the stale one destroys the key the other just activated.
#include <gtest/gtest.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <signal.h>
#include <stdlib.h>

#include <chrono>
#include <string>
#include <thread>

#include "absl/strings/escaping.h"
#include "crypto/spki.h"
#include "crypto/ssl_ptr.h"
#include "nlohmann/json.hpp"
#include "signer/token/jwk.h"
#include "tests/service/daemon_harness.h"
#include "tests/support/planter.h"
#include "tokensign/v1/tokensign.grpc.pb.h"

namespace tokensign::testing {
namespace {

using v1::KeyAdmin;
using v1::TokenSigner;

std::string Config(DaemonHarness& h, const std::string& state,
                   const std::string& name, int refresh_seconds) {
  return "[hsm]\nmodule = \"" TOKENSIGN_SOFTHSM_MODULE
         "\"\ntoken_label = \"tokensign-dev\"\npin_file = \"" +
         state + "/pin\"\n\n[server]\ninsecure = true\nkeyset_refresh_seconds = " +
         std::to_string(refresh_seconds) +
         "\njwks_max_age = 0\nclock_skew_seconds = 0\n\n[audit]\npath = \"" +
         h.Path(name + "-audit.log") +
         // Replicas on one HSM: each its own audit log and anchor.
         "\"\ninstance = \"replica-" + name +
         "\"\n\n[[callers]]\nid = \"loopback\"\nroles = [\"signer\", "
         "\"custodian\"]\nissuers = [\"dev\"]\n\n[issuers.dev]\niss = "
         "\"https://issuer.example\"\naudiences = [\"https://api.example\"]\n"
         "scopes = [\"read\", \"write\"]\nany_actor = true\n";
}

std::string SignKid(const std::shared_ptr<grpc::Channel>& ch,
                    grpc::Status* status = nullptr) {
  grpc::ClientContext ctx;
  v1::SignTokenResponse resp;
  grpc::Status st =
      TokenSigner::NewStub(ch)->SignToken(&ctx, ScenarioRequest(), &resp);
  if (status != nullptr) *status = st;
  EXPECT_TRUE(st.ok()) << st.error_message();
  return resp.kid();
}

std::string JwksText(const std::shared_ptr<grpc::Channel>& ch) {
  grpc::ClientContext ctx;
  v1::GetJwksRequest req;
  req.set_issuer("dev");
  v1::GetJwksResponse resp;
  grpc::Status st = TokenSigner::NewStub(ch)->GetJwks(&ctx, req, &resp);
  EXPECT_TRUE(st.ok()) << st.error_message();
  return resp.jwks_json();
}

int CountKind(DaemonHarness& h, const std::string& audit, const std::string& kind) {
  int n = 0;
  for (const nlohmann::json& line : h.AuditLines(audit)) {
    if (line.value("kind", "") == kind) ++n;
  }
  return n;
}

// Bounded wait for a state change (not a timing assertion).
bool WaitFor(const std::function<bool()>& done) {
  for (int i = 0; i < 300; ++i) {
    if (done()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return done();
}

TEST(DaemonKeysetTrustTest, KeyAndRecordPlantedWithoutThePinAreIgnoredAndAudited) {
  DaemonHarness h;
  const std::string state = h.Path("state");
  h.InitDevState(state);
  WriteAll(h.Path("a.toml"), Config(h, state, "a", 1));
  const std::string conf = state + "/softhsm2.conf";
  DaemonProcess d =
      h.Start({"--config", h.Path("a.toml")}, {"SOFTHSM2_CONF=" + conf});
  ASSERT_GT(d.pid, 0);
  const std::string own_kid = SignKid(h.Insecure(d));
  ASSERT_FALSE(own_kid.empty());

  // The attacker: PKCS#11 access to the token, no PIN.
  ASSERT_EQ(setenv("SOFTHSM2_CONF", conf.c_str(), 1), 0);
  auto planter = Planter::Open(TOKENSIGN_SOFTHSM_MODULE, "tokensign-dev");
  ASSERT_TRUE(planter.ok()) << planter.status();
  crypto::UniquePkey evil(EVP_EC_gen("P-256"));
  std::string id(16, '\0');
  RAND_bytes(reinterpret_cast<unsigned char*>(id.data()), 16);
  const std::string evil_kid = *token::JwkThumbprint(evil.get());
  const std::string spki = *crypto::SpkiDer(evil.get());
  ASSERT_TRUE((*planter)->PlantEcKey(id, "tokensign:dev:1", evil.get()).ok());
  nlohmann::json record = {
      {"issuer", "dev"},
      {"generation", 1000},
      {"writer", "0000000000000000"},
      {"keys",
       {{{"id", absl::BytesToHexString(id)},
         {"kid", evil_kid},
         {"alg", "ES256"},
         {"spki", absl::WebSafeBase64Escape(spki)},
         {"state", "active"},
         {"created_at", 1},
         {"activated_at", 1},
         {"retired_at", 0}}}}};
  ASSERT_TRUE((*planter)->PlantData("keyset/dev", record.dump()).ok());

  const std::string audit = h.Path("a-audit.log");
  ASSERT_TRUE(WaitFor([&] { return CountKind(h, audit, "keyset.rejected") > 0; }))
      << ReadAll(d.log_path);
  // Several more refreshes: still its own key, never the planted one.
  std::this_thread::sleep_for(std::chrono::seconds(3));
  EXPECT_EQ(SignKid(h.Insecure(d)), own_kid);
  const std::string jwks = JwksText(h.Insecure(d));
  EXPECT_EQ(jwks.find(evil_kid), std::string::npos) << jwks;
  EXPECT_NE(jwks.find(own_kid), std::string::npos) << jwks;
  int code = 0;
  h.HttpGet(d, "/readyz", &code);
  EXPECT_EQ(code, 200);
  // Audited once per change, not on every refresh.
  EXPECT_EQ(CountKind(h, audit, "keyset.rejected"), 1);
  for (const nlohmann::json& line : h.AuditLines(audit)) {
    if (line.value("kind", "") != "keyset.rejected") continue;
    EXPECT_EQ(line.value("caller", ""), "tokensignd");
    EXPECT_NE(line.value("reason", "").find("without the PIN"), std::string::npos)
        << line.dump();
  }
  const std::string metrics = h.HttpGet(d, "/metrics");
  EXPECT_NE(metrics.find("tokensign_keyset_events_total{event=\"rejected\",issuer=\"dev\"} 1"),
            std::string::npos)
      << metrics;
  EXPECT_EQ(h.Stop(d, SIGTERM), 0);
}

v1::KeyInfo Admin(const std::shared_ptr<grpc::Channel>& ch, const std::string& op,
                  const std::string& kid, grpc::Status* status) {
  auto stub = KeyAdmin::NewStub(ch);
  grpc::ClientContext ctx;
  if (op == "create") {
    v1::CreateKeyRequest req;
    req.set_issuer("dev");
    req.set_alg("ES256");
    v1::CreateKeyResponse resp;
    *status = stub->CreateKey(&ctx, req, &resp);
    return resp.key();
  }
  if (op == "activate") {
    v1::ActivateKeyRequest req;
    req.set_issuer("dev");
    req.set_kid(kid);
    req.set_force(true);  // within the (1 s) publish lead
    req.set_reason("test: replicas race");
    v1::ActivateKeyResponse resp;
    *status = stub->ActivateKey(&ctx, req, &resp);
    return resp.key();
  }
  v1::DestroyKeyRequest req;
  req.set_issuer("dev");
  req.set_kid(kid);
  v1::DestroyKeyResponse resp;
  *status = stub->DestroyKey(&ctx, req, &resp);
  return resp.key();
}

// Replica B has not refreshed since A activated k2; B's DestroyKey(k2) must
// not destroy it (it used to, then answer ABORTED, and every replica then
// refused to start).
TEST(DaemonKeysetTrustTest, StaleReplicaDoesNotDestroyTheKeyAnotherActivated) {
  DaemonHarness h;
  const std::string state = h.Path("state");
  h.InitDevState(state);
  WriteAll(h.Path("a.toml"), Config(h, state, "a", 1));
  WriteAll(h.Path("b.toml"), Config(h, state, "b", 0));  // never refreshes
  const std::vector<std::string> env = {"SOFTHSM2_CONF=" + state + "/softhsm2.conf"};
  DaemonProcess a = h.Start({"--config", h.Path("a.toml")}, env);
  DaemonProcess b = h.Start({"--config", h.Path("b.toml")}, env);
  ASSERT_GT(a.pid, 0);
  ASSERT_GT(b.pid, 0);
  grpc::Status st;
  v1::KeyInfo k2 = Admin(h.Insecure(a), "create", "", &st);
  ASSERT_TRUE(st.ok()) << st.error_message();
  h.Signal(b, SIGHUP);  // B now knows k2 as pending
  ASSERT_TRUE(WaitFor([&] {
    return ReadAll(b.log_path).find("keysets reloaded") != std::string::npos;
  })) << ReadAll(b.log_path);
  Admin(h.Insecure(a), "activate", k2.kid(), &st);
  ASSERT_TRUE(st.ok()) << st.error_message();

  Admin(h.Insecure(b), "destroy", k2.kid(), &st);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::ABORTED) << st.error_message();
  // The key is still there: A signs with it, and B (reloaded) does too.
  EXPECT_EQ(SignKid(h.Insecure(a)), k2.kid());
  EXPECT_EQ(SignKid(h.Insecure(b)), k2.kid());
  bool denied = false;
  for (const nlohmann::json& line : h.AuditLines(h.Path("b-audit.log"))) {
    if (line.value("kind", "") == "key_admin.DestroyKey" &&
        line.value("outcome", "") == "denied")
      denied = true;
  }
  EXPECT_TRUE(denied);
  EXPECT_EQ(h.Stop(a, SIGTERM), 0);
  EXPECT_EQ(h.Stop(b, SIGTERM), 0);
  // Both still start and sign.
  DaemonProcess again = h.Start({"--config", h.Path("b.toml")}, env);
  ASSERT_GT(again.pid, 0);
  EXPECT_EQ(SignKid(h.Insecure(again)), k2.kid());
  EXPECT_EQ(h.Stop(again, SIGTERM), 0);
}

}  // namespace
}  // namespace tokensign::testing
