// The gRPC services of tokensignd (callback API): TokenSigner and KeyAdmin.
//
// Contract: handlers never block. Each checks nothing but the queue: the work
// (role check, deadline, mint, key operations) runs on the WorkPool; signing
// hands its audit record to the audit log asynchronously and the audit writer
// thread finishes the reactor once the record is durable (a worker never
// waits for fdatasync). A full pool answers RESOURCE_EXHAUSTED at once.
// SignTokens first refuses the whole call, with one audit line and nothing
// queued, when the caller is unknown or lacks the signer role
// (PERMISSION_DENIED) or the batch has more than min(kMaxBatchItems,
// max_queue) items (INVALID_ARGUMENT "requests: 300 items exceed max 256");
// then it submits one pool task per item (admitted all or none, counted
// exactly against max_queue, see WorkPool::TrySubmitAll) and finishes when the
// last item's outcome is in, one result per item, in order. A malformed item
// (ToTokenRequest error) is audited as denied. KeyAdmin: refused with
// UNAVAILABLE while the audit log is unhealthy; a mutation whose outcome could
// not be recorded answers UNAVAILABLE (see SigningCore::AuditAdmin). Every answer is counted in Metrics (method,
// code).
//
// Thread-safety: the services are called by gRPC from many threads; all state
// they touch (SigningCore, WorkPool, Metrics) is thread-safe. They must outlive
// the server.
#ifndef TOKENSIGN_SIGNER_SERVICE_GRPC_SERVICES_H_
#define TOKENSIGN_SIGNER_SERVICE_GRPC_SERVICES_H_

#include <grpcpp/grpcpp.h>

#include <string>

#include "signer/service/signing_core.h"
#include "signer/service/work_pool.h"
#include "tokensign/v1/tokensign.grpc.pb.h"

namespace tokensign::service {

class Metrics;

// Most items one SignTokens call may carry (also capped by max_queue).
inline constexpr int kMaxBatchItems = 256;

class TokenSignerService final : public v1::TokenSigner::CallbackService {
 public:
  TokenSignerService(SigningCore* core, WorkPool* pool, Metrics* metrics)
      : core_(core), pool_(pool), metrics_(metrics) {}

  grpc::ServerUnaryReactor* SignToken(grpc::CallbackServerContext* ctx,
                                      const v1::SignTokenRequest* req,
                                      v1::SignTokenResponse* resp) override;
  grpc::ServerUnaryReactor* SignTokens(grpc::CallbackServerContext* ctx,
                                       const v1::SignTokensRequest* req,
                                       v1::SignTokensResponse* resp) override;
  grpc::ServerUnaryReactor* GetJwks(grpc::CallbackServerContext* ctx,
                                    const v1::GetJwksRequest* req,
                                    v1::GetJwksResponse* resp) override;

 private:
  SigningCore* core_;
  WorkPool* pool_;
  Metrics* metrics_;
};

class KeyAdminService final : public v1::KeyAdmin::CallbackService {
 public:
  KeyAdminService(SigningCore* core, WorkPool* pool, Metrics* metrics)
      : core_(core), pool_(pool), metrics_(metrics) {}

  grpc::ServerUnaryReactor* CreateKey(grpc::CallbackServerContext* ctx,
                                      const v1::CreateKeyRequest* req,
                                      v1::CreateKeyResponse* resp) override;
  grpc::ServerUnaryReactor* ListKeys(grpc::CallbackServerContext* ctx,
                                     const v1::ListKeysRequest* req,
                                     v1::ListKeysResponse* resp) override;
  grpc::ServerUnaryReactor* RotateKey(grpc::CallbackServerContext* ctx,
                                      const v1::RotateKeyRequest* req,
                                      v1::RotateKeyResponse* resp) override;
  grpc::ServerUnaryReactor* ActivateKey(grpc::CallbackServerContext* ctx,
                                        const v1::ActivateKeyRequest* req,
                                        v1::ActivateKeyResponse* resp) override;
  grpc::ServerUnaryReactor* RetireKey(grpc::CallbackServerContext* ctx,
                                      const v1::RetireKeyRequest* req,
                                      v1::RetireKeyResponse* resp) override;
  grpc::ServerUnaryReactor* DestroyKey(grpc::CallbackServerContext* ctx,
                                       const v1::DestroyKeyRequest* req,
                                       v1::DestroyKeyResponse* resp) override;

 private:
  // Authorizes `method` for the caller, then runs `op` on the pool and
  // finishes.
  grpc::ServerUnaryReactor* Run(
      grpc::CallbackServerContext* ctx, const char* method,
      const std::string& issuer, bool read_only,
      std::function<absl::Status(std::string* kid)> op);

  SigningCore* core_;
  WorkPool* pool_;
  Metrics* metrics_;
};

}  // namespace tokensign::service

#endif  // TOKENSIGN_SIGNER_SERVICE_GRPC_SERVICES_H_
