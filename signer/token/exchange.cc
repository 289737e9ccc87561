#include "signer/token/exchange.h"

#include <algorithm>
#include <limits>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "signer/token/policy_fields.h"

namespace tokensign::token {
namespace {

using policy_fields::Contains;
using policy_fields::Quote;

std::string List(const std::vector<std::string>& v) {
  return v.empty() ? "none" : absl::StrJoin(v, " ");
}

absl::Status CheckKinds(const VerifiedParent& parent,
                        const ExchangeRequest& req) {
  if (parent.kind == TokenKind::kTransactionToken &&
      req.kind == TokenKind::kAccessToken) {
    return absl::PermissionDeniedError(
        "kind: a transaction token cannot be exchanged for an access token; "
        "allowed: transaction_token (replacement)");
  }
  return absl::OkStatus();
}

absl::Status DeriveActors(const VerifiedParent& parent,
                          const ExchangeRequest& req, TokenRequest* child) {
  child->actor_chain.clear();
  if (req.actor.has_value()) {
    const Actor& a = *req.actor;
    if (parent.may_act.has_value()) {
      const Actor& m = *parent.may_act;
      if (a.sub != m.sub || (!m.iss.empty() && a.iss != m.iss)) {
        return absl::PermissionDeniedError(absl::StrCat(
            "actor: ", Quote(a.sub),
            a.iss.empty() ? "" : absl::StrCat(" (iss ", Quote(a.iss), ")"),
            " is not permitted by the subject token's may_act, which names ",
            Quote(m.sub),
            m.iss.empty() ? "" : absl::StrCat(" (iss ", Quote(m.iss), ")")));
      }
    }
    child->actor_chain.push_back(a);
  }
  child->actor_chain.insert(child->actor_chain.end(),
                            parent.actor_chain.begin(),
                            parent.actor_chain.end());
  return absl::OkStatus();
}

absl::Status DeriveScope(const VerifiedParent& parent,
                         const ExchangeRequest& req, TokenRequest* child) {
  if (req.scope.empty()) {
    child->scope = parent.scope;
    return absl::OkStatus();
  }
  for (const std::string& s : req.scope) {
    if (!Contains(parent.scope, s)) {
      return absl::PermissionDeniedError(
          absl::StrCat("scope: ", Quote(s),
                       " is not in the subject token's scope (",
                       List(parent.scope), "); a child's scope is a subset"));
    }
  }
  child->scope = req.scope;
  return absl::OkStatus();
}

absl::Status DeriveAudience(const IssuerPolicy& policy,
                            const VerifiedParent& parent,
                            const ExchangeRequest& req, TokenRequest* child) {
  if (parent.kind == TokenKind::kTransactionToken) {
    // Replacement keeps aud (the trust domain).
    if (!req.audience.empty() && req.audience != parent.aud) {
      return absl::PermissionDeniedError(absl::StrCat(
          "aud: a replacement transaction token keeps the subject token's "
          "aud (",
          List(parent.aud), ")"));
    }
    child->audience = parent.aud;
    return absl::OkStatus();
  }
  if (req.kind == TokenKind::kTransactionToken) {
    const std::string& domain = policy.exchange.trust_domain;
    if (domain.empty()) {
      return absl::FailedPreconditionError(
          "aud: this issuer has no exchange.trust_domain; configure the trust "
          "domain to exchange access tokens for transaction tokens");
    }
    if (!req.audience.empty() &&
        req.audience != std::vector<std::string>{domain}) {
      return absl::PermissionDeniedError(
          absl::StrCat("aud: a transaction token made by exchange is for the "
                       "trust domain ",
                       Quote(domain), " only"));
    }
    child->audience = {domain};
    return absl::OkStatus();
  }
  if (req.audience.empty()) {
    child->audience = parent.aud;
    return absl::OkStatus();
  }
  for (const std::string& a : req.audience) {
    if (Contains(parent.aud, a)) continue;
    bool mapped = false;
    for (const std::string& p : parent.aud) {
      auto it = policy.exchange.audience_map.find(p);
      mapped = mapped || (it != policy.exchange.audience_map.end() &&
                          Contains(it->second, a));
    }
    if (!mapped) {
      return absl::PermissionDeniedError(absl::StrCat(
          "aud: ", Quote(a), " is not in the subject token's audience (",
          List(parent.aud),
          ") and the issuer's exchange.audience_map maps none of those to it"));
    }
  }
  child->audience = req.audience;
  return absl::OkStatus();
}

absl::Status DeriveTtl(const IssuerPolicy& policy, const VerifiedParent& parent,
                       const ExchangeRequest& req, absl::Time now,
                       TokenRequest* child) {
  const int64_t t = absl::ToUnixSeconds(now);
  const int64_t left = parent.exp - t;
  if (left <= 0) {
    return absl::PermissionDeniedError(
        absl::StrCat("exp: the subject token's exp ", parent.exp,
                     " has passed (now ", t, "); nothing left to delegate"));
  }
  if (req.ttl_seconds > left) {
    // t + ttl_seconds overflows int64 for a ttl near INT64_MAX (undefined
    // behaviour, and a wrapped, negative end in the message).
    const bool fits = req.ttl_seconds <= std::numeric_limits<int64_t>::max() - t;
    return absl::PermissionDeniedError(absl::StrCat(
        "exp: ttl_seconds ", req.ttl_seconds, " would end ",
        fits ? absl::StrCat("at ", t + req.ttl_seconds)
             : std::string("past the largest time int64 seconds hold"),
        ", beyond the subject token's exp ", parent.exp, "; at most ", left,
        " s, or 0 for the default cut to it"));
  }
  child->ttl_seconds = req.ttl_seconds;
  if (child->ttl_seconds == 0) {
    child->ttl_seconds = std::min(EffectiveTtl(policy, *child), left);
  }
  return absl::OkStatus();
}

absl::Status DeriveCnf(const IssuerPolicy& policy, const VerifiedParent& parent,
                       const ExchangeRequest& req, TokenRequest* child) {
  child->cnf = parent.cnf;
  if (!req.cnf.has_value() || req.cnf == parent.cnf) return absl::OkStatus();
  if (parent.cnf.has_value() && !policy.exchange.allow_cnf_rebind) {
    return absl::PermissionDeniedError(
        "cnf: the subject token is bound to another key; this issuer does not "
        "allow rebinding on exchange (exchange.allow_cnf_rebind)");
  }
  child->cnf = req.cnf;
  child->parent_cnf = parent.cnf;  // audited with both keys
  return absl::OkStatus();
}

// Replacement context: the parent's members stay as they are; the request may
// add members.
absl::StatusOr<nlohmann::json> MergeContext(const char* field,
                                            const nlohmann::json& parent,
                                            const nlohmann::json& added) {
  if (added.is_null()) return parent;
  if (!added.is_object()) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, ": must be a JSON object"));
  }
  nlohmann::json out = parent.is_object() ? parent : nlohmann::json::object();
  for (const auto& [name, value] : added.items()) {
    auto it = out.find(name);
    if (it != out.end() && *it != value) {
      return absl::PermissionDeniedError(absl::StrCat(
          field, ".", policy_fields::Escaped(name),
          ": changes the subject token's value; a replacement may add "
          "context, never change it"));
    }
    out[name] = value;
  }
  return out;
}

absl::Status DeriveTransaction(const VerifiedParent& parent,
                               const ExchangeRequest& req,
                               TokenRequest* child) {
  if (req.kind != TokenKind::kTransactionToken) {
    if (!req.req_wl.empty() || !req.rctx.is_null() || !req.tctx.is_null()) {
      return absl::InvalidArgumentError(
          "req_wl: req_wl, rctx and tctx are only for transaction tokens; "
          "this is an access_token");
    }
    return absl::OkStatus();
  }
  if (parent.kind == TokenKind::kAccessToken) {
    child->req_wl = req.req_wl;  // txn: generated by Mint
    child->rctx = req.rctx;
    child->tctx = req.tctx;
    return absl::OkStatus();
  }
  child->txn = parent.txn;
  child->req_wl = req.req_wl.empty() ? parent.req_wl : req.req_wl;
  absl::StatusOr<nlohmann::json> rctx =
      MergeContext("rctx", parent.rctx, req.rctx);
  if (!rctx.ok()) return rctx.status();
  absl::StatusOr<nlohmann::json> tctx =
      MergeContext("tctx", parent.tctx, req.tctx);
  if (!tctx.ok()) return tctx.status();
  child->rctx = *std::move(rctx);
  child->tctx = *std::move(tctx);
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<TokenRequest> DeriveChild(const IssuerPolicy& policy,
                                         const VerifiedParent& parent,
                                         const ExchangeRequest& req,
                                         absl::Time now) {
  if (absl::Status s = CheckKinds(parent, req); !s.ok()) return s;
  TokenRequest child;
  child.kind = req.kind;
  child.subject = parent.sub;
  child.client_id = parent.client_id;
  child.parent_jti = parent.jti;
  child.parent_token_sha256 = parent.sha256;
  child.may_act = req.may_act;
  if (absl::Status s = DeriveActors(parent, req, &child); !s.ok()) return s;
  if (absl::Status s = DeriveScope(parent, req, &child); !s.ok()) return s;
  if (absl::Status s = DeriveAudience(policy, parent, req, &child); !s.ok())
    return s;
  if (absl::Status s = DeriveTtl(policy, parent, req, now, &child); !s.ok())
    return s;
  if (absl::Status s = DeriveCnf(policy, parent, req, &child); !s.ok())
    return s;
  if (!parent.status.has_value() && policy.require_status) {
    return absl::PermissionDeniedError(
        "status: the subject token has no status reference and this issuer "
        "requires one (require_status); its children could not be revoked");
  }
  child.status = parent.status;
  child.status_inherited = parent.status.has_value();
  if (absl::Status s = DeriveTransaction(parent, req, &child); !s.ok())
    return s;
  return child;
}

absl::StatusOr<Exchanged> Exchange(const IssuerPolicy& policy,
                                   const SigningKey& key,
                                   const VerifiedParent& parent,
                                   const ExchangeRequest& req, absl::Time now,
                                   TokenRequest* derived) {
  absl::StatusOr<TokenRequest> child = DeriveChild(policy, parent, req, now);
  if (!child.ok()) return child.status();
  absl::StatusOr<MintedToken> minted = Mint(policy, key, *child, now);
  if (!minted.ok()) {
    if (derived != nullptr) *derived = *std::move(child);
    return minted.status();
  }
  // DeriveChild cut the lifetime; checked again on what was signed.
  if (minted->exp > parent.exp) {
    return absl::InternalError(absl::StrCat(
        "exp: minted ", minted->exp, " beyond the subject token's exp ",
        parent.exp, "; token withheld"));
  }
  Exchanged out;
  out.request = *std::move(child);
  out.minted = *std::move(minted);
  return out;
}

}  // namespace tokensign::token
