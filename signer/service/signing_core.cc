#include "signer/service/signing_core.h"

#include <algorithm>
#include <chrono>
#include <future>
#include <utility>

#include "absl/strings/str_cat.h"
#include "signer/audit/audit_format.h"
#include "signer/service/http/metrics.h"

namespace tokensign::service {
namespace {

absl::string_view S(std::string_view s) {
  return absl::string_view(s.data(), s.size());
}

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
  r.parent_jti = req.parent_jti;
  return r;
}

}  // namespace

std::string FieldOf(std::string_view message) {
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
  if (role == Role::kSigner) {
    bool covered = std::any_of(
        c->issuers.begin(), c->issuers.end(),
        [&](const std::string& i) { return i == "*" || i == issuer; });
    if (!covered) {
      return absl::PermissionDeniedError(
          absl::StrCat("issuer: caller \"", S(caller),
                       "\" may not sign for issuer \"", S(issuer), "\""));
    }
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

void SigningCore::AuditDeniedAsync(std::string_view caller,
                                   std::string_view issuer,
                                   const token::TokenRequest& req,
                                   absl::Status why, SignDone done) {
  audit::AuditRecord r = RecordFor(caller, issuer, req, clock_());
  r.outcome = "denied";
  r.reason = std::string(why.message());
  audit_->AppendAsync(r, [why = std::move(why),
                          done = std::move(done)](absl::Status st) mutable {
    if (!st.ok()) {
      std::move(done)(absl::UnavailableError(
          absl::StrCat("audit: denial not recorded: ", st.message())));
      return;
    }
    std::move(done)(std::move(why));
  });
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
  {
    std::lock_guard lock(idle_mu_);
    ++in_flight_;
  }
  // Runs the caller's callback exactly once, then leaves the in-flight count.
  SignDone done = [this, user_done = std::move(user_done)](
                      absl::StatusOr<token::MintedToken> result) mutable {
    std::move(user_done)(std::move(result));
    Done();
  };
  std::shared_ptr<const PolicySnapshot> snap = policy();
  auto it = snap->config.issuers.find(std::string(issuer));
  if (it == snap->config.issuers.end()) {
    absl::Status st = absl::NotFoundError(
        absl::StrCat("issuer: unknown issuer \"", S(issuer), "\""));
    if (!snap->config.dev && snap->FindCaller(caller) == nullptr) {
      st = absl::PermissionDeniedError(absl::StrCat(
          "caller: \"", S(caller), "\" is not a configured caller"));
    }
    AuditDeniedAsync(caller, issuer, req, std::move(st), std::move(done));
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
  if (now >= deadline) {
    std::move(done)(absl::DeadlineExceededError(
        "deadline passed before signing; not signed"));
    return;
  }
  auto key = keys_->ActiveKey(issuer);
  if (!key.ok()) {
    std::move(done)(key.status());
    return;
  }
  auto start = std::chrono::steady_clock::now();
  absl::StatusOr<token::MintedToken> minted =
      token::Mint(it->second.policy, **key, req, now);
  if (!minted.ok()) {
    absl::StatusCode code = minted.status().code();
    if (code == absl::StatusCode::kInvalidArgument ||
        code == absl::StatusCode::kPermissionDenied) {
      if (metrics_ != nullptr) {
        metrics_->CountDenied(issuer_label,
                              FieldOf(std::string(minted.status().message())));
      }
      AuditDeniedAsync(caller, issuer, req, minted.status(), std::move(done));
      return;
    }
    std::move(done)(minted.status());
    return;
  }
  audit::AuditRecord r = RecordFor(caller, issuer, req, now);
  r.kid = minted->kid;
  r.jti = minted->jti;
  r.exp = minted->exp;
  r.token_sha256 = audit::Sha256Hex(minted->token);  // reused digest ctx
  r.outcome = "signed";
  // The writer thread completes the request; `snap` keeps *label alive.
  const std::string* label = &issuer_label;
  audit_->AppendAsync(r, [this, snap = std::move(snap), label, kind = req.kind,
                          start, minted = std::move(*minted),
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
  if (!st.ok()) AuditAdmin(caller, method, issuer, "", st);
  return st;
}

void SigningCore::AuditAdmin(std::string_view caller, std::string_view method,
                             std::string_view issuer, std::string_view kid,
                             const absl::Status& outcome) {
  audit::AuditRecord r;
  r.time = clock_();
  r.caller = std::string(caller);
  r.issuer = std::string(issuer);
  r.kind = absl::StrCat("key_admin.", S(method));
  r.kid = std::string(kid);
  r.outcome = outcome.ok() ? "done" : "denied";
  r.reason = std::string(outcome.message());
  (void)audit_->Append(r);  // best effort: the key operation already happened
}

}  // namespace tokensign::service
