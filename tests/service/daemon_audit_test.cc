// End-to-end (issue 12): the real tokensignd signs audit checkpoints with an
// audit key it generated in the HSM and anchors them there; tokensignctl
// audit verify/keys/acknowledge as an auditor and a custodian use them. A
// truncated log, or an older copy of it, is refused at start until a
// custodian acknowledges it; kill -9 is not mistaken for tampering.
#include <gtest/gtest.h>
#include <signal.h>

#include <chrono>
#include <string>
#include <vector>

#include "nlohmann/json.hpp"
#include "tests/service/daemon_harness.h"

#ifndef TOKENSIGNCTL_PATH
#error "TOKENSIGNCTL_PATH must name the built tokensignctl"
#endif

namespace tokensign::testing {
namespace {

// tokensignctl against the plaintext dev daemon `d`; returns the exit code.
int Ctl(const DaemonProcess& d, const std::string& args, std::string* out) {
  out->clear();
  return Shell(std::string(TOKENSIGNCTL_PATH) + " --server 127.0.0.1:" +
                   std::to_string(d.grpc_port) + " --insecure " + args +
                   " 2>&1",
               out);
}

// tokensignctl on files only.
int CtlFiles(const std::string& args, std::string* out) {
  out->clear();
  return Shell(std::string(TOKENSIGNCTL_PATH) + " " + args + " 2>&1", out);
}

grpc::Status Sign(DaemonHarness& h, const DaemonProcess& d) {
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
  v1::SignTokenResponse resp;
  return v1::TokenSigner::NewStub(h.Insecure(d))
      ->SignToken(&ctx, ScenarioRequest(), &resp);
}

class DaemonAuditTest : public ::testing::Test {
 protected:
  void SetUp() override {
    state_ = h_.Path("state");
    log_ = state_ + "/audit.log";
  }
  DaemonProcess Start() { return h_.Start({"--dev", "--state-dir", state_}); }
  void SignN(const DaemonProcess& d, int n) {
    for (int i = 0; i < n; ++i) {
      grpc::Status st = Sign(h_, d);
      ASSERT_TRUE(st.ok()) << st.error_message();
    }
  }

  DaemonHarness h_;
  std::string state_;
  std::string log_;
  std::string out_;
};

TEST_F(DaemonAuditTest, CleanStopVerifiesIntactWithTheDaemonsAuditKeys) {
  DaemonProcess d = Start();
  SignN(d, 3);
  ASSERT_EQ(Ctl(d, "audit keys", &out_), 0) << out_;
  const std::string keys = h_.Path("audit-keys.json");
  WriteAll(keys, out_);
  const nlohmann::json jwks = nlohmann::json::parse(out_);
  ASSERT_EQ(jwks["keys"].size(), 1u);
  const std::string kid = jwks["keys"][0]["kid"].get<std::string>();
  EXPECT_EQ(jwks["keys"][0]["alg"], "ES256");
  // The HTTP listener publishes the same keys.
  int code = 0;
  nlohmann::json http_jwks =
      nlohmann::json::parse(h_.HttpGet(d, "/audit/jwks.json", &code));
  EXPECT_EQ(code, 200);
  EXPECT_EQ(http_jwks["keys"][0]["kid"], kid);
  // At least the start checkpoint is signed and anchored, with no errors.
  const std::string metrics = h_.HttpGet(d, "/metrics", &code);
  auto series = [&](const std::string& name) {
    size_t at = metrics.find("\n" + name + " ");
    return at == std::string::npos
               ? -1.0
               : std::stod(metrics.substr(at + name.size() + 2));
  };
  EXPECT_GE(series("tokensign_audit_checkpoints_total"), 1) << metrics;
  EXPECT_GE(series("tokensign_audit_anchor_writes_total"), 1) << metrics;
  EXPECT_EQ(series("tokensign_audit_checkpoint_errors_total"), 0) << metrics;
  // While it runs, the newest checkpoint is the HSM's (or its anchor write is
  // in flight); the records since then are reported unanchored (2), or none.
  int rc = Ctl(d, "audit verify --server 127.0.0.1:" +
                      std::to_string(d.grpc_port) + " " + log_,
               &out_);
  EXPECT_TRUE(rc == 0 || rc == 2) << out_;
  EXPECT_NE(out_.find("server: the newest checkpoint"), std::string::npos)
      << out_;
  ASSERT_EQ(h_.Stop(d, SIGTERM), 0);
  // After a clean stop everything is anchored: intact, with the keys file,
  // with the pinned thumbprint, and against the HSM.
  EXPECT_EQ(CtlFiles("audit verify --keys " + keys + " " + log_, &out_), 0)
      << out_;
  EXPECT_NE(out_.find("written when the daemon stopped cleanly"),
            std::string::npos)
      << out_;
  EXPECT_EQ(CtlFiles("audit verify --pin " + kid + " " + log_, &out_), 0)
      << out_;
  EXPECT_EQ(CtlFiles("audit verify --pin not-the-key " + log_, &out_), 3)
      << out_;
  // The last record edited after the stop: broken, naming the line.
  std::string all = ReadAll(log_);
  size_t sub = all.rfind("\"sub\":\"") + 7;
  all[sub] = all[sub] == 'x' ? 'y' : 'x';
  WriteAll(log_, all);
  EXPECT_EQ(CtlFiles("audit verify --keys " + keys + " " + log_, &out_), 3)
      << out_;
  EXPECT_NE(out_.find("BROKEN at " + log_ + " line"), std::string::npos)
      << out_;
}

TEST_F(DaemonAuditTest, TruncatedLogIsRefusedUntilACustodianAcknowledges) {
  DaemonProcess d = Start();
  SignN(d, 2);
  ASSERT_EQ(h_.Stop(d, SIGTERM), 0);
  WriteAll(log_, "");
  d = Start();  // runs, so the custodian can acknowledge
  grpc::Status st = Sign(h_, d);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_NE(st.error_message().find("missing or empty"), std::string::npos)
      << st.error_message();
  int code = 0;
  std::string ready = h_.HttpGet(d, "/readyz", &code);
  EXPECT_EQ(code, 503);
  EXPECT_NE(ready.find("acknowledge"), std::string::npos) << ready;
  EXPECT_EQ(Ctl(d, "audit acknowledge --reason 'disk replaced'", &out_), 0)
      << out_;
  EXPECT_NE(out_.find("new audit log segment"), std::string::npos) << out_;
  st = Sign(h_, d);
  EXPECT_TRUE(st.ok()) << st.error_message();
  h_.HttpGet(d, "/readyz", &code);
  EXPECT_EQ(code, 200);
  // Acknowledging a log that is not refused is refused.
  EXPECT_EQ(Ctl(d, "audit acknowledge --reason again", &out_), 1) << out_;
  EXPECT_NE(out_.find("FAILED_PRECONDITION"), std::string::npos) << out_;
  ASSERT_EQ(h_.Stop(d, SIGTERM), 0);
  std::vector<nlohmann::json> lines = h_.AuditLines(log_);
  ASSERT_FALSE(lines.empty());
  EXPECT_EQ(lines[0]["acknowledged"]["by"], "dev");
  EXPECT_EQ(lines[0]["acknowledged"]["reason"], "disk replaced");
  EXPECT_TRUE(lines[0].contains("follows"));
  EXPECT_EQ(CtlFiles("audit verify " + log_, &out_), 0) << out_;
}

TEST_F(DaemonAuditTest, OlderCopyIsRefusedAndVerifyServerSaysSo) {
  DaemonProcess d = Start();
  SignN(d, 2);
  ASSERT_EQ(h_.Stop(d, SIGTERM), 0);
  const std::string older = ReadAll(log_);
  d = Start();
  SignN(d, 2);
  ASSERT_EQ(h_.Stop(d, SIGTERM), 0);
  WriteAll(log_, older);
  // On its own the older copy is consistent (and was closed cleanly)...
  EXPECT_EQ(CtlFiles("audit verify " + log_, &out_), 0) << out_;
  d = Start();
  grpc::Status st = Sign(h_, d);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_NE(st.error_message().find("older than the HSM's"), std::string::npos)
      << st.error_message();
  // ...but the HSM holds a newer checkpoint.
  EXPECT_EQ(Ctl(d, "audit verify --server 127.0.0.1:" +
                       std::to_string(d.grpc_port) + " " + log_,
                &out_),
            3)
      << out_;
  EXPECT_NE(out_.find("truncated, or replaced by an older copy"),
            std::string::npos)
      << out_;
  EXPECT_NE(out_.find("the daemon refuses its log"), std::string::npos)
      << out_;
}

TEST_F(DaemonAuditTest, KillNineRestartsWithoutAnOperator) {
  DaemonProcess d = Start();
  SignN(d, 5);
  h_.Stop(d, SIGKILL);
  d = Start();
  int code = 0;
  h_.HttpGet(d, "/readyz", &code);
  EXPECT_EQ(code, 200);
  SignN(d, 1);
  ASSERT_EQ(h_.Stop(d, SIGTERM), 0);
  EXPECT_EQ(CtlFiles("audit verify " + log_, &out_), 0) << out_;
}

// An old log's anchor stays for verifying shipped copies until a custodian
// retires it: listed (archived) beside the live one, retiring the live one is
// refused, an unknown one is not found; the retirement is audited before the
// record goes, and verify --server then reports the shipped copy ABSENT
// (exit 2: its checkpoints verify, but the HSM no longer vouches that it is
// complete) instead of intact.
TEST_F(DaemonAuditTest, CustodianRetiresAnOldLogsAnchorNeverTheLiveOne) {
  DaemonProcess d = Start();
  SignN(d, 2);
  ASSERT_EQ(h_.Stop(d, SIGTERM), 0);
  const std::string shipped = h_.Path("shipped.log");
  WriteAll(shipped, ReadAll(log_));
  const std::string old_id = h_.AuditLines(log_)[0]["log_id"];
  WriteAll(log_, "");
  d = Start();
  ASSERT_EQ(Ctl(d, "audit acknowledge --reason 'disk replaced'", &out_), 0)
      << out_;
  const std::string live_id = h_.AuditLines(log_)[0]["log_id"];
  ASSERT_NE(live_id, old_id);
  const std::string server =
      "--server 127.0.0.1:" + std::to_string(d.grpc_port) + " ";

  // Listed: the live log's anchor first, then the archived one.
  ASSERT_EQ(Ctl(d, "audit anchors --json", &out_), 0) << out_;
  nlohmann::json listed = nlohmann::json::parse(out_);
  EXPECT_EQ(listed["instance"], "dev");
  ASSERT_EQ(listed["anchors"].size(), 2u) << out_;
  EXPECT_EQ(listed["anchors"][0]["log_id"], live_id);
  EXPECT_EQ(listed["anchors"][0]["live"], true);
  EXPECT_EQ(listed["anchors"][1]["log_id"], old_id);
  EXPECT_EQ(listed["anchors"][1]["live"], false);
  EXPECT_EQ(listed["anchors"][1]["final"], true);  // stopped cleanly
  EXPECT_EQ(listed["anchors"][1]["record"],
            "tokensign-audit-anchor:dev:" + old_id);
  EXPECT_TRUE(listed["anchors"][1].contains("checkpoint_time")) << out_;
  ASSERT_EQ(Ctl(d, "audit anchors", &out_), 0) << out_;
  EXPECT_NE(out_.find(old_id + "  archived"), std::string::npos) << out_;
  EXPECT_NE(out_.find(live_id + "  live"), std::string::npos) << out_;
  // The shipped copy is the whole old log, as far as the HSM knows.
  EXPECT_EQ(Ctl(d, "audit verify " + server + shipped, &out_), 0) << out_;
  EXPECT_NE(out_.find("is the one the HSM holds"), std::string::npos) << out_;

  // The live log's anchor is never retired; an unknown one is not found; a
  // reason is required.
  EXPECT_EQ(Ctl(d, "audit retire-anchor --instance dev --log-id " + live_id +
                       " --reason 'not needed'",
                &out_),
            2)
      << out_;
  EXPECT_NE(out_.find("FAILED_PRECONDITION"), std::string::npos) << out_;
  EXPECT_NE(out_.find("is the live log of instance \"dev\""),
            std::string::npos)
      << out_;
  const std::string unknown(32, 'a');
  EXPECT_EQ(Ctl(d, "audit retire-anchor --instance dev --log-id " + unknown +
                       " --reason 'not needed'",
                &out_),
            4)
      << out_;
  EXPECT_NE(out_.find("NOT_FOUND"), std::string::npos) << out_;
  EXPECT_EQ(Ctl(d, "audit retire-anchor --instance dev --log-id " + old_id,
                &out_),
            1)
      << out_;

  // Retired: gone from the list and from the HSM.
  ASSERT_EQ(Ctl(d, "audit retire-anchor --instance dev --log-id " + old_id +
                       " --reason 'shipped copies past retention'",
                &out_),
            0)
      << out_;
  EXPECT_NE(out_.find("retired the anchor of log " + old_id), std::string::npos)
      << out_;
  EXPECT_EQ(Ctl(d, "audit retire-anchor --instance dev --log-id " + old_id +
                       " --reason again",
                &out_),
            4)
      << out_;
  ASSERT_EQ(Ctl(d, "audit anchors --json", &out_), 0) << out_;
  listed = nlohmann::json::parse(out_);
  ASSERT_EQ(listed["anchors"].size(), 1u) << out_;
  EXPECT_EQ(listed["anchors"][0]["log_id"], live_id);
  // The shipped copy still verifies on its own, but the HSM no longer vouches
  // for it.
  EXPECT_EQ(Ctl(d, "audit verify " + server + shipped, &out_), 2) << out_;
  EXPECT_NE(out_.find("ABSENT: the HSM holds no anchor for log " + old_id),
            std::string::npos)
      << out_;
  // The live log is untouched: signs, stops, restarts without an operator.
  SignN(d, 1);
  ASSERT_EQ(h_.Stop(d, SIGTERM), 0);
  d = Start();
  int code = 0;
  h_.HttpGet(d, "/readyz", &code);
  EXPECT_EQ(code, 200);
  ASSERT_EQ(h_.Stop(d, SIGTERM), 0);
  EXPECT_EQ(CtlFiles("audit verify " + log_, &out_), 0) << out_;

  // On record: who retired which log and why, before the record went; the
  // refusals as denied.
  std::vector<std::string> outcomes;
  for (const nlohmann::json& l : h_.AuditLines(log_)) {
    if (l.value("kind", "") != "audit_admin.RetireAuditAnchor") continue;
    EXPECT_EQ(l["caller"], "dev");
    const std::string reason = l.value("reason", "");
    const std::string outcome = l["outcome"];
    outcomes.push_back(outcome);
    if (outcome == "requested") {
      EXPECT_NE(reason.find("tokensign-audit-anchor:dev:" + old_id),
                std::string::npos)
          << reason;
      EXPECT_NE(reason.find("shipped copies past retention"),
                std::string::npos)
          << reason;
    }
  }
  EXPECT_EQ(outcomes, (std::vector<std::string>{"denied", "denied", "requested",
                                                "done", "denied"}));
}

// Roles: anchors for auditors, acknowledgement for custodians, each for all
// issuers.
TEST(DaemonAuditRolesTest, AuditorReadsAnchorsCustodianAcknowledges) {
  DaemonHarness h;
  std::string state = h.Path("state");
  h.InitDevState(state);
  h.MakeCerts();
  WriteAll(h.Path("tls.toml"),
           "[hsm]\nmodule = \"" TOKENSIGN_SOFTHSM_MODULE
           "\"\ntoken_label = \"tokensign-dev\"\npin_file = \"" +
               state + "/pin\"\n\n[server]\ntls_cert = \"" +
               h.Path("server.pem") + "\"\ntls_key = \"" + h.Path("server.key") +
               "\"\nclient_ca = \"" + h.Path("ca.pem") +
               "\"\n\n[audit]\npath = \"" + h.Path("audit.log") +
               "\"\ninstance = \"replica-a\"\n\n[[callers]]\nid = "
               "\"custodian-1\"\nroles = [\"custodian\"]\n"
               "issuers = [\"*\"]\n\n[[callers]]\nid = \"spiffe://test/signer\"\n"
               "roles = [\"signer\", \"auditor\"]\nissuers = [\"*\"]\n\n"
               "[issuers.dev]\niss = \"https://issuer.example\"\n"
               "audiences = [\"https://api.example\"]\nscopes = [\"read\"]\n"
               "any_actor = true\n");
  DaemonProcess d = h.Start({"--config", h.Path("tls.toml")},
                            {"SOFTHSM2_CONF=" + state + "/softhsm2.conf"});
  ASSERT_GT(d.pid, 0);
  auto anchor = [&](const std::string& cert, v1::GetAuditAnchorResponse* resp) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() +
                     std::chrono::seconds(30));
    return v1::AuditAdmin::NewStub(h.Tls(d, cert))
        ->GetAuditAnchor(&ctx, v1::GetAuditAnchorRequest(), resp);
  };
  auto ack = [&](const std::string& cert) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() +
                     std::chrono::seconds(30));
    v1::AcknowledgeAuditLossRequest req;
    req.set_reason("test");
    v1::AcknowledgeAuditLossResponse resp;
    return v1::AuditAdmin::NewStub(h.Tls(d, cert))
        ->AcknowledgeAuditLoss(&ctx, req, &resp);
  };
  v1::GetAuditAnchorResponse resp;
  grpc::Status st = anchor("signer", &resp);
  ASSERT_TRUE(st.ok()) << st.error_message();
  EXPECT_TRUE(resp.found());
  EXPECT_EQ(resp.instance(), "replica-a");
  EXPECT_EQ(resp.checkpoint_seq(), 1);  // the start checkpoint after genesis
  EXPECT_FALSE(resp.checkpoint_jws().empty());
  EXPECT_NE(resp.jwks_json().find("\"kid\""), std::string::npos);
  st = anchor("custodian", &resp);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_NE(st.error_message().find("lacks the auditor role"),
            std::string::npos)
      << st.error_message();
  st = ack("signer");
  EXPECT_EQ(st.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  st = ack("custodian");
  EXPECT_EQ(st.error_code(), grpc::StatusCode::FAILED_PRECONDITION)
      << st.error_message();
  // Listing anchors: auditors and custodians; retiring one: custodians only,
  // and never the live log's.
  auto list = [&](const std::string& cert, v1::ListAuditAnchorsResponse* r) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() +
                     std::chrono::seconds(30));
    return v1::AuditAdmin::NewStub(h.Tls(d, cert))
        ->ListAuditAnchors(&ctx, v1::ListAuditAnchorsRequest(), r);
  };
  auto retire = [&](const std::string& cert, const std::string& log_id) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() +
                     std::chrono::seconds(30));
    v1::RetireAuditAnchorRequest req;
    req.set_log_id(log_id);
    req.set_reason("test");
    v1::RetireAuditAnchorResponse r;
    return v1::AuditAdmin::NewStub(h.Tls(d, cert))
        ->RetireAuditAnchor(&ctx, req, &r);
  };
  v1::ListAuditAnchorsResponse anchors;
  st = list("signer", &anchors);
  ASSERT_TRUE(st.ok()) << st.error_message();
  EXPECT_EQ(anchors.instance(), "replica-a");
  ASSERT_EQ(anchors.anchors_size(), 1);
  EXPECT_TRUE(anchors.anchors(0).live());
  EXPECT_EQ(anchors.anchors(0).log_id(), resp.log_id());
  st = list("custodian", &anchors);
  EXPECT_TRUE(st.ok()) << st.error_message();
  st = retire("signer", resp.log_id());
  EXPECT_EQ(st.error_code(), grpc::StatusCode::PERMISSION_DENIED)
      << st.error_message();
  EXPECT_NE(st.error_message().find("custodian"), std::string::npos)
      << st.error_message();
  st = retire("custodian", resp.log_id());
  EXPECT_EQ(st.error_code(), grpc::StatusCode::FAILED_PRECONDITION)
      << st.error_message();
  ASSERT_EQ(h.Stop(d, SIGTERM), 0);
  // Both refusals are on record, with who asked.
  std::vector<std::string> callers;
  for (const nlohmann::json& l : h.AuditLines(h.Path("audit.log"))) {
    if (l.value("kind", "") != "audit_admin.RetireAuditAnchor") continue;
    EXPECT_EQ(l["outcome"], "denied");
    callers.push_back(l["caller"]);
  }
  EXPECT_EQ(callers, (std::vector<std::string>{"spiffe://test/signer",
                                               "custodian-1"}));
}

}  // namespace
}  // namespace tokensign::testing
