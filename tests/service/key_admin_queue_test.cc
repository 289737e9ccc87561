// KeyAdmin calls refused because the work queue is full are audited like
// every other refused KeyAdmin call (issue 11 item 10): an in-process insecure
// server (caller "loopback") with a one-slot pool that a test task holds.
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <functional>
#include <future>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "signer/service/grpc_services.h"
#include "tests/service/signing_core_fixture.h"

namespace tokensign::service {
namespace {

class KeyAdminQueueFullTest : public SigningCoreTest {
 protected:
  void StartServer() {
    Config cfg = DevConfig("/nonexistent", "unused.so");
    cfg.dev = false;
    cfg.server.insecure = true;
    cfg.callers = {{"loopback", {Role::kCustodian}, {"*"}}};
    Rebuild(std::move(cfg));
    audit_.set_auto_complete(true);
    pool_ = std::make_unique<WorkPool>(1, 1);
    service_ = std::make_unique<KeyAdminService>(core_.get(), pool_.get(), nullptr);
    grpc::ServerBuilder b;
    int port = 0;
    b.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
    b.RegisterService(service_.get());
    server_ = b.BuildAndStart();
    ASSERT_NE(server_, nullptr);
    stub_ = v1::KeyAdmin::NewStub(grpc::CreateChannel(
        "127.0.0.1:" + std::to_string(port), grpc::InsecureChannelCredentials()));
  }
  void TearDown() override {
    release_.set_value();  // frees the slot FillQueue took
    if (server_) server_->Shutdown();
    if (pool_) pool_->Drain();
    if (core_) core_->WaitIdle();
  }
  // Occupies the pool's only slot until TearDown.
  void FillQueue() {
    std::shared_future<void> gate = release_.get_future().share();
    ASSERT_TRUE(pool_->TrySubmit([gate] { gate.wait(); }));
  }

  std::promise<void> release_;
  std::unique_ptr<WorkPool> pool_;
  std::unique_ptr<KeyAdminService> service_;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<v1::KeyAdmin::Stub> stub_;
};

TEST_F(KeyAdminQueueFullTest, EveryMethodRefusedForAFullQueueIsAudited) {
  StartServer();
  FillQueue();
  using Call = std::function<grpc::Status(grpc::ClientContext*)>;
  const std::vector<std::pair<std::string, Call>> calls = {
      {"CreateKey",
       [&](grpc::ClientContext* c) {
         v1::CreateKeyRequest r;
         r.set_issuer("dev");
         v1::CreateKeyResponse out;
         return stub_->CreateKey(c, r, &out);
       }},
      {"ListKeys",
       [&](grpc::ClientContext* c) {
         v1::ListKeysRequest r;
         r.set_issuer("dev");
         v1::ListKeysResponse out;
         return stub_->ListKeys(c, r, &out);
       }},
      {"RotateKey",
       [&](grpc::ClientContext* c) {
         v1::RotateKeyRequest r;
         r.set_issuer("dev");
         v1::RotateKeyResponse out;
         return stub_->RotateKey(c, r, &out);
       }},
      {"ActivateKey",
       [&](grpc::ClientContext* c) {
         v1::ActivateKeyRequest r;
         r.set_issuer("dev");
         r.set_kid("kid-1");
         v1::ActivateKeyResponse out;
         return stub_->ActivateKey(c, r, &out);
       }},
      {"RetireKey",
       [&](grpc::ClientContext* c) {
         v1::RetireKeyRequest r;
         r.set_issuer("dev");
         r.set_kid("kid-1");
         v1::RetireKeyResponse out;
         return stub_->RetireKey(c, r, &out);
       }},
      {"DestroyKey",
       [&](grpc::ClientContext* c) {
         v1::DestroyKeyRequest r;
         r.set_issuer("dev");
         r.set_kid("kid-1");
         v1::DestroyKeyResponse out;
         return stub_->DestroyKey(c, r, &out);
       }},
  };
  for (const auto& [method, call] : calls) {
    grpc::ClientContext ctx;
    grpc::Status st = call(&ctx);
    EXPECT_EQ(st.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << method;
    EXPECT_EQ(st.error_message(), "server: work queue full; retry with backoff") << method;
  }
  // One "denied" line per refused call (answered only once it is durable),
  // naming the caller, the method and the issuer; no change was started.
  std::vector<audit::AuditRecord> recs = audit_.durable();
  ASSERT_EQ(recs.size(), calls.size());
  for (size_t i = 0; i < recs.size(); ++i) {
    EXPECT_EQ(recs[i].kind, "key_admin." + calls[i].first);
    EXPECT_EQ(recs[i].outcome, "denied") << recs[i].kind;
    EXPECT_EQ(recs[i].caller, "loopback") << recs[i].kind;
    EXPECT_EQ(recs[i].issuer, "dev") << recs[i].kind;
    EXPECT_EQ(recs[i].reason, "server: work queue full; retry with backoff");
  }
}

TEST_F(KeyAdminQueueFullTest, RefusalIsNotAnsweredUntilItIsRecorded) {
  StartServer();
  FillQueue();
  audit_.set_auto_complete(false);  // hold the denial's append
  grpc::ClientContext ctx;
  v1::RotateKeyRequest req;
  req.set_issuer("dev");
  v1::RotateKeyResponse out;
  std::promise<grpc::Status> answered;
  stub_->async()->RotateKey(&ctx, &req, &out,
                            [&answered](grpc::Status st) { answered.set_value(st); });
  std::future<grpc::Status> answer = answered.get_future();
  // The record is handed to the audit log before the caller hears anything.
  while (audit_.pending() == 0 &&
         answer.wait_for(std::chrono::seconds(0)) != std::future_status::ready) {
    std::this_thread::yield();
  }
  ASSERT_EQ(audit_.pending(), 1u) << "answered without an audit record";
  EXPECT_EQ(answer.wait_for(std::chrono::seconds(0)), std::future_status::timeout);
  audit::AuditRecord rec = audit_.PendingRecord(0);
  EXPECT_EQ(rec.kind, "key_admin.RotateKey");
  EXPECT_EQ(rec.outcome, "denied");
  // Not recorded -> UNAVAILABLE, as for any refused KeyAdmin call whose
  // denial could not be written.
  audit_.CompleteNext(absl::InternalError("disk full"));
  EXPECT_EQ(answer.get().error_code(), grpc::StatusCode::UNAVAILABLE);
}

}  // namespace
}  // namespace tokensign::service
