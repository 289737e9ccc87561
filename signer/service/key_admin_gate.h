// KeyAdminGate: what every KeyAdmin call passes before and after it touches
// the HSM, in one place. Owns the order: the work queue (a call the pool
// refuses is audited "denied" and answered once that record is durable), the
// parse (a malformed request is audited "denied"), the audit log's health
// (Unavailable while it refuses records: nothing done, nothing appended), the
// caller's rights (PolicySnapshot::CheckKeyAdmin; a denial is recorded before
// it is answered), a durable "requested" record for a change before it
// touches the HSM (saying what was asked beyond the method: an EMERGENCY
// rotation, a FORCED activation or destruction, and the custodian's reason),
// then the operation and its durable "done"/"denied" outcome. A record that
// cannot be written turns the answer into Unavailable naming the operation's
// own outcome. Read-only calls (ListKeys, InspectKeys) record their denials
// and failures (an unknown issuer or kid), not a successful read.
//
// Thread-safety: safe from many threads; Submit is called on gRPC's callback
// threads and never blocks (the work runs on the WorkPool); Authorize,
// RecordRequest and RecordOutcome wait for fdatasync and run only on pool
// threads. `core` and `pool` must outlive the gate.
#ifndef TOKENSIGN_SIGNER_SERVICE_KEY_ADMIN_GATE_H_
#define TOKENSIGN_SIGNER_SERVICE_KEY_ADMIN_GATE_H_

#include <string>
#include <string_view>

#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "signer/service/signing_core.h"
#include "signer/service/work_pool.h"
#include "tokensign/v1/tokensign.pb.h"

namespace tokensign::service {

class KeyAdminGate {
 public:
  // One KeyAdmin call as the gate sees it.
  struct Call {
    std::string caller;
    const char* method;  // "RotateKey"; a string literal
    bool read_only;
    std::string issuer;   // "" when the request was unreadable
    absl::Status parsed;  // OK, or why the request is malformed
    std::string note;     // RequestNote of the request
  };
  // The operation; sets *kid to the key it concerns (for the outcome record).
  using Op = absl::AnyInvocable<absl::Status(std::string* kid) &&>;
  // Answers the call (serializes the response when OK); runs once.
  using Answer = absl::AnyInvocable<void(absl::Status) &&>;

  KeyAdminGate(SigningCore* core, WorkPool* pool) : core_(core), pool_(pool) {}

  // Queues the call; on a pool thread runs the gate and `op`, then `answer`.
  void Submit(Call call, Op op, Answer answer);

  // Custodian of `issuer` (read_only: custodian or auditor), while the audit
  // log accepts records; a denial is appended durably before it is returned
  // (Unavailable if that fails).
  absl::Status Authorize(std::string_view caller, std::string_view method,
                         std::string_view issuer, bool read_only);
  // Appends a durable "requested" record (reason `note`) for an authorized
  // change; Unavailable if it is not recorded: then the change must not be
  // made.
  absl::Status RecordRequest(std::string_view caller, std::string_view method,
                             std::string_view issuer,
                             std::string_view note = "");
  // Appends the outcome ("done", or "denied" with the error) and waits until
  // durable; OK when recorded, else Unavailable naming the outcome.
  absl::Status RecordOutcome(std::string_view caller, std::string_view method,
                             std::string_view issuer, std::string_view kid,
                             const absl::Status& outcome);

  // What a request asks beyond its method, for the "requested" record.
  static std::string RequestNote(const v1::RotateKeyRequest& req);
  static std::string RequestNote(const v1::ActivateKeyRequest& req);
  static std::string RequestNote(const v1::DestroyKeyRequest& req);
  template <typename Req>
  static std::string RequestNote(const Req&) {
    return "";
  }

 private:
  // The gate and the operation, on a pool thread.
  absl::Status Run(const Call& call, Op op);

  SigningCore* core_;
  WorkPool* pool_;
};

}  // namespace tokensign::service

#endif  // TOKENSIGN_SIGNER_SERVICE_KEY_ADMIN_GATE_H_
