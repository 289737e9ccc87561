// One [issuers.NAME] section of the config: algorithm and claims policy,
// actors, status lists, exchange rules and key lifecycle.
#include <algorithm>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "crypto/algorithm.h"
#include "signer/service/config_reader.h"

namespace tokensign::service::config_internal {
namespace {

absl::Status ParseActors(TableReader& r, std::vector<token::ActorRule>* out) {
  const toml::node* n = r.Get("actors");
  if (n == nullptr) return absl::OkStatus();
  const toml::array* arr = n->as_array();
  std::string path = r.KeyPath("actors");
  if (arr == nullptr)
    return Bad(path, "must be an array of tables ([[...actors]])");
  for (size_t i = 0; i < arr->size(); ++i) {
    std::string item_path = absl::StrCat(path, "[", i, "]");
    const toml::table* t = arr->get(i)->as_table();
    if (t == nullptr) return Bad(item_path, "must be a table");
    TableReader ar(*t, item_path);
    token::ActorRule rule;
    RETURN_IF_ERROR(ar.String("sub", &rule.sub));
    RETURN_IF_ERROR(ar.String("iss", &rule.iss));
    RETURN_IF_ERROR(ar.StringList("clients", &rule.clients));
    RETURN_IF_ERROR(ar.CheckUnknown());
    if (rule.sub.empty()) return Bad(ar.KeyPath("sub"), "required");
    out->push_back(std::move(rule));
  }
  return absl::OkStatus();
}

// Key lifecycle settings of an issuer (see keyset/lifecycle.h).
absl::Status ParseKeyLifecycle(TableReader& r, IssuerConfig* out) {
  std::vector<std::string> algs;
  RETURN_IF_ERROR(r.StringList("algorithms", &algs));
  out->algorithms.clear();
  for (size_t i = 0; i < algs.size(); ++i) {
    auto alg = crypto::ParseSignAlgorithm(algs[i]);
    if (!alg) {
      return Bad(absl::StrCat(r.KeyPath("algorithms"), "[", i, "]"),
                 absl::StrCat("must be ES256, ES384, EdDSA, PS256 or RS256, "
                              "got \"", algs[i], "\""));
    }
    out->algorithms.push_back(*alg);
  }
  if (out->algorithms.empty()) {
    out->algorithms.push_back(out->algorithm);
  } else if (std::find(out->algorithms.begin(), out->algorithms.end(),
                       out->algorithm) == out->algorithms.end()) {
    return Bad(r.KeyPath("algorithm"),
               "must be one of the issuer's algorithms (the default for new "
               "keys)");
  }
  auto period = ParseDuration(r, "rotation_period");
  if (!period.ok()) return period.status();
  if (*period != 0 && *period < 10) {
    return Bad(r.KeyPath("rotation_period"),
               absl::StrCat("must be 0 (off) or at least 10 s, got ", *period));
  }
  out->rotation_period = *period;
  RETURN_IF_ERROR(r.Integer("publish_lead_seconds", &out->publish_lead_seconds,
                            0, 30 * 86400));
  RETURN_IF_ERROR(
      r.Integer("max_published_keys", &out->max_published_keys, 2, 64));
  return absl::OkStatus();
}

// [[issuers.X.status_lists]] (uri, size, bits) and require_status.
absl::Status ParseStatusLists(TableReader& r, token::IssuerPolicy* p) {
  RETURN_IF_ERROR(r.Bool("require_status", &p->require_status));
  const toml::node* n = r.Get("status_lists");
  const std::string path = r.KeyPath("status_lists");
  if (n != nullptr) {
    const toml::array* arr = n->as_array();
    if (arr == nullptr)
      return Bad(path, "must be an array of tables ([[...status_lists]])");
    for (size_t i = 0; i < arr->size(); ++i) {
      const std::string item = absl::StrCat(path, "[", i, "]");
      const toml::table* t = arr->get(i)->as_table();
      if (t == nullptr) return Bad(item, "must be a table");
      TableReader lr(*t, item);
      token::StatusListConfig list;
      RETURN_IF_ERROR(lr.String("uri", &list.uri));
      RETURN_IF_ERROR(
          lr.Integer("size", &list.size, 1, token::kMaxStatusListSize));
      RETURN_IF_ERROR(lr.Integer("bits", &list.bits, 1, 8));
      RETURN_IF_ERROR(lr.CheckUnknown());
      if (list.uri.empty()) return Bad(lr.KeyPath("uri"), "required");
      if (lr.Get("size") == nullptr) return Bad(lr.KeyPath("size"), "required");
      if (list.bits != 1 && list.bits != 2 && list.bits != 4 && list.bits != 8)
        return Bad(lr.KeyPath("bits"), "must be 1, 2, 4 or 8");
      if (list.size * list.bits > token::kMaxStatusListBytes * 8) {
        return Bad(lr.KeyPath("size"),
                   absl::StrCat("size x bits must fit ",
                                token::kMaxStatusListBytes, " bytes"));
      }
      for (const token::StatusListConfig& prev : p->status_lists) {
        if (prev.uri == list.uri)
          return Bad(lr.KeyPath("uri"),
                     absl::StrCat("duplicate \"", list.uri, "\""));
      }
      p->status_lists.push_back(std::move(list));
    }
  }
  if (p->require_status && p->status_lists.empty())
    return Bad(r.KeyPath("require_status"), "needs at least one status_lists entry");
  return absl::OkStatus();
}

// [issuers.X.exchange]: trusted_parent_issuers (checked against the issuers
// by ParseConfig), trust_domain, allow_cnf_rebind, audience_map.
absl::Status ParseExchange(TableReader& r, token::IssuerPolicy* p) {
  absl::StatusOr<const toml::table*> t = SubTable(r, "exchange");
  if (!t.ok()) return t.status();
  if (*t == nullptr) return absl::OkStatus();
  TableReader er(**t, r.KeyPath("exchange"));
  token::ExchangePolicy& x = p->exchange;
  RETURN_IF_ERROR(
      er.StringList("trusted_parent_issuers", &x.trusted_parent_issuers));
  RETURN_IF_ERROR(er.String("trust_domain", &x.trust_domain));
  RETURN_IF_ERROR(er.Bool("allow_cnf_rebind", &x.allow_cnf_rebind));
  absl::StatusOr<const toml::table*> map = SubTable(er, "audience_map");
  if (!map.ok()) return map.status();
  if (*map != nullptr) {
    TableReader mr(**map, er.KeyPath("audience_map"));
    for (auto&& [k, v] : **map) {
      const std::string from(k.str());
      std::vector<std::string> to;
      RETURN_IF_ERROR(mr.StringList(from, &to));
      for (const std::string& a : to) {
        if (std::find(p->allowed_audiences.begin(), p->allowed_audiences.end(),
                      a) == p->allowed_audiences.end()) {
          return Bad(mr.KeyPath(from),
                     absl::StrCat("\"", a, "\" is not one of the issuer's "
                                  "audiences"));
        }
      }
      x.audience_map[from] = std::move(to);
    }
  }
  RETURN_IF_ERROR(er.CheckUnknown());
  if (!x.trust_domain.empty() &&
      std::find(p->allowed_audiences.begin(), p->allowed_audiences.end(),
                x.trust_domain) == p->allowed_audiences.end()) {
    return Bad(er.KeyPath("trust_domain"),
               absl::StrCat("\"", x.trust_domain,
                            "\" must be one of the issuer's audiences (it is "
                            "the aud of its transaction tokens)"));
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status ParseIssuer(const std::string& name, const toml::table& t,
                         IssuerConfig* out) {
  TableReader r(t, absl::StrCat("issuers.", name));
  out->name = name;
  token::IssuerPolicy& p = out->policy;
  RETURN_IF_ERROR(r.String("iss", &p.iss));
  if (p.iss.empty())
    return Bad(r.KeyPath("iss"), "required (the iss claim value)");
  std::string alg = "ES256";
  RETURN_IF_ERROR(r.String("algorithm", &alg));
  auto parsed = crypto::ParseSignAlgorithm(alg);
  if (!parsed) {
    return Bad(
        r.KeyPath("algorithm"),
        absl::StrCat("must be ES256, ES384, EdDSA, PS256 or RS256, got \"", alg,
                     "\""));
  }
  out->algorithm = *parsed;
  std::vector<std::string> kinds;
  RETURN_IF_ERROR(r.StringList("token_kinds", &kinds));
  if (r.Get("token_kinds") != nullptr) {
    p.allowed_kinds.clear();
    for (const std::string& k : kinds) {
      if (k == "access_token") {
        p.allowed_kinds.push_back(token::TokenKind::kAccessToken);
      } else if (k == "transaction_token") {
        p.allowed_kinds.push_back(token::TokenKind::kTransactionToken);
      } else {
        return Bad(
            r.KeyPath("token_kinds"),
            absl::StrCat("must hold access_token / transaction_token, got \"",
                         k, "\""));
      }
    }
  }
  constexpr int64_t kDay = 86400;
  RETURN_IF_ERROR(r.Integer("max_ttl_access", &p.max_ttl_access, 1, kDay));
  RETURN_IF_ERROR(
      r.Integer("max_ttl_transaction", &p.max_ttl_transaction, 1, kDay));
  p.default_ttl_access = std::min(p.default_ttl_access, p.max_ttl_access);
  p.default_ttl_transaction =
      std::min(p.default_ttl_transaction, p.max_ttl_transaction);
  RETURN_IF_ERROR(r.Integer("default_ttl_access", &p.default_ttl_access, 1,
                            p.max_ttl_access));
  RETURN_IF_ERROR(r.Integer("default_ttl_transaction",
                            &p.default_ttl_transaction, 1,
                            p.max_ttl_transaction));
  RETURN_IF_ERROR(r.StringList("audiences", &p.allowed_audiences));
  RETURN_IF_ERROR(r.StringList("scopes", &p.allowed_scopes));
  if (p.allowed_audiences.empty())
    return Bad(r.KeyPath("audiences"), "at least one required");
  RETURN_IF_ERROR(r.Bool("any_actor", &p.any_actor));
  RETURN_IF_ERROR(ParseActors(r, &p.allowed_actors));
  RETURN_IF_ERROR(r.Integer("max_chain_depth", &p.max_chain_depth, 0, 16));
  RETURN_IF_ERROR(r.Bool("require_cnf", &p.require_cnf));
  RETURN_IF_ERROR(r.Integer("max_extra_claims_bytes", &p.max_extra_claims_bytes,
                            0, 1 << 20));
  // Fail closed: absent or [] = no extra claims; ["*"] = any non-reserved name.
  RETURN_IF_ERROR(r.StringList("extra_claims", &p.allowed_extra_claims));
  for (size_t i = 0; i < p.allowed_extra_claims.size(); ++i) {
    const std::string& name = p.allowed_extra_claims[i];
    const std::string field =
        absl::StrCat(r.KeyPath("extra_claims"), "[", i, "]");
    if (name == "*") {
      if (p.allowed_extra_claims.size() != 1) {
        return Bad(field, "\"*\" (any non-reserved name) must be the only "
                          "entry; list names or give [\"*\"]");
      }
      p.any_extra_claims = true;
      continue;
    }
    if (!token::IsWellFormedClaimName(name)) {
      return Bad(field, absl::StrCat(
                            "\"", absl::CEscape(name.substr(0, 64)),
                            "\" is not a claim name: 1..",
                            token::kMaxClaimNameBytes,
                            " bytes of printable ASCII without \" or \\"));
    }
    if (token::IsReservedClaim(name)) {
      return Bad(field,
                 absl::StrCat("\"", name,
                              "\" is a registered or service-set claim and can never be an "
                              "extra claim"));
    }
  }
  if (p.any_extra_claims) p.allowed_extra_claims.clear();
  RETURN_IF_ERROR(r.Bool("verify_before_release", &p.verify_before_release));
  RETURN_IF_ERROR(ParseStatusLists(r, &p));
  RETURN_IF_ERROR(ParseExchange(r, &p));
  RETURN_IF_ERROR(ParseKeyLifecycle(r, out));
  return r.CheckUnknown();
}

}  // namespace tokensign::service::config_internal
