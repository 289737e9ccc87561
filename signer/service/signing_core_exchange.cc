// SigningCore::ExchangeAsync and SignStatusListAsync (see signing_core.h):
// token exchange with a verified parent, and Token Status List signing.
#include <algorithm>
#include <chrono>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "crypto/str_cat.h"
#include "signer/service/http/metrics.h"
#include "signer/service/signing_core.h"
#include "signer/token/parent_token.h"

namespace tokensign::service {
namespace {

// The key that verifies a parent whose iss claim is `iss` and header kid is
// `kid`, for a child signed by `issuer`: among the configured issuers with
// that iss value, the issuer itself and those it trusts, a key that verifies
// their tokens now.
absl::StatusOr<token::ParentKey> ParentKeyFor(const PolicySnapshot& snap,
                                              const keyset::KeysetManager& keys,
                                              const std::string& issuer,
                                              std::string_view iss,
                                              std::string_view kid) {
  const IssuerConfig& self = snap.config.issuers.at(issuer);
  const auto& trusted = self.policy.exchange.trusted_parent_issuers;
  std::vector<std::string> named, allowed;
  for (const auto& [name, ic] : snap.config.issuers) {
    if (ic.policy.iss != iss) continue;
    named.push_back(name);
    if (name == issuer ||
        std::find(trusted.begin(), trusted.end(), name) != trusted.end()) {
      allowed.push_back(name);
    }
  }
  const std::string quoted_iss =
      absl::StrCat("\"", AbslView(iss).substr(0, 128), "\"");
  if (named.empty()) {
    return absl::PermissionDeniedError(
        absl::StrCat("subject_token: iss ", quoted_iss,
                     " is not an issuer of this service; only tokens it "
                     "issued are exchanged"));
  }
  if (allowed.empty()) {
    return absl::PermissionDeniedError(absl::StrCat(
        "subject_token: issued by issuer \"", absl::StrJoin(named, "\", \""),
        "\" (iss ", quoted_iss, "), which issuer \"", issuer,
        "\" does not trust; trusted: itself",
        trusted.empty() ? "" : absl::StrCat(", ", absl::StrJoin(trusted, ", ")),
        " (exchange.trusted_parent_issuers)"));
  }
  for (const std::string& name : allowed) {
    auto key = keys.VerificationKeyFor(name, kid);
    if (!key.ok()) continue;
    token::ParentKey out{key->public_key, key->alg, name, nullptr};
    // Most parents were signed by the issuer's active key: verify with its
    // prepared contexts (same kid = same public key: kid is its thumbprint).
    auto active = keys.ActiveKey(name);
    if (active.ok() && (*active)->kid == kid && (*active)->alg == key->alg &&
        (*active)->signer != nullptr) {
      out.verifier = (*active)->signer;
    }
    return out;
  }
  return absl::PermissionDeniedError(absl::StrCat(
      "subject_token: kid \"", AbslView(kid).substr(0, 128),
      "\" is not a key that verifies tokens of issuer \"",
      absl::StrJoin(allowed, "\", \""),
      "\" now (unknown, withdrawn, destroyed or expired from the JWKS)"));
}

}  // namespace

void SigningCore::ExchangeAsync(std::string_view caller,
                                std::string_view issuer,
                                std::string subject_token,
                                token::ExchangeRequest xreq,
                                absl::Time deadline, SignDone user_done) {
  Enter();
  SignDone done = [this, user_done = std::move(user_done)](
                      absl::StatusOr<token::MintedToken> result) mutable {
    std::move(user_done)(std::move(result));
    Done();
  };
  std::shared_ptr<const PolicySnapshot> snap = policy();
  const absl::Time now = clock_();
  auto deny = [&](absl::Status why, const token::VerifiedParent* parent,
                  const token::TokenRequest* derived) {
    audit::AuditRecord r =
        derived != nullptr ? RecordFor(caller, issuer, *derived, now)
                           : ExchangeDenialRecord(caller, issuer, xreq, parent,
                                                  now);
    r.outcome = "denied";
    r.reason = std::string(why.message());
    decisions_.SettleAsync<token::MintedToken>(std::move(r), std::move(why),
                                               std::move(done));
  };
  absl::StatusOr<IssuerEntry> it =
      Admit(*snap, caller, issuer, Role::kSigner, now, deadline);
  if (!it.ok()) {
    deny(it.status(), nullptr, nullptr);
    return;
  }
  const std::string& label = (*it)->first;
  auto start = std::chrono::steady_clock::now();
  audit_->ExpectRecords(+1);
  absl::StatusOr<token::VerifiedParent> parent = token::VerifyParent(
      subject_token,
      [&](std::string_view iss, std::string_view kid) {
        return ParentKeyFor(*snap, *keys_, label, iss, kid);
      },
      now, absl::Seconds(snap->config.server.clock_skew_seconds));
  token::TokenRequest derived;
  bool have_derived = false;
  absl::StatusOr<token::Exchanged> out = absl::UnknownError("not exchanged");
  if (!parent.ok()) {
    out = parent.status();
  } else if (auto key = keys_->ActiveKey(issuer); !key.ok()) {
    out = key.status();
  } else {
    out = token::Exchange((*it)->second.policy, **key, *parent, xreq, now,
                          &derived);
    have_derived = !derived.subject.empty();
  }
  audit_->ExpectRecords(-1);
  if (!out.ok()) {
    CountPolicyDenial(label, out.status());
    deny(out.status(), parent.ok() ? &*parent : nullptr,
         have_derived ? &derived : nullptr);
    return;
  }
  // The record carries the exchange's facts (the parent's jti and hash) and
  // is bounded like a denial before it is written.
  ReleaseWhenAudited(RecordFor(caller, issuer, out->request, now),
                     std::move(out->minted), std::move(snap), &label,
                     xreq.kind, start, deadline, std::move(done),
                     /*bound=*/true);
}

void SigningCore::SignStatusListAsync(std::string_view caller,
                                      std::string_view issuer,
                                      token::StatusListRequest req,
                                      absl::Time deadline,
                                      StatusListDone user_done) {
  Enter();
  std::shared_ptr<const PolicySnapshot> snap = policy();
  const absl::Time now = clock_();
  audit::AuditRecord r = StatusListRecord(caller, issuer, req, now);
  // Appends `r` (bounded) and hands `result` to the caller once durable.
  auto finish = [this](audit::AuditRecord rec,
                       absl::StatusOr<token::SignedStatusList> result,
                       StatusListDone done) {
    decisions_.SettleAsync<token::SignedStatusList>(
        std::move(rec), std::move(result),
        [this, done = std::move(done)](
            absl::StatusOr<token::SignedStatusList> settled) mutable {
          std::move(done)(std::move(settled));
          Done();
        });
  };
  auto deny = [&](absl::Status why) {
    r.outcome = "denied";
    r.reason = std::string(why.message());
    finish(std::move(r), std::move(why), std::move(user_done));
  };
  absl::StatusOr<IssuerEntry> it =
      Admit(*snap, caller, issuer, Role::kStatusPublisher, now, deadline);
  if (!it.ok()) {
    deny(it.status());
    return;
  }
  auto key = keys_->ActiveKey(issuer);
  if (!key.ok()) {
    deny(key.status());
    return;
  }
  absl::StatusOr<token::SignedStatusList> signed_list =
      token::SignStatusList((*it)->second.policy, **key, req, now);
  if (!signed_list.ok()) {
    CountPolicyDenial((*it)->first, signed_list.status());
    deny(signed_list.status());
    return;
  }
  AddStatusListFacts(*signed_list, &r);
  if (clock_() >= deadline) {
    r.outcome = "withheld";
    r.reason = "deadline passed during signing";
    finish(std::move(r),
           absl::DeadlineExceededError(
               "deadline passed during signing; status list withheld"),
           std::move(user_done));
    return;
  }
  r.outcome = "signed";
  finish(std::move(r), std::move(signed_list), std::move(user_done));
}

}  // namespace tokensign::service
