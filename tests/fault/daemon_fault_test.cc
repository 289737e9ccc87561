// tokensignd against a misbehaving HSM: the daemon loads its keys through the
// fault-injecting PKCS#11 module (forwarding to SoftHSM), then the "HSM" goes
// down and comes back while the daemon keeps running. Callers must get
// UNAVAILABLE (retryable) and never a token while it is down, every refusal
// must be audited, /readyz must follow the HSM's state, and the daemon must
// recover on its own (background probe) without a restart or a request.
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <string>
#include <thread>

#include "tests/service/daemon_harness.h"
#include "tests/support/fault_rules.h"
#include "tokensign/v1/tokensign.grpc.pb.h"

namespace tokensign::testing {
namespace {

using v1::TokenSigner;

grpc::Status Sign(const std::shared_ptr<grpc::Channel>& ch,
                  const v1::SignTokenRequest& req, v1::SignTokenResponse* resp) {
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
  return TokenSigner::NewStub(ch)->SignToken(&ctx, req, resp);
}

void SetFaults(DaemonHarness& h, const std::string& rules) {
  WriteFaultRules(h.Path("faults"), rules);
}

// Polls /readyz until its status code is `want` (generous bound: this is a
// wait for a state change, not a timing assertion).
bool WaitReady(DaemonHarness& h, const DaemonProcess& d, int want) {
  for (int i = 0; i < 600; ++i) {
    int code = 0;
    h.HttpGet(d, "/readyz", &code);
    if (code == want) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return false;
}

TEST(DaemonFaultTest, HsmOutageIsRetryableAuditedAndRecoveredWithoutRestart) {
  DaemonHarness h;
  const std::string state = h.Path("state");
  h.InitDevState(state);  // token, PIN file and the dev issuer's key
  SetFaults(h, "# no faults\n");
  WriteAll(h.Path("t.toml"),
           "[hsm]\nmodule = \"" TOKENSIGN_FAULT_MODULE "\"\n"
           "token_label = \"tokensign-dev\"\npin_file = \"" + state + "/pin\"\n\n"
           "[server]\ninsecure = true\n\n"
           "[audit]\npath = \"" + h.Path("audit.log") + "\"\n\n"
           "[[callers]]\nid = \"loopback\"\nroles = [\"signer\"]\nissuers = [\"dev\"]\n\n"
           "[issuers.dev]\niss = \"https://issuer.example\"\n"
           "audiences = [\"https://api.example\"]\nscopes = [\"read\", \"write\"]\n"
           "any_actor = true\n");
  DaemonProcess d = h.Start(
      {"--config", h.Path("t.toml")},
      {"SOFTHSM2_CONF=" + state + "/softhsm2.conf",
       "TOKENSIGN_FAULT_TARGET=" TOKENSIGN_SOFTHSM_MODULE,
       "TOKENSIGN_FAULT_CONTROL=" + h.Path("faults")});
  ASSERT_GT(d.pid, 0);
  auto ch = h.Insecure(d);

  v1::SignTokenResponse before;
  grpc::Status st = Sign(ch, ScenarioRequest(), &before);
  ASSERT_TRUE(st.ok()) << st.error_message();
  ASSERT_TRUE(WaitReady(h, d, 200));

  // The HSM goes away (every call but C_Initialize/C_Finalize/C_GetInfo fails).
  SetFaults(h, "* CKR_DEVICE_REMOVED always\n");
  for (int i = 0; i < 5; ++i) {
    v1::SignTokenRequest req = ScenarioRequest();
    req.set_subject("during-outage");
    v1::SignTokenResponse resp;
    st = Sign(ch, req, &resp);
    EXPECT_EQ(st.error_code(), grpc::StatusCode::UNAVAILABLE) << st.error_message();
    EXPECT_NE(st.error_message().find("CKR_DEVICE_REMOVED"), std::string::npos)
        << st.error_message();
    EXPECT_TRUE(resp.token().empty());
  }
  EXPECT_TRUE(WaitReady(h, d, 503));
  // The failing PKCS#11 calls are counted by function.
  const std::string metrics = h.HttpGet(d, "/metrics");
  EXPECT_NE(metrics.find("tokensign_hsm_errors_total{function=\"C_"),
            std::string::npos)
      << metrics;

  // Back: /readyz recovers with no request sent (the background probe), then
  // signing works again on the same key, same process.
  SetFaults(h, "# HSM back\n");
  EXPECT_TRUE(WaitReady(h, d, 200));
  v1::SignTokenResponse after;
  st = Sign(ch, ScenarioRequest(), &after);
  ASSERT_TRUE(st.ok()) << st.error_message();
  EXPECT_EQ(after.kid(), before.kid());
  ASSERT_EQ(h.Stop(d, SIGTERM), 0);

  int refused = 0, signed_ok = 0;
  for (const auto& l : h.AuditLines(h.Path("audit.log"))) {
    if (l.value("outcome", "") == "signed") ++signed_ok;
    if (l.value("sub", "") != "during-outage") continue;
    EXPECT_EQ(l.value("outcome", ""), "denied") << l.dump();
    EXPECT_EQ(l.value("token_sha256", "x"), "") << l.dump();
    EXPECT_NE(l.value("reason", "").find("CKR_DEVICE_REMOVED"), std::string::npos)
        << l.dump();
    ++refused;
  }
  EXPECT_EQ(refused, 5);
  EXPECT_EQ(signed_ok, 2);
}

}  // namespace
}  // namespace tokensign::testing
