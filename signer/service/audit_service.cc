#include "signer/service/audit_service.h"

#include <spdlog/spdlog.h>

#include <utility>

#include "absl/strings/str_cat.h"
#include "signer/service/audit_hsm.h"
#include "signer/service/grpc_convert.h"
#include "signer/service/http/metrics.h"

namespace tokensign::service {
namespace {

std::string Caller(const grpc::CallbackServerContext* ctx, SigningCore* core) {
  std::shared_ptr<const PolicySnapshot> snap = core->policy();
  return CallerIdentity(*ctx, snap->config.dev, snap->config.server.insecure);
}

// Instance names become HSM record names: keep them plain.
bool ValidInstance(const std::string& s) {
  if (s.empty() || s.size() > 128) return false;
  for (char c : s) {
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
          (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.')) {
      return false;
    }
  }
  return true;
}

// Runs `work` on the pool and finishes the reactor with its status.
template <typename Work>
grpc::ServerUnaryReactor* OnPool(grpc::CallbackServerContext* ctx,
                                 WorkPool* pool, Metrics* metrics,
                                 const char* method, Work work) {
  grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
  auto finish = [reactor, metrics, method](const absl::Status& st) {
    if (metrics != nullptr)
      metrics->CountRequest(method, absl::StatusCodeToString(st.code()));
    reactor->Finish(ToGrpcStatus(st));
  };
  if (!pool->TrySubmit([work = std::move(work), finish]() mutable {
        finish(work());
      })) {
    finish(pool->stopping()
               ? absl::UnavailableError("server: shutting down; retry elsewhere")
               : absl::ResourceExhaustedError(
                     "server: work queue full; retry with backoff"));
  }
  return reactor;
}

}  // namespace

grpc::ServerUnaryReactor* AuditAdminService::GetAuditAnchor(
    grpc::CallbackServerContext* ctx, const v1::GetAuditAnchorRequest* req,
    v1::GetAuditAnchorResponse* resp) {
  std::string caller = Caller(ctx, deps_.core);
  return OnPool(ctx, deps_.pool, deps_.metrics, "GetAuditAnchor",
                [this, caller, req, resp] { return Anchor(caller, *req, resp); });
}

grpc::ServerUnaryReactor* AuditAdminService::AcknowledgeAuditLoss(
    grpc::CallbackServerContext* ctx,
    const v1::AcknowledgeAuditLossRequest* req,
    v1::AcknowledgeAuditLossResponse* resp) {
  std::string caller = Caller(ctx, deps_.core);
  return OnPool(ctx, deps_.pool, deps_.metrics, "AcknowledgeAuditLoss",
                [this, caller, req, resp] {
                  return Acknowledge(caller, *req, resp);
                });
}

absl::Status AuditAdminService::Anchor(const std::string& caller,
                                       const v1::GetAuditAnchorRequest& req,
                                       v1::GetAuditAnchorResponse* resp) {
  // The audit log covers every issuer: an auditor of all of them ("*").
  if (absl::Status st =
          deps_.core->policy()->CheckRole(caller, Role::kAuditor, "*");
      !st.ok()) {
    return st;
  }
  const std::string instance =
      req.instance().empty() ? deps_.instance : req.instance();
  if (!ValidInstance(instance)) {
    return absl::InvalidArgumentError(
        "instance: must be 1..128 characters of [A-Za-z0-9._-]");
  }
  resp->set_instance(instance);
  if (instance == deps_.instance) {
    resp->set_jwks_json(deps_.jwks_json);
    absl::Status health = deps_.log->health();
    if (absl::IsFailedPrecondition(health))
      resp->set_refused(std::string(health.message()));
  } else {
    auto jwks = AuditJwksOf(*deps_.hsm, instance);
    if (!jwks.ok()) return jwks.status();
    resp->set_jwks_json(*jwks);
  }
  auto anchor = audit::LoadAnchor(*deps_.anchors,
                                  audit::AnchorRecordName(instance));
  if (!anchor.ok()) return anchor.status();
  if (!req.log_id().empty() &&
      (!anchor->has_value() ||
       (*anchor)->checkpoint.log_id != req.log_id())) {
    if (!ValidInstance(req.log_id()))
      return absl::InvalidArgumentError("log_id: not a log id");
    anchor = audit::LoadAnchor(
        *deps_.anchors,
        audit::ArchivedAnchorRecordName(instance, req.log_id()));
    if (!anchor.ok()) return anchor.status();
  }
  if (!anchor->has_value()) return absl::OkStatus();  // found = false
  const audit::Anchor& a = **anchor;
  resp->set_found(true);
  resp->set_log_id(a.checkpoint.log_id);
  resp->set_checkpoint_seq(a.checkpoint.seq);
  resp->set_checkpoint_sha256(a.checkpoint.sha256);
  resp->set_covered_seq(a.covered_seq);
  resp->set_final(a.final);
  resp->set_checkpoint_jws(a.jws);
  return absl::OkStatus();
}

absl::Status AuditAdminService::Acknowledge(
    const std::string& caller, const v1::AcknowledgeAuditLossRequest& req,
    v1::AcknowledgeAuditLossResponse* resp) {
  if (absl::Status st =
          deps_.core->policy()->CheckRole(caller, Role::kCustodian, "*");
      !st.ok()) {
    return st;
  }
  if (req.reason().empty())
    return absl::InvalidArgumentError("reason: required");
  if (req.reason().size() > 1024)
    return absl::InvalidArgumentError("reason: longer than 1024 bytes");
  const std::string found = std::string(deps_.log->health().message());
  if (absl::Status st = deps_.log->AcknowledgeLoss(caller, req.reason());
      !st.ok()) {
    return st;
  }
  spdlog::warn(
      "audit: {} acknowledged the loss of the audit log ({}): a new segment, "
      "log {}, begins; refused because: {}",
      caller, req.reason(), deps_.log->log_id(), found);
  resp->set_log_id(deps_.log->log_id());
  return absl::OkStatus();
}

}  // namespace tokensign::service
