#include "signer/service/key_admin_gate.h"

#include <memory>
#include <utility>

#include "absl/strings/str_cat.h"
#include "crypto/str_cat.h"
#include "signer/service/decision_record.h"
#include "signer/service/rpc_call.h"

namespace tokensign::service {
std::string KeyAdminGate::RequestNote(const v1::RotateKeyRequest& req) {
  if (req.mode() != v1::EMERGENCY) return "planned rotation";
  return "EMERGENCY rotation (old key withdrawn): " + req.reason();
}

std::string KeyAdminGate::RequestNote(const v1::ActivateKeyRequest& req) {
  return req.force() ? "FORCED before publish_lead: " + req.reason() : "";
}

std::string KeyAdminGate::RequestNote(const v1::DestroyKeyRequest& req) {
  return req.force() ? "FORCED while still published: " + req.reason() : "";
}

void KeyAdminGate::Submit(Call call, Op op, Answer answer) {
  struct Pending {
    Call call;
    Op op;
    Answer answer;
  };
  auto p = std::make_shared<Pending>(
      Pending{std::move(call), std::move(op), std::move(answer)});
  if (pool_->TrySubmit([this, p] {
        absl::Status st = Run(p->call, std::move(p->op));
        std::move(p->answer)(std::move(st));
      })) {
    return;
  }
  // Refused for load: audited like every other refused KeyAdmin call, and
  // answered once the record is durable (UNAVAILABLE if it cannot be).
  core_->DenyAsync(p->call.caller, p->call.issuer,
                   absl::StrCat("key_admin.", p->call.method),
                   QueueRefusal(*pool_), [p](absl::Status st) {
                     std::move(p->answer)(std::move(st));
                   });
}

absl::Status KeyAdminGate::Run(const Call& call, Op op) {
  if (!call.parsed.ok()) {
    // Malformed: refused and audited like any other refused call.
    absl::Status audited =
        RecordOutcome(call.caller, call.method, call.issuer, "", call.parsed);
    return audited.ok() ? call.parsed : audited;
  }
  absl::Status st =
      Authorize(call.caller, call.method, call.issuer, call.read_only);
  // A change is on record before it touches the HSM.
  if (st.ok() && !call.read_only)
    st = RecordRequest(call.caller, call.method, call.issuer, call.note);
  if (!st.ok()) return st;
  std::string kid;
  st = std::move(op)(&kid);
  // Every change has its outcome on record, and so has a read that failed
  // (an unknown kid: who looked for what); a successful read is not
  // recorded.
  if (!call.read_only || !st.ok()) {
    // Not recorded -> the caller must learn it (Unavailable names the
    // operation's own outcome).
    absl::Status audited =
        RecordOutcome(call.caller, call.method, call.issuer, kid, st);
    if (!audited.ok()) st = std::move(audited);
  }
  return st;
}

absl::Status KeyAdminGate::Authorize(std::string_view caller,
                                     std::string_view method,
                                     std::string_view issuer, bool read_only) {
  if (absl::Status h = core_->decisions().health(); !h.ok()) {
    return absl::UnavailableError(
        absl::StrCat("audit: log not accepting records (", h.message(), "); ",
                     AbslView(method), " refused"));
  }
  absl::Status st = core_->policy()->CheckKeyAdmin(caller, issuer, read_only);
  if (!st.ok()) {
    if (absl::Status a = RecordOutcome(caller, method, issuer, "", st);
        !a.ok())
      return a;
  }
  return st;
}

absl::Status KeyAdminGate::RecordRequest(std::string_view caller,
                                         std::string_view method,
                                         std::string_view issuer,
                                         std::string_view note) {
  audit::AuditRecord r =
      AdminRecord("key_admin", caller, method, issuer, core_->Now());
  r.outcome = "requested";
  r.reason = std::string(note);
  if (absl::Status st = core_->decisions().Record(std::move(r)); !st.ok()) {
    return absl::UnavailableError(
        absl::StrCat("audit: ", AbslView(method), " not started: its request could "
                     "not be recorded (", st.message(), "); nothing changed"));
  }
  return absl::OkStatus();
}

absl::Status KeyAdminGate::RecordOutcome(std::string_view caller,
                                         std::string_view method,
                                         std::string_view issuer,
                                         std::string_view kid,
                                         const absl::Status& outcome) {
  audit::AuditRecord r =
      AdminRecord("key_admin", caller, method, issuer, core_->Now());
  r.kid = std::string(kid);
  r.outcome = outcome.ok() ? "done" : "denied";
  r.reason = std::string(outcome.message());
  if (absl::Status st = core_->decisions().Record(std::move(r)); !st.ok()) {
    return absl::UnavailableError(absl::StrCat(
        "audit: outcome of ", AbslView(method), " not recorded (", st.message(),
        "); the operation ",
        outcome.ok() ? std::string("succeeded")
                     : absl::StrCat("failed: ", outcome.ToString())));
  }
  return absl::OkStatus();
}

}  // namespace tokensign::service
