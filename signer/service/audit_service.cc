#include "signer/service/audit_service.h"

#include <spdlog/spdlog.h>

#include <set>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "signer/service/audit_hsm.h"
#include "signer/service/grpc_convert.h"
#include "signer/service/http/metrics.h"
#include "signer/service/rpc_call.h"

namespace tokensign::service {
namespace {

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

// The instance a request names (empty: this daemon's), checked as a record
// name; InvalidArgument naming the field otherwise.
absl::StatusOr<std::string> RequestedInstance(const std::string& requested,
                                              const std::string& own) {
  std::string instance = requested.empty() ? own : requested;
  if (!ValidInstance(instance)) {
    return absl::InvalidArgumentError(
        "instance: must be 1..128 characters of [A-Za-z0-9._-]");
  }
  return instance;
}

// Runs `work` on the pool and finishes the reactor with its status.
template <typename Work>
grpc::ServerUnaryReactor* OnPool(grpc::CallbackServerContext* ctx,
                                 WorkPool* pool, Metrics* metrics,
                                 const char* method, Work work) {
  grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
  auto finish = [reactor, metrics, method](const absl::Status& st) {
    FinishAnswer(reactor, metrics, method, st);
  };
  if (!pool->TrySubmit([work = std::move(work), finish]() mutable {
        finish(work());
      })) {
    finish(QueueRefusal(*pool));
  }
  return reactor;
}

constexpr char kRetireMethod[] = "RetireAuditAnchor";

// One anchor for ListAuditAnchors / RetireAuditAnchor.
void FillInfo(const audit::Anchor& a, const std::string& instance,
              const std::string& record, bool live, v1::AuditAnchorInfo* out) {
  out->set_instance(instance);
  out->set_log_id(a.checkpoint.log_id);
  out->set_checkpoint_seq(a.checkpoint.seq);
  out->set_covered_seq(a.covered_seq);
  out->set_final(a.final);
  out->set_live(live);
  out->set_record(record);
  // The time is inside the signed checkpoint; an anchor whose checkpoint
  // does not decode is still listed (without it), so it can be retired.
  if (auto payload = audit::AnchorPayload(a); payload.ok()) {
    out->mutable_checkpoint_time()->set_seconds(
        absl::ToUnixSeconds(payload->time));
  }
}

}  // namespace

grpc::ServerUnaryReactor* AuditAdminService::ListAuditAnchors(
    grpc::CallbackServerContext* ctx, const v1::ListAuditAnchorsRequest* req,
    v1::ListAuditAnchorsResponse* resp) {
  std::string caller = CallerOf(ctx, *deps_.core->policy());
  return OnPool(ctx, deps_.pool, deps_.metrics, "ListAuditAnchors",
                [this, caller, req, resp] { return List(caller, *req, resp); });
}

grpc::ServerUnaryReactor* AuditAdminService::RetireAuditAnchor(
    grpc::CallbackServerContext* ctx, const v1::RetireAuditAnchorRequest* req,
    v1::RetireAuditAnchorResponse* resp) {
  std::string caller = CallerOf(ctx, *deps_.core->policy());
  return OnPool(ctx, deps_.pool, deps_.metrics, kRetireMethod,
                [this, caller, req, resp] {
                  return Retire(caller, *req, resp);
                });
}

grpc::ServerUnaryReactor* AuditAdminService::GetAuditAnchor(
    grpc::CallbackServerContext* ctx, const v1::GetAuditAnchorRequest* req,
    v1::GetAuditAnchorResponse* resp) {
  std::string caller = CallerOf(ctx, *deps_.core->policy());
  return OnPool(ctx, deps_.pool, deps_.metrics, "GetAuditAnchor",
                [this, caller, req, resp] { return Anchor(caller, *req, resp); });
}

grpc::ServerUnaryReactor* AuditAdminService::AcknowledgeAuditLoss(
    grpc::CallbackServerContext* ctx,
    const v1::AcknowledgeAuditLossRequest* req,
    v1::AcknowledgeAuditLossResponse* resp) {
  std::string caller = CallerOf(ctx, *deps_.core->policy());
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
  absl::StatusOr<std::string> requested =
      RequestedInstance(req.instance(), deps_.instance);
  if (!requested.ok()) return requested.status();
  const std::string& instance = *requested;
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

absl::Status AuditAdminService::List(const std::string& caller,
                                     const v1::ListAuditAnchorsRequest& req,
                                     v1::ListAuditAnchorsResponse* resp) {
  // Read-only, like KeyAdmin.ListKeys: auditors, and the custodians who
  // retire what it lists; each for all issuers.
  if (absl::Status st = deps_.core->policy()->CheckRoleOr(
          caller, Role::kAuditor, Role::kCustodian, "*");
      !st.ok()) {
    return st;
  }
  absl::StatusOr<std::string> requested =
      RequestedInstance(req.instance(), deps_.instance);
  if (!requested.ok()) return requested.status();
  const std::string& instance = *requested;
  resp->set_instance(instance);
  std::set<std::string> live;
  if (instance == deps_.instance && !deps_.log->log_id().empty())
    live.insert(deps_.log->log_id());
  const std::string current_name = audit::AnchorRecordName(instance);
  auto current = audit::LoadAnchor(*deps_.anchors, current_name);
  if (!current.ok()) return current.status();
  if (current->has_value()) {
    live.insert((*current)->checkpoint.log_id);
    FillInfo(**current, instance, current_name, /*live=*/true,
             resp->add_anchors());
  }
  auto ids = audit::ArchivedLogIds(*deps_.anchors, instance);
  if (!ids.ok()) return ids.status();
  for (const std::string& id : *ids) {
    const std::string name = audit::ArchivedAnchorRecordName(instance, id);
    auto archived = audit::LoadAnchor(*deps_.anchors, name);
    if (!archived.ok()) return archived.status();
    // Listed without a record: a crash between the two writes; skip it.
    if (!archived->has_value()) continue;
    FillInfo(**archived, instance, name, live.contains(id),
             resp->add_anchors());
  }
  return absl::OkStatus();
}

absl::Status AuditAdminService::AuditRetire(const std::string& caller,
                                            absl::string_view outcome,
                                            absl::string_view reason) {
  audit::AuditRecord r =
      AdminRecord("audit_admin", caller, kRetireMethod, "", absl::Now());
  r.outcome = std::string(outcome);
  r.reason = std::string(reason);
  return deps_.core->decisions().Record(std::move(r));
}

absl::Status AuditAdminService::Retire(const std::string& caller,
                                       const v1::RetireAuditAnchorRequest& req,
                                       v1::RetireAuditAnchorResponse* resp) {
  // Nothing is retired that cannot be put on record.
  if (absl::Status h = deps_.log->health(); !h.ok()) {
    return absl::UnavailableError(
        absl::StrCat("audit: log not accepting records (", h.message(), "); ",
                     kRetireMethod, " refused"));
  }
  // A refusal is on record too (as KeyAdmin's are).
  auto deny = [&](absl::Status st) {
    if (absl::Status a = AuditRetire(caller, "denied", st.message()); !a.ok()) {
      return absl::UnavailableError(absl::StrCat(
          "audit: refusal of ", kRetireMethod, " not recorded (", a.message(),
          "); it was refused: ", st.ToString()));
    }
    return st;
  };
  if (absl::Status st =
          deps_.core->policy()->CheckRole(caller, Role::kCustodian, "*");
      !st.ok()) {
    return deny(st);
  }
  absl::StatusOr<std::string> requested =
      RequestedInstance(req.instance(), deps_.instance);
  if (!requested.ok()) return deny(requested.status());
  const std::string& instance = *requested;
  if (!ValidInstance(req.log_id())) {
    return deny(absl::InvalidArgumentError(
        "log_id: required, 1..128 characters of [A-Za-z0-9._-]"));
  }
  if (req.reason().empty())
    return deny(absl::InvalidArgumentError("reason: required"));
  if (req.reason().size() > 1024)
    return deny(absl::InvalidArgumentError("reason: longer than 1024 bytes"));
  // A live log's anchor is what its daemon checks the log against at start
  // (and what verify --server compares with): never retired.
  auto current =
      audit::LoadAnchor(*deps_.anchors, audit::AnchorRecordName(instance));
  if (!current.ok()) return current.status();
  const bool live =
      (instance == deps_.instance && req.log_id() == deps_.log->log_id()) ||
      (current->has_value() && (*current)->checkpoint.log_id == req.log_id());
  if (live) {
    return deny(absl::FailedPreconditionError(absl::StrCat(
        "log_id: ", req.log_id(), " is the live log of instance \"", instance,
        "\" (its current anchor, checked at every start); only the archived "
        "anchor of an old log (kept by AcknowledgeAuditLoss) can be retired")));
  }
  const std::string name =
      audit::ArchivedAnchorRecordName(instance, req.log_id());
  auto archived = audit::LoadAnchor(*deps_.anchors, name);
  if (!archived.ok()) return archived.status();
  if (!archived->has_value()) {
    return deny(absl::NotFoundError(absl::StrCat(
        "log_id: the HSM holds no archived anchor for log ", req.log_id(),
        " of instance \"", instance, "\"")));
  }
  FillInfo(**archived, instance, name, /*live=*/false,
           resp->mutable_retired());
  const std::string what =
      absl::StrCat("anchor ", name, " (checkpoint seq ",
                   (*archived)->checkpoint.seq, ")");
  if (absl::Status a = AuditRetire(caller, "requested",
                                   absl::StrCat(what, ": ", req.reason()));
      !a.ok()) {
    return absl::UnavailableError(
        absl::StrCat("audit: ", kRetireMethod, " not started: its request "
                     "could not be recorded (", a.message(),
                     "); nothing changed"));
  }
  absl::Status removed =
      audit::RemoveArchivedAnchor(*deps_.anchors, instance, req.log_id());
  if (absl::Status a = AuditRetire(caller, removed.ok() ? "done" : "denied",
                                   removed.ok() ? what : removed.message());
      !a.ok()) {
    return absl::UnavailableError(absl::StrCat(
        "audit: outcome of ", kRetireMethod, " not recorded (", a.message(),
        "); the operation ",
        removed.ok() ? std::string("succeeded")
                     : absl::StrCat("failed: ", removed.ToString())));
  }
  if (!removed.ok()) return removed;
  spdlog::warn("audit: {} retired the anchor of log {} of instance \"{}\" ({})",
               caller, req.log_id(), instance, req.reason());
  return absl::OkStatus();
}

}  // namespace tokensign::service
