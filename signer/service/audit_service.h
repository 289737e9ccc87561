// The AuditAdmin gRPC service (tokensign.v1): the checkpoint the HSM holds
// for an audit log, with the instance's audit keys (role auditor, all
// issuers), and the custodian's acknowledgement of a lost or tampered log
// (role custodian, all issuers; see audit::AuditLog::AcknowledgeLoss).
//
// Contract: handlers never block; the work (role check, HSM reads, the
// acknowledgement) runs on the WorkPool, a full pool answers
// RESOURCE_EXHAUSTED. Answers are counted in Metrics (method, code).
// Thread-safety: called by gRPC from many threads; everything it touches is
// thread-safe. The dependencies must outlive the server.
#ifndef TOKENSIGN_SIGNER_SERVICE_AUDIT_SERVICE_H_
#define TOKENSIGN_SIGNER_SERVICE_AUDIT_SERVICE_H_

#include <grpcpp/grpcpp.h>

#include <string>

#include "hsm/hsm.h"
#include "signer/audit/anchor_store.h"
#include "signer/audit/audit_log.h"
#include "signer/service/signing_core.h"
#include "signer/service/work_pool.h"
#include "tokensign/v1/tokensign.grpc.pb.h"

namespace tokensign::service {

class Metrics;

struct AuditAdminDeps {
  SigningCore* core = nullptr;  // the policy (callers and roles)
  WorkPool* pool = nullptr;
  Metrics* metrics = nullptr;  // may be null
  audit::AuditLog* log = nullptr;
  audit::AnchorStore* anchors = nullptr;
  hsm::Hsm* hsm = nullptr;  // audit key records of other instances
  std::string instance;     // this daemon's
  std::string jwks_json;    // this instance's audit keys
};

class AuditAdminService final : public v1::AuditAdmin::CallbackService {
 public:
  explicit AuditAdminService(AuditAdminDeps deps) : deps_(std::move(deps)) {}

  grpc::ServerUnaryReactor* GetAuditAnchor(
      grpc::CallbackServerContext* ctx, const v1::GetAuditAnchorRequest* req,
      v1::GetAuditAnchorResponse* resp) override;
  grpc::ServerUnaryReactor* AcknowledgeAuditLoss(
      grpc::CallbackServerContext* ctx,
      const v1::AcknowledgeAuditLossRequest* req,
      v1::AcknowledgeAuditLossResponse* resp) override;

 private:
  absl::Status Anchor(const std::string& caller,
                      const v1::GetAuditAnchorRequest& req,
                      v1::GetAuditAnchorResponse* resp);
  absl::Status Acknowledge(const std::string& caller,
                           const v1::AcknowledgeAuditLossRequest& req,
                           v1::AcknowledgeAuditLossResponse* resp);

  const AuditAdminDeps deps_;
};

}  // namespace tokensign::service

#endif  // TOKENSIGN_SIGNER_SERVICE_AUDIT_SERVICE_H_
