// End-to-end tests of transaction tokens (required claims, replacement) and
// revocation through a Token Status List checked by an outside Python checker
// written from the draft (tests/service/status_list_check.py: PyJWT + zlib),
// through the real tokensignd, and the CLI's exchange and status-list
// commands. Helpers: daemon_exchange_support.h.
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

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
    // Counted like every other refusal, by the field it names.
    EXPECT_NE(s.h.HttpGet(s.d, "/metrics")
                  .find("tokensign_denied_total{issuer=\"as\",reason_field="
                        "\"caller\"} 1\n"),
              std::string::npos);
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

  std::string out;
  int rc = s.CheckStatuses(signed_list.token(),
                           {user.token(), agent.token(), sub_agent.token(),
                            txn.token(), unrelated.token()},
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

  int rc = s.CheckStatuses(list, {user, agent, sub_agent, txn}, &out);
  EXPECT_EQ(rc, 0) << out;
  EXPECT_EQ(out, "0 INVALID\n1 INVALID\n2 INVALID\n3 INVALID\n");
  EXPECT_EQ(s.h.Stop(s.d, SIGTERM), 0);
}

}  // namespace
}  // namespace tokensign::testing
