#include "signer/service/policy_snapshot.h"

#include <algorithm>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "crypto/str_cat.h"

namespace tokensign::service {
namespace {

absl::Status NotConfigured(std::string_view caller) {
  return absl::PermissionDeniedError(
      absl::StrCat("caller: \"", AbslView(caller), "\" is not a configured caller"));
}

bool HasRole(const CallerConfig& c, Role role) {
  return std::find(c.roles.begin(), c.roles.end(), role) != c.roles.end();
}

absl::Status LacksRole(std::string_view caller, Role role) {
  return absl::PermissionDeniedError(absl::StrCat(
      "caller: \"", AbslView(caller), "\" lacks the ", RoleName(role), " role"));
}

}  // namespace

const CallerConfig* PolicySnapshot::FindCaller(std::string_view id) const {
  for (const CallerConfig& c : config.callers) {
    if (c.id == id) return &c;
  }
  return nullptr;
}

const IssuerConfig* PolicySnapshot::FindIssuer(std::string_view name) const {
  auto it = config.issuers.find(std::string(name));
  return it == config.issuers.end() ? nullptr : &it->second;
}

absl::Status PolicySnapshot::CheckKnownCaller(std::string_view caller) const {
  if (config.dev || FindCaller(caller) != nullptr) return absl::OkStatus();
  return NotConfigured(caller);
}

absl::Status PolicySnapshot::CheckCallerRole(std::string_view caller,
                                             Role role) const {
  if (config.dev) return absl::OkStatus();
  const CallerConfig* c = FindCaller(caller);
  if (c == nullptr) return NotConfigured(caller);
  if (!HasRole(*c, role)) return LacksRole(caller, role);
  return absl::OkStatus();
}

absl::Status PolicySnapshot::CheckRole(std::string_view caller, Role role,
                                       std::string_view issuer) const {
  if (config.dev) return absl::OkStatus();
  const CallerConfig* c = FindCaller(caller);
  if (c == nullptr) return NotConfigured(caller);
  if (!HasRole(*c, role)) return LacksRole(caller, role);
  // Every role is scoped to the caller's issuers: a custodian of one issuer
  // cannot rotate or destroy another issuer's keys.
  bool covered = std::any_of(
      c->issuers.begin(), c->issuers.end(),
      [&](const std::string& i) { return i == "*" || i == issuer; });
  if (!covered) {
    return absl::PermissionDeniedError(absl::StrCat(
        "issuer: caller \"", AbslView(caller), "\" may not ",
        role == Role::kSigner ? "sign" : absl::StrCat("act as ", RoleName(role)),
        " for issuer \"", AbslView(issuer), "\"; its issuers are [",
        absl::StrJoin(c->issuers, ", "), "]"));
  }
  return absl::OkStatus();
}

absl::Status PolicySnapshot::CheckRoleOr(std::string_view caller, Role role,
                                         Role fallback,
                                         std::string_view issuer) const {
  absl::Status st = CheckRole(caller, role, issuer);
  if (!st.ok() && CheckRole(caller, fallback, issuer).ok())
    return absl::OkStatus();
  return st;
}

absl::Status PolicySnapshot::CheckKeyAdmin(std::string_view caller,
                                           std::string_view issuer,
                                           bool read_only) const {
  absl::Status st =
      read_only ? CheckRoleOr(caller, Role::kCustodian, Role::kAuditor, issuer)
                : CheckRole(caller, Role::kCustodian, issuer);
  if (!st.ok()) return st;
  if (FindIssuer(issuer) == nullptr) {
    return absl::NotFoundError(
        absl::StrCat("issuer: unknown issuer \"", AbslView(issuer), "\""));
  }
  return absl::OkStatus();
}

absl::Status PolicySnapshot::UnknownIssuer(std::string_view caller,
                                           std::string_view issuer) const {
  if (absl::Status st = CheckKnownCaller(caller); !st.ok()) return st;
  return absl::NotFoundError(
      absl::StrCat("issuer: unknown issuer \"", AbslView(issuer), "\""));
}

}  // namespace tokensign::service
