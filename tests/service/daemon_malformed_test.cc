// End-to-end tests of tokensignd (part 4): requests the protobuf parser
// refuses (invalid UTF-8 in a string, a Struct nested beyond the parser's
// limit) and an unknown enum value, sent as raw bytes over mTLS with a generic
// stub, are answered INVALID_ARGUMENT naming the field and the rule, counted in
// /metrics and audited as denied with the caller's mTLS identity; a bad batch
// item fails only itself; clients built from the proto keep working.
#include <grpcpp/generic/generic_stub.h>
#include <gtest/gtest.h>
#include <signal.h>

#include <future>
#include <string>
#include <vector>

#include "tests/service/daemon_harness.h"
#include "tests/service/raw_call.h"

namespace tokensign::testing {
namespace {

// A config-mode TOML on the dev token in `state`: mTLS, the signer
// (spiffe://test/signer) signs for `dev`, custodian-1 administers keys.
std::string MtlsToml(DaemonHarness& h, const std::string& state) {
  return "[hsm]\nmodule = \"" TOKENSIGN_SOFTHSM_MODULE
         "\"\ntoken_label = \"tokensign-dev\"\npin_file = \"" +
         state + "/pin\"\n\n[server]\ntls_cert = \"" + h.Path("server.pem") +
         "\"\ntls_key = \"" + h.Path("server.key") + "\"\nclient_ca = \"" +
         h.Path("ca.pem") + "\"\n\n[audit]\npath = \"" + h.Path("audit.log") +
         "\"\n\n[[callers]]\nid = \"spiffe://test/signer\"\nroles = "
         "[\"signer\"]\nissuers = [\"dev\"]\n"
         "[[callers]]\nid = \"custodian-1\"\nroles = [\"custodian\"]\n"
         "issuers = [\"*\"]\n\n[issuers.dev]\niss = "
         "\"https://issuer.example\"\naudiences = [\"https://api.example\"]\n"
         "scopes = [\"read\"]\nany_actor = true\n";
}

// Calls `method` with `bytes` as the request message, as any client could.
RawReply RawCall(const std::shared_ptr<grpc::Channel>& ch,
                 const std::string& method, const std::string& bytes) {
  return testing::RawCall(ch, method, bytes, std::chrono::seconds(30));
}

// A SignTokenRequest whose extra_claims nest `levels` Structs.
v1::SignTokenRequest Nested(int levels) {
  v1::SignTokenRequest r = ScenarioRequest();
  google::protobuf::Struct* s = r.mutable_extra_claims();
  for (int i = 1; i < levels; ++i)
    s = (*s->mutable_fields())["n"].mutable_struct_value();
  return r;
}

constexpr char kSignToken[] = "/tokensign.v1.TokenSigner/SignToken";
constexpr char kSignTokens[] = "/tokensign.v1.TokenSigner/SignTokens";
constexpr char kGetJwks[] = "/tokensign.v1.TokenSigner/GetJwks";
constexpr char kListKeys[] = "/tokensign.v1.KeyAdmin/ListKeys";

TEST(DaemonMalformedTest, RefusedRequestsAnswerInvalidArgumentCountedAudited) {
  DaemonHarness h;
  const std::string state = h.Path("state");
  h.InitDevState(state);
  h.MakeCerts();
  WriteAll(h.Path("tokensignd.toml"), MtlsToml(h, state));
  DaemonProcess d = h.Start({"--config", h.Path("tokensignd.toml")},
                            {"SOFTHSM2_CONF=" + state + "/softhsm2.conf"});
  ASSERT_GT(d.pid, 0);
  auto signer = h.Tls(d, "signer");

  // Invalid UTF-8 in a string field (0xFF never occurs in UTF-8).
  v1::SignTokenRequest utf8 = ScenarioRequest();
  utf8.mutable_actor_chain(1)->set_sub("MARKER");
  RawReply r =
      RawCall(signer, kSignToken, WithBytes(utf8, "MARKER", "MA\xFFKER"));
  EXPECT_EQ(r.status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(r.status.error_message(),
            "actor_chain[1].sub: invalid UTF-8 in a string field (not a valid "
            "tokensign.v1.SignTokenRequest)");

  // extra_claims nested 200 Structs deep (the parser allows 100 messages).
  r = RawCall(signer, kSignToken, Nested(200).SerializeAsString());
  EXPECT_EQ(r.status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(r.status.error_message(),
            "extra_claims: nested deeper than the protobuf parser's limit of "
            "100 messages (one google.protobuf.Struct level is 3) (not a "
            "valid tokensign.v1.SignTokenRequest)");

  // kind = 7: a valid message (proto3 enums are open), but no TokenKind.
  v1::SignTokenRequest seven = ScenarioRequest();
  seven.clear_kind();
  r = RawCall(signer, kSignToken, seven.SerializeAsString() + "\x10\x07");
  EXPECT_EQ(r.status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(r.status.error_message(),
            "kind: 7 is not a TokenKind (allowed: ACCESS_TOKEN, "
            "TRANSACTION_TOKEN)");

  // A batch with one bad item: that item fails alone, the others are signed.
  v1::SignTokensRequest batch;
  *batch.add_requests() = ScenarioRequest();
  *batch.add_requests() = ScenarioRequest();
  batch.mutable_requests(1)->set_subject("MARKER");
  *batch.add_requests() = ScenarioRequest();
  r = RawCall(signer, kSignTokens, WithBytes(batch, "MARKER", "M\xC0RKER"));
  ASSERT_TRUE(r.status.ok()) << r.status.error_message();
  v1::SignTokensResponse results;
  ASSERT_TRUE(results.ParseFromString(r.body));
  ASSERT_EQ(results.results_size(), 3);
  EXPECT_TRUE(results.results(0).has_response());
  ASSERT_TRUE(results.results(1).has_error());
  EXPECT_EQ(results.results(1).error().code(),
            static_cast<int>(grpc::StatusCode::INVALID_ARGUMENT));
  EXPECT_EQ(results.results(1).error().field(), "subject");
  EXPECT_TRUE(results.results(2).has_response());

  // GetJwks and KeyAdmin take client data too.
  v1::GetJwksRequest jwks;
  jwks.set_issuer("MARKER");
  r = RawCall(signer, kGetJwks, WithBytes(jwks, "MARKER", "MARK\xEDR"));
  EXPECT_EQ(r.status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(r.status.error_message(),
            "issuer: invalid UTF-8 in a string field (not a valid "
            "tokensign.v1.GetJwksRequest)");
  v1::ListKeysRequest list;
  list.set_issuer("MARKER");
  r = RawCall(h.Tls(d, "custodian"), kListKeys,
              WithBytes(list, "MARKER", "MARKE\x80"));
  EXPECT_EQ(r.status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(r.status.error_message(),
            "issuer: invalid UTF-8 in a string field (not a valid "
            "tokensign.v1.ListKeysRequest)");

  // A client built from the proto still signs, on the same connection.
  {
    grpc::ClientContext ctx;
    v1::SignTokenResponse resp;
    grpc::Status st = v1::TokenSigner::NewStub(signer)->SignToken(
        &ctx, ScenarioRequest(), &resp);
    ASSERT_TRUE(st.ok()) << st.error_message();
    EXPECT_FALSE(resp.token().empty());
  }

  const std::string metrics = h.HttpGet(d, "/metrics");
  EXPECT_NE(metrics.find("tokensign_requests_total{code=\"INVALID_ARGUMENT\","
                         "method=\"SignToken\"} 3"),
            std::string::npos)
      << metrics;
  EXPECT_NE(metrics.find("tokensign_requests_total{code=\"INVALID_ARGUMENT\","
                         "method=\"GetJwks\"} 1"),
            std::string::npos);
  EXPECT_NE(metrics.find("tokensign_requests_total{code=\"INVALID_ARGUMENT\","
                         "method=\"ListKeys\"} 1"),
            std::string::npos);
  EXPECT_NE(metrics.find(
                "tokensign_requests_total{code=\"OK\",method=\"SignToken\"} 1"),
            std::string::npos);
  ASSERT_EQ(h.Stop(d, SIGTERM), 0);

  // Audited as denied, with the caller's mTLS identity and (where it was
  // readable) the issuer; the reason is the answer's message.
  std::vector<std::string> malformed;
  bool list_keys = false;
  int signed_lines = 0;
  for (const auto& l : h.AuditLines(h.Path("audit.log"))) {
    const std::string kind = l.value("kind", ""), outcome = l.value("outcome", "");
    if (outcome == "signed") ++signed_lines;
    if (kind == "malformed_request") {
      EXPECT_EQ(outcome, "denied") << l.dump();
      EXPECT_EQ(l.value("caller", ""), "spiffe://test/signer") << l.dump();
      EXPECT_EQ(l.value("issuer", ""), "dev") << l.dump();
      malformed.push_back(l.value("reason", ""));
    }
    if (kind == "key_admin.ListKeys") {
      EXPECT_EQ(outcome, "denied") << l.dump();
      EXPECT_EQ(l.value("caller", ""), "custodian-1") << l.dump();
      EXPECT_NE(l.value("reason", "").find("issuer: invalid UTF-8"),
                std::string::npos)
          << l.dump();
      list_keys = true;
    }
  }
  ASSERT_EQ(malformed.size(), 4u);  // three calls and one batch item
  EXPECT_EQ(malformed[0].rfind("actor_chain[1].sub: invalid UTF-8", 0), 0u);
  EXPECT_EQ(malformed[1].rfind("extra_claims: nested deeper", 0), 0u);
  EXPECT_EQ(malformed[2].rfind("kind: 7 is not a TokenKind", 0), 0u);
  EXPECT_EQ(malformed[3].rfind("subject: invalid UTF-8", 0), 0u);
  EXPECT_TRUE(list_keys);
  EXPECT_EQ(signed_lines, 3);  // two batch items and the proto client's call
}

}  // namespace
}  // namespace tokensign::testing
