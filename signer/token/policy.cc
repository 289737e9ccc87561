#include "signer/token/policy.h"

#include <algorithm>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/string_view.h"
#include "crypto/str_cat.h"
#include "signer/token/policy_fields.h"

namespace tokensign::token {
namespace {

// Claim names extra_claims may not carry, compared case-insensitively (so
// "Scope" cannot smuggle a second scope past a case-folding consumer):
// RFC 7519 registered claims; RFC 9068 (client_id, scope, auth_time, acr,
// amr, and the section 2.2.3.1 authorization attributes roles, groups,
// entitlements) and the OIDC ID-token claims it borrows; RFC 8693 act /
// may_act; RFC 7800 cnf; RFC 9396 authorization_details; the common scope
// alias scp; transaction-token claims (txn, req_wl, rctx, tctx, purp, azd,
// sub_id) and RFC 8417 SET claims (events, toe, txn); the JOSE typ; the
// OAuth Token Status List claim status (a verifier would follow it to decide
// whether the token is revoked).
constexpr std::string_view kReservedClaims[] = {
    "acr",     "act",       "amr",    "at_hash",  "aud",
    "auth_time", "authorization_details", "azd", "azp",
    "c_hash",  "client_id", "cnf",    "entitlements", "events",
    "exp",     "groups",    "iat",    "iss",      "jti",
    "may_act", "nbf",       "nonce",  "purp",     "rctx",
    "req_wl",  "roles",     "s_hash", "scope",    "scp",
    "sid",     "status",    "sub",    "sub_id",   "tctx",
    "toe",     "txn",       "typ"};

using policy_fields::AllowedList;
using policy_fields::CheckContext;
using policy_fields::CheckScopeToken;
using policy_fields::CheckString;
using policy_fields::Contains;
using policy_fields::Escaped;
using policy_fields::JsonSize;
using policy_fields::Quote;

absl::Status CheckActors(const IssuerPolicy& policy, const TokenRequest& req) {
  const auto& chain = req.actor_chain;
  const size_t max_depth =
      std::min<size_t>(static_cast<size_t>(std::max(policy.max_chain_depth, 0)),
                       kMaxHardChainDepth);
  std::string prefix;  // "act." repeated (level) times
  if (chain.size() > max_depth) {
    for (size_t i = 0; i <= max_depth; ++i) prefix += "act.";
    return absl::InvalidArgumentError(absl::StrCat(
        prefix, "sub: chain depth ", chain.size(), " exceeds max ", max_depth));
  }
  for (size_t i = 0; i < chain.size(); ++i) {
    prefix += "act.";
    const Actor& actor = chain[i];
    const std::string sub_field = absl::StrCat(prefix, "sub");
    if (absl::Status s =
            CheckString(sub_field, actor.sub, true, "each actor's sub");
        !s.ok()) {
      return s;
    }
    if (absl::Status s =
            CheckString(absl::StrCat(prefix, "iss"), actor.iss, false, "");
        !s.ok()) {
      return s;
    }
    if (policy.any_actor) continue;
    bool known = false;
    bool for_client = false;
    std::vector<std::string> clients;
    for (const ActorRule& rule : policy.allowed_actors) {
      if (rule.sub != actor.sub || (!rule.iss.empty() && rule.iss != actor.iss))
        continue;
      known = true;
      if (rule.clients.empty() || Contains(rule.clients, req.client_id)) {
        for_client = true;
        break;
      }
      clients.insert(clients.end(), rule.clients.begin(), rule.clients.end());
    }
    if (!known) {
      std::vector<std::string> names;
      for (const ActorRule& rule : policy.allowed_actors) {
        names.push_back(rule.iss.empty()
                            ? rule.sub
                            : absl::StrCat(rule.sub, " (iss ", rule.iss, ")"));
      }
      return absl::PermissionDeniedError(absl::StrCat(
          sub_field, ": actor ", Quote(actor.sub),
          actor.iss.empty() ? ""
                            : absl::StrCat(" (iss ", Quote(actor.iss), ")"),
          " is not allowed to act; allowed actors: ", AllowedList(names)));
    }
    if (!for_client) {
      return absl::PermissionDeniedError(absl::StrCat(
          sub_field, ": actor ", Quote(actor.sub),
          " is not allowed to act for client ", Quote(req.client_id),
          "; it may act for: ", AllowedList(clients)));
    }
  }
  return absl::OkStatus();
}

absl::Status CheckCnf(const IssuerPolicy& policy, const TokenRequest& req) {
  if (!req.cnf.has_value()) {
    if (policy.require_cnf) {
      return absl::InvalidArgumentError(
          "cnf: missing; issuer policy requires proof of possession (jkt or "
          "x5t#S256)");
    }
    return absl::OkStatus();
  }
  const Confirmation& cnf = *req.cnf;
  if (cnf.jkt.empty() == cnf.x5t_s256.empty()) {
    return absl::InvalidArgumentError("cnf: set exactly one of jkt, x5t#S256");
  }
  const bool jkt = !cnf.jkt.empty();
  const absl::string_view v = jkt ? cnf.jkt : cnf.x5t_s256;
  const absl::string_view field = jkt ? "cnf.jkt" : "cnf.x5t#S256";
  bool ok = v.size() == 43;
  for (char c : v) {
    ok = ok && ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
                (c >= '0' && c <= '9') || c == '-' || c == '_');
  }
  if (!ok) {
    return absl::InvalidArgumentError(absl::StrCat(
        field, ": ", Quote(v),
        " is not a SHA-256 thumbprint; need 43 base64url characters"));
  }
  // 43 characters carry 258 bits for 256: the last character's 2 low bits are
  // padding and must be 0, or two spellings name one thumbprint.
  const char last = v.back();
  const int index = last >= 'A' && last <= 'Z'   ? last - 'A'
                    : last >= 'a' && last <= 'z' ? last - 'a' + 26
                    : last >= '0' && last <= '9' ? last - '0' + 52
                    : last == '-'                ? 62
                                                 : 63;
  if ((index & 3) != 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        field, ": ", Quote(v), " is not canonical base64url: last character '",
        std::string(1, last),
        "' has non-zero padding bits; encode the 32-byte SHA-256 without "
        "padding bits set"));
  }
  return absl::OkStatus();
}

absl::Status CheckMayAct(const TokenRequest& req) {
  if (!req.may_act.has_value()) return absl::OkStatus();
  if (absl::Status s = CheckString("may_act.sub", req.may_act->sub, true,
                                   "the party that may act");
      !s.ok()) {
    return s;
  }
  return CheckString("may_act.iss", req.may_act->iss, false, "");
}

absl::Status CheckStatus(const IssuerPolicy& policy, const TokenRequest& req) {
  if (!req.status.has_value()) {
    if (policy.require_status) {
      return absl::InvalidArgumentError(
          "status: missing; this issuer requires a status list reference "
          "(require_status): give status.uri and status.idx");
    }
    return absl::OkStatus();
  }
  const StatusReference& st = *req.status;
  if (absl::Status s = CheckString("status.uri", st.uri, true,
                                   "the status list URI");
      !s.ok()) {
    return s;
  }
  if (st.idx < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("status.idx: ", st.idx, " is negative; an index is >= 0"));
  }
  // A reference copied by exchange from a verified parent names the list of
  // the parent's issuer; it is carried unchanged.
  if (req.status_inherited) return absl::OkStatus();
  std::vector<std::string> uris;
  for (const StatusListConfig& list : policy.status_lists) {
    if (list.uri != st.uri) {
      uris.push_back(list.uri);
      continue;
    }
    if (st.idx >= list.size) {
      return absl::InvalidArgumentError(
          absl::StrCat("status.idx: ", st.idx, " is outside the list ",
                       Quote(list.uri), " of ", list.size,
                       " entries; allowed: 0..", list.size - 1));
    }
    return absl::OkStatus();
  }
  return absl::PermissionDeniedError(
      absl::StrCat("status.uri: ", Quote(st.uri),
                   " is not one of this issuer's status lists; configured: ",
                   AllowedList(uris)));
}

absl::Status CheckExtraClaims(const IssuerPolicy& policy,
                              const nlohmann::json& extra) {
  if (extra.is_null()) return absl::OkStatus();
  if (!extra.is_object()) {
    return absl::InvalidArgumentError(
        absl::StrCat("extra_claims: must be a JSON object or null; got ",
                     extra.type_name()));
  }
  for (const auto& item : extra.items()) {
    const std::string& name = item.key();
    const std::string field = ExtraClaimField(name);
    if (name.empty() || name.size() > kMaxClaimNameBytes) {
      return absl::InvalidArgumentError(
          absl::StrCat(field, ": name of ", name.size(), " bytes; a claim name "
                       "is 1..", kMaxClaimNameBytes, " bytes"));
    }
    for (char ch : name) {
      const auto c = static_cast<unsigned char>(ch);
      if (c < 0x21 || c > 0x7E || c == '"' || c == '\\') {
        return absl::InvalidArgumentError(absl::StrFormat(
            "%s: name contains byte 0x%02x; a claim name is printable ASCII "
            "(0x21..0x7E) without \" or \\",
            field, c));
      }
    }
    if (IsReservedClaim(name)) {
      return absl::InvalidArgumentError(absl::StrCat(
          field,
          ": is a registered, authorization or service-set claim (names "
          "compare case-insensitively); extra claims may not overwrite it (set "
          "it through its request field, if it has one)"));
    }
    // Fail closed: only names the issuer listed, unless it opted into any.
    if (!policy.any_extra_claims &&
        !Contains(policy.allowed_extra_claims, name)) {
      return absl::PermissionDeniedError(absl::StrCat(
          field, ": not in the issuer's extra_claims allowlist; ",
          policy.allowed_extra_claims.empty()
              ? "this issuer allows no extra claims (list the names in its "
                "extra_claims, or [\"*\"] for any non-reserved name)"
              : absl::StrCat("allowed: ",
                             AllowedList(policy.allowed_extra_claims))));
    }
  }
  absl::StatusOr<size_t> size = JsonSize("extra_claims", extra);
  if (!size.ok()) return size.status();
  if (static_cast<int64_t>(*size) > policy.max_extra_claims_bytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("extra_claims: ", *size, " bytes serialized exceeds max ",
                     policy.max_extra_claims_bytes));
  }
  return absl::OkStatus();
}

}  // namespace

bool IsReservedClaim(std::string_view name) {
  for (std::string_view reserved : kReservedClaims) {
    if (absl::EqualsIgnoreCase(
            AbslView(reserved),
            AbslView(name))) {
      return true;
    }
  }
  return false;
}

bool IsWellFormedClaimName(std::string_view name) {
  if (name.empty() || name.size() > kMaxClaimNameBytes) return false;
  for (char ch : name) {
    const auto c = static_cast<unsigned char>(ch);
    if (c < 0x21 || c > 0x7E || c == '"' || c == '\\') return false;
  }
  return true;
}

std::string ExtraClaimField(std::string_view name) {
  bool identifier = !name.empty() && name.size() <= 64 &&
                    !(name[0] >= '0' && name[0] <= '9');
  for (char c : name) {
    identifier = identifier && ((c >= 'a' && c <= 'z') ||
                                (c >= 'A' && c <= 'Z') ||
                                (c >= '0' && c <= '9') || c == '_');
  }
  if (identifier) return absl::StrCat("extra_claims.", AbslView(name));
  return absl::StrCat("extra_claims[\"", Escaped(AbslView(name)), "\"]");
}

int64_t EffectiveTtl(const IssuerPolicy& policy, const TokenRequest& req) {
  if (req.ttl_seconds != 0) return req.ttl_seconds;
  return req.kind == TokenKind::kAccessToken ? policy.default_ttl_access
                                             : policy.default_ttl_transaction;
}

absl::Status CheckRequest(const IssuerPolicy& policy, const TokenRequest& req) {
  const bool txn_token = req.kind == TokenKind::kTransactionToken;
  // Kind.
  if (std::find(policy.allowed_kinds.begin(), policy.allowed_kinds.end(),
                req.kind) == policy.allowed_kinds.end()) {
    std::vector<std::string> kinds;
    for (TokenKind k : policy.allowed_kinds) kinds.push_back(TokenKindName(k));
    return absl::PermissionDeniedError(absl::StrCat(
        "kind: ", TokenKindName(req.kind),
        " is not allowed by this issuer; allowed: ", AllowedList(kinds)));
  }
  // Who.
  if (absl::Status s =
          CheckString("sub", req.subject, true, "the subject (who delegated)");
      !s.ok()) {
    return s;
  }
  if (absl::Status s =
          CheckString("client_id", req.client_id, true, "the client id");
      !s.ok()) {
    return s;
  }
  // Where.
  if (req.audience.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("aud: empty; give at least one of: ",
                     AllowedList(policy.allowed_audiences)));
  }
  if (req.audience.size() > kMaxAudiences) {
    return absl::InvalidArgumentError(absl::StrCat("aud: ", req.audience.size(),
                                                   " audiences exceeds max ",
                                                   kMaxAudiences));
  }
  if (txn_token && req.audience.size() != 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("aud: ", req.audience.size(),
                     " audiences; a transaction token takes exactly one (the "
                     "trust domain)"));
  }
  for (size_t i = 0; i < req.audience.size(); ++i) {
    const std::string field = absl::StrCat("aud[", i, "]");
    if (absl::Status s =
            CheckString(field, req.audience[i], true, "each audience");
        !s.ok()) {
      return s;
    }
    for (size_t j = 0; j < i; ++j) {
      if (req.audience[j] == req.audience[i]) {
        return absl::InvalidArgumentError(
            absl::StrCat(field, ": ", Quote(req.audience[i]), " repeats aud[",
                         j, "]; list each once"));
      }
    }
    if (!Contains(policy.allowed_audiences, req.audience[i])) {
      return absl::PermissionDeniedError(
          absl::StrCat(field, ": ", Quote(req.audience[i]),
                       " is not an allowed audience; allowed: ",
                       AllowedList(policy.allowed_audiences)));
    }
  }
  // What.
  if (req.scope.size() > kMaxScopes) {
    return absl::InvalidArgumentError(absl::StrCat(
        "scope: ", req.scope.size(), " scopes exceeds max ", kMaxScopes));
  }
  for (size_t i = 0; i < req.scope.size(); ++i) {
    const std::string field = absl::StrCat("scope[", i, "]");
    if (absl::Status s = CheckScopeToken(field, req.scope[i]); !s.ok())
      return s;
    for (size_t j = 0; j < i; ++j) {
      if (req.scope[j] == req.scope[i]) {
        return absl::InvalidArgumentError(
            absl::StrCat(field, ": ", Quote(req.scope[i]), " repeats scope[", j,
                         "]; list each once"));
      }
    }
    if (!Contains(policy.allowed_scopes, req.scope[i])) {
      return absl::PermissionDeniedError(
          absl::StrCat(field, ": ", Quote(req.scope[i]),
                       " is not an allowed scope; allowed: ",
                       AllowedList(policy.allowed_scopes)));
    }
  }
  // How long.
  const int64_t max_ttl =
      txn_token ? policy.max_ttl_transaction : policy.max_ttl_access;
  if (req.ttl_seconds < 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "ttl_seconds: ", req.ttl_seconds,
        " is negative; allowed: 0 (issuer default) or 1..", max_ttl));
  }
  if (req.ttl_seconds > max_ttl) {
    return absl::InvalidArgumentError(absl::StrCat(
        "ttl_seconds: ", req.ttl_seconds, " exceeds max ", max_ttl, " for ",
        TokenKindName(req.kind), "; allowed: 1..", max_ttl));
  }
  if (EffectiveTtl(policy, req) <= 0 || EffectiveTtl(policy, req) > max_ttl) {
    return absl::FailedPreconditionError(
        absl::StrCat("ttl_seconds: issuer default ", EffectiveTtl(policy, req),
                     " for ", TokenKindName(req.kind), " is outside 1..",
                     max_ttl, "; fix the issuer policy"));
  }
  // Through whom.
  if (absl::Status s = CheckActors(policy, req); !s.ok()) return s;
  if (absl::Status s = CheckMayAct(req); !s.ok()) return s;
  // Proof of possession.
  if (absl::Status s = CheckCnf(policy, req); !s.ok()) return s;
  // Revocation.
  if (absl::Status s = CheckStatus(policy, req); !s.ok()) return s;
  // Transaction-token claims (draft-ietf-oauth-transaction-tokens-10: txn,
  // sub, aud, scope, req_wl, iat, exp are required; Mint generates txn).
  if (!txn_token) {
    if (!req.txn.empty() || !req.req_wl.empty()) {
      return absl::InvalidArgumentError(absl::StrCat(
          req.txn.empty() ? "req_wl" : "txn",
          ": only allowed in transaction tokens; this is an access_token"));
    }
  } else {
    if (req.req_wl.empty()) {
      return absl::InvalidArgumentError(
          "req_wl: empty; a transaction token requires the requesting "
          "workload (draft-ietf-oauth-transaction-tokens-10)");
    }
    if (req.scope.empty()) {
      return absl::InvalidArgumentError(
          "scope: empty; a transaction token requires a scope "
          "(draft-ietf-oauth-transaction-tokens-10)");
    }
  }
  if (absl::Status s = CheckString("txn", req.txn, false, ""); !s.ok())
    return s;
  if (absl::Status s = CheckString("req_wl", req.req_wl, false, ""); !s.ok())
    return s;
  if (absl::Status s = CheckContext("rctx", req.rctx, req.kind); !s.ok())
    return s;
  if (absl::Status s = CheckContext("tctx", req.tctx, req.kind); !s.ok())
    return s;
  // Audit linkage: goes into every audit record.
  if (req.parent_jti.size() > kMaxParentJtiBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("parent_jti: ", req.parent_jti.size(),
                     " bytes exceeds max ", kMaxParentJtiBytes));
  }
  for (char ch : req.parent_jti) {
    const auto c = static_cast<unsigned char>(ch);
    if (c < 0x21 || c > 0x7E) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "parent_jti: contains byte 0x%02x; a jti is printable ASCII "
          "(0x21..0x7E) without spaces",
          c));
    }
  }
  // Anything else.
  return CheckExtraClaims(policy, req.extra_claims);
}

}  // namespace tokensign::token
