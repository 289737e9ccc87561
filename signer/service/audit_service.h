// The AuditAdmin gRPC service (tokensign.v1): the checkpoint the HSM holds
// for an audit log, with the instance's audit keys (role auditor, all
// issuers), the custodian's acknowledgement of a lost or tampered log
// (role custodian, all issuers; see audit::AuditLog::AcknowledgeLoss), the
// list of anchors an instance has in the HSM (auditor or custodian) and the
// retirement of an old log's archived anchor (custodian; never a live log's:
// the answering daemon's current log, or any instance's current anchor,
// which its daemon checks its log against at start). A retirement is audited
// on this daemon's log as kind "audit_admin.RetireAuditAnchor": "requested"
// (caller, the record retired, its checkpoint seq, the reason) before the
// HSM record is removed, then "done" or "denied"; a refused attempt by an
// authorized custodian or a caller without the role is audited "denied".
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
  grpc::ServerUnaryReactor* ListAuditAnchors(
      grpc::CallbackServerContext* ctx, const v1::ListAuditAnchorsRequest* req,
      v1::ListAuditAnchorsResponse* resp) override;
  grpc::ServerUnaryReactor* RetireAuditAnchor(
      grpc::CallbackServerContext* ctx,
      const v1::RetireAuditAnchorRequest* req,
      v1::RetireAuditAnchorResponse* resp) override;

 private:
  absl::Status Anchor(const std::string& caller,
                      const v1::GetAuditAnchorRequest& req,
                      v1::GetAuditAnchorResponse* resp);
  absl::Status Acknowledge(const std::string& caller,
                           const v1::AcknowledgeAuditLossRequest& req,
                           v1::AcknowledgeAuditLossResponse* resp);
  absl::Status List(const std::string& caller,
                    const v1::ListAuditAnchorsRequest& req,
                    v1::ListAuditAnchorsResponse* resp);
  absl::Status Retire(const std::string& caller,
                      const v1::RetireAuditAnchorRequest& req,
                      v1::RetireAuditAnchorResponse* resp);
  // Appends a durable "audit_admin.RetireAuditAnchor" record.
  absl::Status AuditRetire(const std::string& caller, absl::string_view outcome,
                           absl::string_view reason);

  const AuditAdminDeps deps_;
};

}  // namespace tokensign::service

#endif  // TOKENSIGN_SIGNER_SERVICE_AUDIT_SERVICE_H_
