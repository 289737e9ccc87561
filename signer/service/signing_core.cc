#include "signer/service/signing_core.h"

#include <algorithm>
#include <chrono>
#include <future>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "nlohmann/json.hpp"
#include "signer/audit/audit_format.h"
#include "signer/service/http/metrics.h"

namespace tokensign::service {
namespace {

absl::string_view S(std::string_view s) {
  return absl::string_view(s.data(), s.size());
}

// Hex SHA-256 of `v`'s canonical JSON: nlohmann::json::dump() sorts object
// keys bytewise and writes no whitespace (audit_format.h).
std::string CanonicalJsonSha256(const nlohmann::json& v) {
  return audit::Sha256Hex(
      v.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
}

}  // namespace

audit::AuditRecord RecordFor(std::string_view caller, std::string_view issuer,
                             const token::TokenRequest& req, absl::Time now) {
  audit::AuditRecord r;
  r.time = now;
  r.caller = std::string(caller);
  r.issuer = std::string(issuer);
  r.kind = token::TokenKindName(req.kind);
  r.sub = req.subject;
  r.client_id = req.client_id;
  for (const token::Actor& a : req.actor_chain)
    r.actor_chain.push_back({a.sub, a.iss});
  r.aud = req.audience;
  r.scope = req.scope;
  r.ttl = req.ttl_seconds;
  if (req.cnf.has_value()) {
    r.cnf_jkt = req.cnf->jkt;
    r.cnf_x5t_s256 = req.cnf->x5t_s256;
  }
  r.txn = req.txn;
  r.req_wl = req.req_wl;
  if (!req.rctx.is_null()) r.rctx_sha256 = CanonicalJsonSha256(req.rctx);
  if (!req.tctx.is_null()) r.tctx_sha256 = CanonicalJsonSha256(req.tctx);
  if (req.extra_claims.is_object()) {
    for (const auto& item : req.extra_claims.items())  // sorted by name
      r.extra_claims.push_back(item.key());
  }
  if (!req.extra_claims.is_null() &&
      !(req.extra_claims.is_object() && req.extra_claims.empty())) {
    r.extra_claims_sha256 = CanonicalJsonSha256(req.extra_claims);
  }
  r.parent_jti = req.parent_jti;
  r.parent_token_sha256 = req.parent_token_sha256;
  if (req.parent_cnf.has_value()) {
    r.parent_cnf_jkt = req.parent_cnf->jkt;
    r.parent_cnf_x5t_s256 = req.parent_cnf->x5t_s256;
  }
  if (req.status.has_value()) {
    r.status_uri = req.status->uri;
    r.status_idx = req.status->idx;
  }
  return r;
}

namespace {

// Cuts `s` to `max` bytes (on a UTF-8 boundary) plus a marker with the
// SHA-256 of the whole value, so values that differ only past the cut still
// differ in the log.
void Cut(std::string* s, size_t max) {
  if (s->size() <= max) return;
  const std::string whole = audit::Sha256Hex(*s);
  size_t cut = max;
  while (cut > 0 && (static_cast<unsigned char>((*s)[cut]) & 0xC0) == 0x80)
    --cut;
  size_t dropped = s->size() - cut;
  s->resize(cut);
  absl::StrAppend(s, "...[cut ", dropped, " bytes, sha256 ", whole, "]");
}

// Keeps the first kMaxAuditListItems entries of `v`; when it drops any, says
// so in `note` with the SHA-256 of the whole list (`json`: its JSON).
template <typename T, typename ToJson>
void CapList(std::string_view name, std::vector<T>* v, ToJson json,
             std::string* note) {
  if (v->size() <= kMaxAuditListItems) return;
  nlohmann::json all = nlohmann::json::array();
  for (const T& e : *v) all.push_back(json(e));
  absl::StrAppend(note, "; ", S(name), ": ", v->size(), " entries, first ",
                  kMaxAuditListItems, " recorded, sha256 of all ",
                  CanonicalJsonSha256(all));
  v->resize(kMaxAuditListItems);
}

}  // namespace

audit::AuditRecord BoundForAudit(audit::AuditRecord r) {
  std::string note;
  auto str = [](const std::string& s) { return nlohmann::json(s); };
  CapList(
      "actor_chain", &r.actor_chain,
      [](const audit::AuditActor& a) {
        return nlohmann::json{{"sub", a.sub}, {"iss", a.iss}};
      },
      &note);
  CapList("aud", &r.aud, str, &note);
  CapList("scope", &r.scope, str, &note);
  CapList("extra_claims", &r.extra_claims, str, &note);
  for (std::string* f :
       {&r.caller, &r.issuer, &r.kind, &r.kid, &r.jti, &r.sub, &r.client_id,
        &r.parent_jti, &r.token_sha256, &r.cnf_jkt, &r.cnf_x5t_s256, &r.txn,
        &r.req_wl, &r.status_uri, &r.parent_token_sha256, &r.parent_cnf_jkt,
        &r.parent_cnf_x5t_s256})
    Cut(f, kMaxAuditFieldBytes);
  for (audit::AuditActor& a : r.actor_chain) {
    Cut(&a.sub, kMaxAuditFieldBytes);
    Cut(&a.iss, kMaxAuditFieldBytes);
  }
  for (std::string& a : r.aud) Cut(&a, kMaxAuditFieldBytes);
  for (std::string& sc : r.scope) Cut(&sc, kMaxAuditFieldBytes);
  for (std::string& name : r.extra_claims) Cut(&name, kMaxAuditFieldBytes);
  Cut(&r.reason, kMaxAuditReasonBytes);
  r.reason += note;
  return r;
}

std::string FieldOf(std::string_view message) {
  // One metric label for every extra claim: names are the caller's to choose.
  if (message.starts_with("extra_claims.") ||
      message.starts_with("extra_claims[")) {
    return "extra_claims";
  }
  size_t colon = message.find(": ");
  if (colon == std::string_view::npos || colon == 0 || colon > 128) return "";
  std::string_view field = message.substr(0, colon);
  for (char c : field) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '[' ||
              c == ']' || c == '#';
    if (!ok) return "";
  }
  return std::string(field);
}

const CallerConfig* PolicySnapshot::FindCaller(std::string_view id) const {
  for (const CallerConfig& c : config.callers) {
    if (c.id == id) return &c;
  }
  return nullptr;
}

absl::Status PolicySnapshot::CheckRole(std::string_view caller, Role role,
                                       std::string_view issuer) const {
  if (config.dev) return absl::OkStatus();
  const CallerConfig* c = FindCaller(caller);
  if (c == nullptr) {
    return absl::PermissionDeniedError(
        absl::StrCat("caller: \"", S(caller), "\" is not a configured caller"));
  }
  if (std::find(c->roles.begin(), c->roles.end(), role) == c->roles.end()) {
    return absl::PermissionDeniedError(absl::StrCat(
        "caller: \"", S(caller), "\" lacks the ", RoleName(role), " role"));
  }
  // Every role is scoped to the caller's issuers: a custodian of one issuer
  // cannot rotate or destroy another issuer's keys.
  bool covered = std::any_of(
      c->issuers.begin(), c->issuers.end(),
      [&](const std::string& i) { return i == "*" || i == issuer; });
  if (!covered) {
    return absl::PermissionDeniedError(absl::StrCat(
        "issuer: caller \"", S(caller), "\" may not ",
        role == Role::kSigner ? "sign" : absl::StrCat("act as ", RoleName(role)),
        " for issuer \"", S(issuer), "\"; its issuers are [",
        absl::StrJoin(c->issuers, ", "), "]"));
  }
  return absl::OkStatus();
}

SigningCore::SigningCore(std::shared_ptr<const PolicySnapshot> policy,
                         keyset::KeysetManager* keys, audit::AuditLog* audit,
                         Metrics* metrics, Clock clock)
    : policy_(std::move(policy)),
      keys_(keys),
      audit_(audit),
      metrics_(metrics),
      clock_(std::move(clock)) {}

void SigningCore::AuditAsync(audit::AuditRecord r, absl::Status result,
                             SignDone done) {
  audit_->AppendAsync(
      BoundForAudit(std::move(r)),
      [result = std::move(result),
       done = std::move(done)](absl::Status st) mutable {
        if (!st.ok()) {
          std::move(done)(absl::UnavailableError(
              absl::StrCat("audit: decision not recorded: ", st.message(),
                           " (decision: ", result.ToString(), ")")));
          return;
        }
        std::move(done)(std::move(result));
      });
}

void SigningCore::AuditDeniedAsync(std::string_view caller,
                                   std::string_view issuer,
                                   const token::TokenRequest& req,
                                   absl::Status why, SignDone done) {
  audit::AuditRecord r = RecordFor(caller, issuer, req, clock_());
  r.outcome = "denied";
  r.reason = std::string(why.message());
  AuditAsync(std::move(r), std::move(why), std::move(done));
}

absl::Status SigningCore::CheckSignerCaller(std::string_view caller) const {
  std::shared_ptr<const PolicySnapshot> snap = policy();
  if (snap->config.dev) return absl::OkStatus();
  const CallerConfig* c = snap->FindCaller(caller);
  if (c == nullptr) {
    return absl::PermissionDeniedError(
        absl::StrCat("caller: \"", S(caller), "\" is not a configured caller"));
  }
  if (std::find(c->roles.begin(), c->roles.end(), Role::kSigner) ==
      c->roles.end()) {
    return absl::PermissionDeniedError(absl::StrCat(
        "caller: \"", S(caller), "\" lacks the ", RoleName(Role::kSigner),
        " role"));
  }
  return absl::OkStatus();
}

void SigningCore::DenyAsync(std::string_view caller, std::string_view issuer,
                            std::string_view kind, absl::Status why,
                            absl::AnyInvocable<void(absl::Status) &&> done) {
  Enter();
  audit::AuditRecord r;
  r.time = clock_();
  r.caller = std::string(caller);
  r.issuer = std::string(issuer);
  r.kind = std::string(kind);
  r.outcome = "denied";
  r.reason = std::string(why.message());
  AuditAsync(std::move(r), std::move(why),
             [this, done = std::move(done)](
                 absl::StatusOr<token::MintedToken> result) mutable {
               std::move(done)(result.status());
               Done();
             });
}

void SigningCore::Enter() {
  std::lock_guard lock(idle_mu_);
  ++in_flight_;
}

void SigningCore::Done() {
  std::lock_guard lock(idle_mu_);
  if (--in_flight_ == 0) idle_cv_.notify_all();
}

int SigningCore::in_flight() const {
  std::lock_guard lock(idle_mu_);
  return in_flight_;
}

void SigningCore::WaitIdle() {
  std::unique_lock lock(idle_mu_);
  idle_cv_.wait(lock, [this] { return in_flight_ == 0; });
}

void SigningCore::SignAsync(std::string_view caller, std::string_view issuer,
                            const token::TokenRequest& req, absl::Time deadline,
                            SignDone user_done) {
  Enter();
  // Runs the caller's callback exactly once, then leaves the in-flight count.
  SignDone done = [this, user_done = std::move(user_done)](
                      absl::StatusOr<token::MintedToken> result) mutable {
    std::move(user_done)(std::move(result));
    Done();
  };
  std::shared_ptr<const PolicySnapshot> snap = policy();
  auto it = snap->config.issuers.find(std::string(issuer));
  if (it == snap->config.issuers.end()) {
    AuditDeniedAsync(caller, issuer, req, UnknownIssuer(*snap, caller, issuer),
                     std::move(done));
    return;
  }
  const std::string& issuer_label = it->first;  // bounded: a configured issuer
  if (absl::Status st = snap->CheckRole(caller, Role::kSigner, issuer);
      !st.ok()) {
    if (metrics_ != nullptr)
      metrics_->CountDenied(issuer_label, FieldOf(std::string(st.message())));
    AuditDeniedAsync(caller, issuer, req, std::move(st), std::move(done));
    return;
  }
  absl::Time now = clock_();
  // Refusals before signing are decisions too: audited like policy denials.
  if (now >= deadline) {
    AuditDeniedAsync(caller, issuer, req,
                     absl::DeadlineExceededError(
                         "deadline passed before signing; not signed"),
                     std::move(done));
    return;
  }
  auto key = keys_->ActiveKey(issuer);
  if (!key.ok()) {
    AuditDeniedAsync(caller, issuer, req, key.status(), std::move(done));
    return;
  }
  auto start = std::chrono::steady_clock::now();
  // The decision record follows within one Mint: the audit writer may wait for
  // it rather than sync a commit without it (and syncs at once when no token
  // is being signed).
  audit_->ExpectRecords(+1);
  absl::StatusOr<token::MintedToken> minted =
      token::Mint(it->second.policy, **key, req, now);
  audit_->ExpectRecords(-1);
  if (!minted.ok()) {
    // Every Mint failure is a decision: policy (InvalidArgument,
    // PermissionDenied, FailedPrecondition) or a withheld signature.
    absl::StatusCode code = minted.status().code();
    if (metrics_ != nullptr && (code == absl::StatusCode::kInvalidArgument ||
                                code == absl::StatusCode::kPermissionDenied ||
                                code == absl::StatusCode::kFailedPrecondition)) {
      metrics_->CountDenied(issuer_label,
                            FieldOf(std::string(minted.status().message())));
    }
    AuditDeniedAsync(caller, issuer, req, minted.status(), std::move(done));
    return;
  }
  // Mint may have waited (HSM session pool, HSM): a token minted after the
  // deadline is never released, and the log says so.
  ReleaseWhenAudited(RecordFor(caller, issuer, req, now), *std::move(minted),
                     std::move(snap), &issuer_label, req.kind, start, deadline,
                     std::move(done));
}

absl::Status SigningCore::UnknownIssuer(const PolicySnapshot& snap,
                                        std::string_view caller,
                                        std::string_view issuer) {
  if (!snap.config.dev && snap.FindCaller(caller) == nullptr) {
    return absl::PermissionDeniedError(absl::StrCat(
        "caller: \"", S(caller), "\" is not a configured caller"));
  }
  return absl::NotFoundError(
      absl::StrCat("issuer: unknown issuer \"", S(issuer), "\""));
}

void SigningCore::ReleaseWhenAudited(
    audit::AuditRecord r, token::MintedToken minted,
    std::shared_ptr<const PolicySnapshot> snap, const std::string* label,
    token::TokenKind kind, std::chrono::steady_clock::time_point start,
    absl::Time deadline, SignDone done, bool bound) {
  r.kid = minted.kid;
  r.jti = minted.jti;
  r.exp = minted.exp;
  r.ttl = minted.exp - minted.iat;  // the lifetime given, also by default
  r.token_sha256 = audit::Sha256Hex(minted.token);  // reused digest ctx
  r.txn = minted.txn;  // generated when the request had none
  if (clock_() >= deadline) {
    r.outcome = "withheld";
    r.reason = "deadline passed during signing";
    AuditAsync(std::move(r),
               absl::DeadlineExceededError(
                   "deadline passed during signing; token withheld"),
               std::move(done));
    return;
  }
  r.outcome = "signed";
  if (bound) r = BoundForAudit(std::move(r));
  // The writer thread completes the request; `snap` keeps *label alive.
  audit_->AppendAsync(r, [this, snap = std::move(snap), label, kind, start,
                          minted = std::move(minted),
                          done = std::move(done)](absl::Status st) mutable {
    if (!st.ok()) {
      std::move(done)(absl::UnavailableError(absl::StrCat(
          "audit: record not durable, token withheld: ", st.message())));
      return;
    }
    if (metrics_ != nullptr) {
      std::chrono::duration<double> took =
          std::chrono::steady_clock::now() - start;
      metrics_->ObserveSignLatency(took.count());
      metrics_->CountTokenSigned(*label, token::TokenKindName(kind));
    }
    std::move(done)(std::move(minted));
  });
}

absl::StatusOr<token::MintedToken> SigningCore::Sign(
    std::string_view caller, std::string_view issuer,
    const token::TokenRequest& req, absl::Time deadline) {
  std::promise<absl::StatusOr<token::MintedToken>> result;
  std::future<absl::StatusOr<token::MintedToken>> future = result.get_future();
  SignAsync(caller, issuer, req, deadline,
            [&result](absl::StatusOr<token::MintedToken> r) {
              result.set_value(std::move(r));
            });
  return future.get();
}

absl::StatusOr<std::string> SigningCore::Jwks(std::string_view caller,
                                              std::string_view issuer) {
  std::shared_ptr<const PolicySnapshot> snap = policy();
  if (!snap->config.dev && snap->FindCaller(caller) == nullptr) {
    return absl::PermissionDeniedError(
        absl::StrCat("caller: \"", S(caller), "\" is not a configured caller"));
  }
  return keys_->Jwks(issuer);
}

absl::Status SigningCore::AuthorizeAdmin(std::string_view caller,
                                         std::string_view method,
                                         std::string_view issuer,
                                         bool read_only) {
  if (absl::Status h = audit_->health(); !h.ok()) {
    return absl::UnavailableError(
        absl::StrCat("audit: log not accepting records (", h.message(), "); ",
                     S(method), " refused"));
  }
  std::shared_ptr<const PolicySnapshot> snap = policy();
  absl::Status st = snap->CheckRole(caller, Role::kCustodian, issuer);
  if (!st.ok() && read_only &&
      snap->CheckRole(caller, Role::kAuditor, issuer).ok()) {
    st = absl::OkStatus();
  }
  if (st.ok() && !snap->config.issuers.contains(std::string(issuer))) {
    st = absl::NotFoundError(
        absl::StrCat("issuer: unknown issuer \"", S(issuer), "\""));
  }
  if (!st.ok()) {
    if (absl::Status a = AuditAdmin(caller, method, issuer, "", st); !a.ok())
      return a;
  }
  return st;
}

audit::AuditRecord SigningCore::AdminRecord(std::string_view caller,
                                            std::string_view method,
                                            std::string_view issuer) const {
  audit::AuditRecord r;
  r.time = clock_();
  r.caller = std::string(caller);
  r.issuer = std::string(issuer);
  r.kind = absl::StrCat("key_admin.", S(method));
  return r;
}

absl::Status SigningCore::AuditAdminIntent(std::string_view caller,
                                           std::string_view method,
                                           std::string_view issuer,
                                           std::string_view note) {
  audit::AuditRecord r = AdminRecord(caller, method, issuer);
  r.outcome = "requested";
  r.reason = std::string(note);
  if (absl::Status st = audit_->Append(BoundForAudit(std::move(r))); !st.ok()) {
    return absl::UnavailableError(
        absl::StrCat("audit: ", S(method), " not started: its request could "
                     "not be recorded (", st.message(), "); nothing changed"));
  }
  return absl::OkStatus();
}

absl::Status SigningCore::AuditAdmin(std::string_view caller, std::string_view method,
                             std::string_view issuer, std::string_view kid,
                             const absl::Status& outcome) {
  audit::AuditRecord r = AdminRecord(caller, method, issuer);
  r.kid = std::string(kid);
  r.outcome = outcome.ok() ? "done" : "denied";
  r.reason = std::string(outcome.message());
  if (absl::Status st = audit_->Append(BoundForAudit(std::move(r)));
      !st.ok()) {
    return absl::UnavailableError(absl::StrCat(
        "audit: outcome of ", S(method), " not recorded (", st.message(),
        "); the operation ",
        outcome.ok() ? std::string("succeeded")
                     : absl::StrCat("failed: ", outcome.ToString())));
  }
  return absl::OkStatus();
}

}  // namespace tokensign::service
