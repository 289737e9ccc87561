// The audit record of a decision, built in one place, and DecisionLog, the one
// route by which the service's records reach the audit log.
//
// RecordFor is the record of a token request (what it asks for; the caller
// fills the outcome, and kid, jti, exp and the token's hash for a signed
// token). AdminRecord is a KeyAdmin call's ("key_admin.<method>"),
// DenialRecord one made before a request exists (malformed, refused batch).
//
// Denial records are bounded (BoundForAudit): every attacker-controlled string
// is cut to kMaxAuditFieldBytes with a marker that carries the SHA-256 of the
// whole value, actor chain / aud / scope / extra-claim-name lists to
// kMaxAuditListItems entries (the dropped count and the SHA-256 of the whole
// list go into `reason`), so a 4 MB `sub` never reaches the log. The caps are
// never below the policy's input caps: whatever the policy could accept is
// recorded whole, and two values that differ only past a cut still differ in
// the log.
#ifndef TOKENSIGN_SIGNER_SERVICE_DECISION_RECORD_H_
#define TOKENSIGN_SIGNER_SERVICE_DECISION_RECORD_H_

#include <string>
#include <string_view>

#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "signer/audit/audit_log.h"
#include "signer/keyset/keyset_manager.h"
#include "signer/token/exchange.h"
#include "signer/token/minter.h"
#include "signer/token/parent_token.h"
#include "signer/token/policy.h"
#include "signer/token/status_list.h"
#include "signer/token/token_request.h"

namespace tokensign::service {

// Bounds for attacker-controlled fields in denial audit records; never below
// what the policy accepts (token/policy.h).
inline constexpr size_t kMaxAuditFieldBytes = 1024;
inline constexpr size_t kMaxAuditReasonBytes = 1024;
inline constexpr size_t kMaxAuditListItems = 64;
static_assert(kMaxAuditFieldBytes >= token::kMaxStringBytes &&
              kMaxAuditFieldBytes >= token::kMaxScopeBytes &&
              kMaxAuditFieldBytes >= token::kMaxParentJtiBytes &&
              kMaxAuditFieldBytes >= token::kMaxClaimNameBytes);
static_assert(kMaxAuditListItems >= token::kMaxAudiences &&
              kMaxAuditListItems >= token::kMaxScopes &&
              kMaxAuditListItems >= token::kMaxHardChainDepth);

// The decision record of `req` (see the file comment).
audit::AuditRecord RecordFor(std::string_view caller, std::string_view issuer,
                             const token::TokenRequest& req, absl::Time now);
// A "denied" record of kind `kind` with `why` as its reason, for a decision
// made before a request exists.
audit::AuditRecord DenialRecord(std::string_view caller,
                                std::string_view issuer, std::string_view kind,
                                const absl::Status& why, absl::Time now);
// An admin call's record: time, caller, issuer and kind "<service>.<method>"
// (service "key_admin" or "audit_admin").
audit::AuditRecord AdminRecord(std::string_view service,
                               std::string_view caller, std::string_view method,
                               std::string_view issuer, absl::Time now);
// A refused exchange's record: what was asked, and who the parent names once
// it verified (`parent` may be null).
audit::AuditRecord ExchangeDenialRecord(std::string_view caller,
                                        std::string_view issuer,
                                        const token::ExchangeRequest& req,
                                        const token::VerifiedParent* parent,
                                        absl::Time now);
// A SignStatusList request's record (kind "status_list", uri, lifetime).
audit::AuditRecord StatusListRecord(std::string_view caller,
                                    std::string_view issuer,
                                    const token::StatusListRequest& req,
                                    absl::Time now);
// A keyset event the daemon found on the HSM (caller "tokensignd", kind
// "keyset.<event>", outcome "denied" for a rejected keyset, else "observed").
audit::AuditRecord KeysetEventRecord(const keyset::KeysetEvent& e,
                                     std::string_view event);
// A signed token's facts: kid, jti, exp, ttl (the lifetime given, also by
// default), token_sha256, txn (generated when the request had none).
void AddMintedFacts(const token::MintedToken& minted, audit::AuditRecord* r);
// A signed status list's facts: kid, exp, ttl, size, set entries, hash.
void AddStatusListFacts(const token::SignedStatusList& list,
                        audit::AuditRecord* r);

// The field a policy message names ("act.act.sub: chain depth ..." ->
// "act.act.sub"), or "" when the message does not start with a field path;
// "extra_claims" for any extra claim (extra_claims.admin, extra_claims["x"]),
// so callers cannot mint metric labels.
std::string FieldOf(std::string_view message);

// Caps every attacker-controlled field of a denial record (see the file
// comment); a cut string ends with "...[cut N bytes, sha256 HEX]" (HEX = the
// SHA-256 of the whole value) and never splits a UTF-8 sequence.
audit::AuditRecord BoundForAudit(audit::AuditRecord r);

// DecisionLog: the one route from the service to the audit log. Every record
// the daemon writes (tokens signed or withheld, denials, KeyAdmin and
// AuditAdmin requests and outcomes, keyset events) goes through Record or
// RecordAsync. Owns nothing (the log outlives it). Thread-safety: safe from
// many threads; RecordAsync's `durable` runs on the audit writer thread (or
// inline) and must be quick.
class DecisionLog {
 public:
  // kBounded passes the record through BoundForAudit; kAsBuilt is for records
  // whose fields are already bounded (a signed token's: the policy capped
  // them) or are the daemon's own (keyset events).
  enum class Bounding { kBounded, kAsBuilt };
  using Durable = absl::AnyInvocable<void(absl::Status) &&>;

  explicit DecisionLog(audit::AuditLog* log) : log_(log) {}

  // Appends `r`; `durable` gets OK once it is on disk, else the log's error.
  void RecordAsync(audit::AuditRecord r, Durable durable,
                   Bounding bounding = Bounding::kBounded);
  // Appends `r` and waits until it is durable (never on the writer thread).
  absl::Status Record(audit::AuditRecord r,
                      Bounding bounding = Bounding::kBounded);

  // Appends `r` (bounded); `done` gets `decision` once the record is
  // durable, else Unavailable "audit: decision not recorded: <why> (decision:
  // <the decision's status>)": no decision leaves unrecorded.
  template <typename T>
  void SettleAsync(audit::AuditRecord r, absl::StatusOr<T> decision,
                   absl::AnyInvocable<void(absl::StatusOr<T>) &&> done) {
    RecordAsync(std::move(r), [decision = std::move(decision),
                               done = std::move(done)](absl::Status st) mutable {
      if (!st.ok()) {
        std::move(done)(absl::UnavailableError(
            absl::StrCat("audit: decision not recorded: ", st.message(),
                         " (decision: ", decision.status().ToString(), ")")));
        return;
      }
      std::move(done)(std::move(decision));
    });
  }

  absl::Status health() const { return log_->health(); }

 private:
  audit::AuditLog* log_;
};

}  // namespace tokensign::service

#endif  // TOKENSIGN_SIGNER_SERVICE_DECISION_RECORD_H_
