#include "signer/service/decision_record.h"

#include <utility>
#include <vector>

#include "crypto/str_cat.h"
#include "nlohmann/json.hpp"
#include "signer/audit/audit_format.h"

namespace tokensign::service {
namespace {

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
  absl::StrAppend(note, "; ", AbslView(name), ": ", v->size(), " entries, first ",
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

audit::AuditRecord DenialRecord(std::string_view caller,
                                std::string_view issuer, std::string_view kind,
                                const absl::Status& why, absl::Time now) {
  audit::AuditRecord r;
  r.time = now;
  r.caller = std::string(caller);
  r.issuer = std::string(issuer);
  r.kind = std::string(kind);
  r.outcome = "denied";
  r.reason = std::string(why.message());
  return r;
}

audit::AuditRecord AdminRecord(std::string_view service,
                               std::string_view caller, std::string_view method,
                               std::string_view issuer, absl::Time now) {
  audit::AuditRecord r;
  r.time = now;
  r.caller = std::string(caller);
  r.issuer = std::string(issuer);
  r.kind = absl::StrCat(AbslView(service), ".", AbslView(method));
  return r;
}

audit::AuditRecord ExchangeDenialRecord(std::string_view caller,
                                        std::string_view issuer,
                                        const token::ExchangeRequest& req,
                                        const token::VerifiedParent* parent,
                                        absl::Time now) {
  token::TokenRequest shown;
  shown.kind = req.kind;
  shown.audience = req.audience;
  shown.scope = req.scope;
  shown.ttl_seconds = req.ttl_seconds;
  shown.cnf = req.cnf;
  shown.req_wl = req.req_wl;
  if (req.actor.has_value()) shown.actor_chain.push_back(*req.actor);
  if (parent != nullptr) {
    shown.subject = parent->sub;
    shown.client_id = parent->client_id;
    shown.actor_chain.insert(shown.actor_chain.end(),
                             parent->actor_chain.begin(),
                             parent->actor_chain.end());
    shown.parent_jti = parent->jti;
    shown.parent_token_sha256 = parent->sha256;
    shown.status = parent->status;
  }
  return RecordFor(caller, issuer, shown, now);
}

audit::AuditRecord StatusListRecord(std::string_view caller,
                                    std::string_view issuer,
                                    const token::StatusListRequest& req,
                                    absl::Time now) {
  audit::AuditRecord r;
  r.time = now;
  r.caller = std::string(caller);
  r.issuer = std::string(issuer);
  r.kind = "status_list";
  r.status_uri = req.uri;
  r.ttl = req.lifetime_seconds;
  return r;
}

audit::AuditRecord KeysetEventRecord(const keyset::KeysetEvent& e,
                                     std::string_view event) {
  audit::AuditRecord r;
  r.caller = "tokensignd";
  r.issuer = e.issuer;
  r.kind = absl::StrCat("keyset.", AbslView(event));
  r.kid = e.kid;
  r.outcome = e.kind == keyset::KeysetEvent::Kind::kRejected ? "denied"
                                                               : "observed";
  r.reason = absl::StrCat("generation ", e.old_generation, " -> ",
                          e.new_generation, ": ", e.detail);
  return r;
}

void AddMintedFacts(const token::MintedToken& minted, audit::AuditRecord* r) {
  r->kid = minted.kid;
  r->jti = minted.jti;
  r->exp = minted.exp;
  r->ttl = minted.exp - minted.iat;
  r->token_sha256 = audit::Sha256Hex(minted.token);  // reused digest ctx
  r->txn = minted.txn;
}

void AddStatusListFacts(const token::SignedStatusList& list,
                        audit::AuditRecord* r) {
  r->kid = list.kid;
  r->exp = list.exp;
  r->ttl = list.exp - list.iat;
  r->status_list_size = list.size;
  r->status_list_set = list.set_entries;
  r->token_sha256 = audit::Sha256Hex(list.token);
}

void DecisionLog::RecordAsync(audit::AuditRecord r, Durable durable,
                              Bounding bounding) {
  if (bounding == Bounding::kBounded) r = BoundForAudit(std::move(r));
  log_->AppendAsync(r, std::move(durable));
}

absl::Status DecisionLog::Record(audit::AuditRecord r, Bounding bounding) {
  if (bounding == Bounding::kBounded) r = BoundForAudit(std::move(r));
  return log_->Append(r);
}

}  // namespace tokensign::service
