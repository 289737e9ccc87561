// TokenSignerService.SignTokens pre-checks on an in-process insecure server
// (caller id "loopback"): an unauthorized caller is refused once per call with
// one audit line, a batch above kMaxBatchItems is refused with
// INVALID_ARGUMENT naming the counts (one audit line, nothing queued), and a
// malformed item is audited as denied.
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include "signer/service/grpc_services.h"
#include "tests/service/signing_core_fixture.h"

namespace tokensign::service {
namespace {

class SignTokensPrecheckTest : public SigningCoreTest {
 protected:
  void StartServer(Config cfg) {
    cfg.dev = false;
    cfg.server.insecure = true;
    Rebuild(std::move(cfg));
    audit_.set_auto_complete(true);
    pool_ = std::make_unique<WorkPool>(2, 1024);
    service_ = std::make_unique<TokenSignerService>(core_.get(), pool_.get(),
                                                    nullptr);
    grpc::ServerBuilder b;
    int port = 0;
    b.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(),
                       &port);
    b.RegisterService(service_.get());
    server_ = b.BuildAndStart();
    ASSERT_NE(server_, nullptr);
    stub_ = v1::TokenSigner::NewStub(grpc::CreateChannel(
        "127.0.0.1:" + std::to_string(port),
        grpc::InsecureChannelCredentials()));
  }
  void TearDown() override {
    if (server_) server_->Shutdown();
    if (pool_) pool_->Drain();
    if (core_) core_->WaitIdle();
  }
  grpc::Status Call(const v1::SignTokensRequest& req,
                    v1::SignTokensResponse* resp) {
    grpc::ClientContext ctx;
    return stub_->SignTokens(&ctx, req, resp);
  }
  static v1::SignTokenRequest Item() {
    v1::SignTokenRequest r;
    r.set_issuer("dev");
    r.set_kind(v1::ACCESS_TOKEN);
    r.set_subject("alice");
    r.set_client_id("app");
    r.add_audience("https://api.example");
    return r;
  }

  std::unique_ptr<WorkPool> pool_;
  std::unique_ptr<TokenSignerService> service_;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<v1::TokenSigner::Stub> stub_;
};

TEST_F(SignTokensPrecheckTest, UnknownCallerRefusedOncePerCall) {
  StartServer(DevConfig("/nonexistent", "unused.so"));  // no callers at all
  v1::SignTokensRequest req;
  for (int i = 0; i < 50; ++i) *req.add_requests() = Item();
  v1::SignTokensResponse resp;
  grpc::Status st = Call(req, &resp);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(resp.results_size(), 0);
  ASSERT_EQ(audit_.durable().size(), 1u);  // one line, not 50
  EXPECT_EQ(audit_.durable()[0].caller, "loopback");
  EXPECT_EQ(audit_.durable()[0].kind, "batch");
  EXPECT_EQ(audit_.durable()[0].outcome, "denied");
}

TEST_F(SignTokensPrecheckTest, OversizedBatchRefusedAndMalformedItemAudited) {
  Config c = DevConfig("/nonexistent", "unused.so");
  c.callers = {{"loopback", {Role::kSigner}, {"*"}}};
  StartServer(std::move(c));
  v1::SignTokensRequest big;
  for (int i = 0; i < 300; ++i) *big.add_requests() = Item();
  v1::SignTokensResponse resp;
  grpc::Status st = Call(big, &resp);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(st.error_message(), "requests: 300 items exceed max 256");
  ASSERT_EQ(audit_.durable().size(), 1u);

  v1::SignTokensRequest two;
  *two.add_requests() = Item();
  v1::SignTokenRequest bad = Item();
  bad.set_kind(v1::TOKEN_KIND_UNSPECIFIED);
  *two.add_requests() = bad;
  st = Call(two, &resp);
  ASSERT_TRUE(st.ok()) << st.error_message();
  ASSERT_EQ(resp.results_size(), 2);
  EXPECT_TRUE(resp.results(0).has_response());
  EXPECT_TRUE(resp.results(1).has_error());
  std::vector<audit::AuditRecord> recs = audit_.durable();
  ASSERT_EQ(recs.size(), 3u);
  int malformed = 0;
  for (const auto& r : recs)
    if (r.kind == "malformed_request" && r.outcome == "denied") ++malformed;
  EXPECT_EQ(malformed, 1);
}

}  // namespace
}  // namespace tokensign::service
