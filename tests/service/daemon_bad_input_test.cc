// Bad-input matrix against the real tokensignd (issue 16), as a table: empty
// and oversized strings, invalid UTF-8, control and format characters,
// 10k-element repeated fields, deep Struct nesting, unknown issuers, negative
// and huge TTLs, duplicate audiences and scopes, oversized batches and
// unknown enum values, sent over mTLS to SignToken, SignTokens, ExchangeToken
// and KeyAdmin as raw bytes (what any client can send; the rows are in
// bad_input_cases.h). Each case must be
// answered with its documented code and a message that starts with the field
// at fault ("<field>: ...") and does not echo an oversized value whole; the
// answers are counted in tokensign_requests_total; every refusal is audited
// as denied with the caller's mTLS identity; and the daemon keeps serving: a
// valid SignToken succeeds after the matrix.

#include <grpcpp/generic/generic_stub.h>
#include <gtest/gtest.h>
#include <signal.h>

#include <cstdio>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "tests/service/bad_input_cases.h"
#include "tests/service/daemon_harness.h"
#include "tests/service/raw_call.h"

namespace tokensign::testing {
namespace {

// mTLS config on the dev token in `state`: issuer `dev` with transaction
// tokens, any actor and any non-reserved extra claim, so each case reaches
// the rule it is about.
std::string Toml(DaemonHarness& h, const std::string& state) {
  return "[hsm]\nmodule = \"" TOKENSIGN_SOFTHSM_MODULE
         "\"\ntoken_label = \"tokensign-dev\"\npin_file = \"" +
         state + "/pin\"\n\n[server]\ntls_cert = \"" + h.Path("server.pem") +
         "\"\ntls_key = \"" + h.Path("server.key") + "\"\nclient_ca = \"" +
         h.Path("ca.pem") + "\"\n\n[audit]\npath = \"" + h.Path("audit.log") +
         "\"\n\n[[callers]]\nid = \"spiffe://test/signer\"\nroles = "
         "[\"signer\"]\nissuers = [\"dev\"]\n"
         "[[callers]]\nid = \"custodian-1\"\nroles = [\"custodian\"]\n"
         "issuers = [\"*\"]\n\n[issuers.dev]\niss = \"https://issuer.example\"\n"
         "audiences = [\"https://api.example\", \"https://tools.example\", "
         "\"https://trust.example\"]\nscopes = [\"read\", \"write\"]\n"
         "token_kinds = [\"access_token\", \"transaction_token\"]\n"
         "any_actor = true\nextra_claims = [\"*\"]\n\n"
         "[issuers.dev.exchange]\ntrust_domain = \"https://trust.example\"\n";
}

// Calls `method` with `bytes` as the request message, as any client could.
RawReply RawCall(const std::shared_ptr<grpc::Channel>& ch,
                 const std::string& method, const std::string& bytes) {
  return testing::RawCall(ch, method, bytes, std::chrono::seconds(60));
}

// tokensign_requests_total{code,method} from a /metrics page.
std::map<std::string, double> RequestCounts(const std::string& metrics) {
  std::map<std::string, double> out;
  const std::string prefix = "tokensign_requests_total{";
  for (size_t at = metrics.find(prefix); at != std::string::npos;
       at = metrics.find(prefix, at + 1)) {
    size_t close = metrics.find("} ", at);
    size_t eol = metrics.find('\n', close);
    out[metrics.substr(at + prefix.size(), close - at - prefix.size())] =
        std::stod(metrics.substr(close + 2, eol - close - 2));
  }
  return out;
}

std::string MethodName(const std::string& path) {
  return path.substr(path.rfind('/') + 1);
}

std::string CodeName(Code code) {
  switch (code) {
    case Code::OK:
      return "OK";
    case Code::INVALID_ARGUMENT:
      return "INVALID_ARGUMENT";
    case Code::NOT_FOUND:
      return "NOT_FOUND";
    case Code::PERMISSION_DENIED:
      return "PERMISSION_DENIED";
    case Code::FAILED_PRECONDITION:
      return "FAILED_PRECONDITION";
    default:
      return "code " + std::to_string(static_cast<int>(code));
  }
}

TEST(DaemonBadInputTest, EveryCaseIsRefusedNamedCountedAuditedAndTheDaemonServes) {
  DaemonHarness h;
  const std::string state = h.Path("state");
  h.InitDevState(state);
  h.MakeCerts();
  WriteAll(h.Path("tokensignd.toml"), Toml(h, state));
  DaemonProcess d = h.Start({"--config", h.Path("tokensignd.toml")},
                            {"SOFTHSM2_CONF=" + state + "/softhsm2.conf"});
  ASSERT_GT(d.pid, 0);
  std::map<std::string, std::shared_ptr<grpc::Channel>> channels = {
      {"signer", h.Tls(d, "signer")}, {"custodian", h.Tls(d, "custodian")}};

  // A valid subject token for the exchange cases.
  v1::SignTokenRequest parent_req = ScenarioRequest();
  parent_req.add_scope("write");
  RawReply parent =
      RawCall(channels["signer"], kSignToken, parent_req.SerializeAsString());
  ASSERT_TRUE(parent.status.ok()) << parent.status.error_message();
  v1::SignTokenResponse parent_resp;
  ASSERT_TRUE(parent_resp.ParseFromString(parent.body));

  std::vector<Case> cases = SignTokenCases();
  for (std::vector<Case> more :
       {SignTokensCases(), ExchangeCases(parent_resp.token()), KeyAdminCases()}) {
    cases.insert(cases.end(), more.begin(), more.end());
  }
  const std::map<std::string, double> before =
      RequestCounts(h.HttpGet(d, "/metrics"));

  std::map<std::string, double> expected_counts;  // "code=..,method=.." -> n
  struct Audited {
    std::string name, caller, field;
  };
  std::vector<Audited> audited;
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    RawReply r = RawCall(channels[c.cert], c.method, c.bytes);
    std::string message;
    Code code;
    const std::string method = MethodName(c.method);
    if (c.item < 0) {
      code = r.status.error_code();
      message = r.status.error_message();
      expected_counts["code=\"" + CodeName(c.code) + "\",method=\"" + method +
                      "\""] += 1;
    } else {
      ASSERT_TRUE(r.status.ok()) << r.status.error_message();
      v1::SignTokensResponse resp;
      ASSERT_TRUE(resp.ParseFromString(r.body));
      ASSERT_GT(resp.results_size(), c.item);
      for (int i = 0; i < resp.results_size(); ++i) {
        EXPECT_EQ(resp.results(i).has_response(), i != c.item) << "item " << i;
      }
      const v1::ItemError& e = resp.results(c.item).error();
      code = static_cast<Code>(e.code());
      message = e.message();
      EXPECT_EQ(e.field().empty() ? "" : c.field.substr(0, e.field().size()),
                e.field())
          << message;
      expected_counts["code=\"OK\",method=\"SignTokens\""] += 1;
    }
    EXPECT_EQ(CodeName(code), CodeName(c.code)) << message;
    EXPECT_EQ(message.rfind(c.field + ": ", 0), 0u)
        << "the message does not start with \"" << c.field << ": \": "
        << message.substr(0, 300);
    // Clean: an oversized value is never echoed whole (a status message
    // beyond 8 KiB once reached the client as its own RESOURCE_EXHAUSTED).
    EXPECT_LE(message.size(), 1100u) << message.substr(0, 300);
    audited.push_back(
        {c.name, c.cert == "signer" ? kSigner : kCustodian, c.field});
  }
  std::printf("bad-input matrix: %zu cases\n", cases.size());
  RecordProperty("cases", static_cast<int>(cases.size()));

  // Still serving: a valid SignToken on the same connection.
  RawReply ok = RawCall(channels["signer"], kSignToken,
                        ScenarioRequest().SerializeAsString());
  ASSERT_TRUE(ok.status.ok()) << ok.status.error_message();
  expected_counts["code=\"OK\",method=\"SignToken\""] += 1;
  EXPECT_EQ(kill(d.pid, 0), 0) << "the daemon is gone";

  // Counted.
  const std::string metrics = h.HttpGet(d, "/metrics");
  const std::map<std::string, double> after = RequestCounts(metrics);
  for (const auto& [labels, n] : expected_counts) {
    const double was = before.count(labels) ? before.at(labels) : 0;
    const double now = after.count(labels) ? after.at(labels) : 0;
    EXPECT_EQ(now - was, n) << "tokensign_requests_total{" << labels << "}";
  }
  ASSERT_EQ(h.Stop(d, SIGTERM), 0);

  // Audited as denied with the caller's identity, in order, the reason naming
  // the field.
  std::vector<nlohmann::json> denied;
  for (const nlohmann::json& l : h.AuditLines(h.Path("audit.log"))) {
    if (l.value("outcome", "") == "denied") denied.push_back(l);
  }
  size_t next = 0;
  for (const Audited& a : audited) {
    size_t at = next;
    while (at < denied.size() &&
           !(denied[at].value("caller", "") == a.caller &&
             denied[at].value("reason", "").rfind(a.field + ": ", 0) == 0)) {
      ++at;
    }
    EXPECT_LT(at, denied.size())
        << a.name << ": no denied record by " << a.caller << " naming "
        << a.field << " after record " << next;
    if (at < denied.size()) next = at + 1;
  }
}

}  // namespace
}  // namespace tokensign::testing
