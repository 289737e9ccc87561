#include "signer/service/config.h"

#include <arpa/inet.h>

#include <toml++/toml.h>

#include <algorithm>
#include <fstream>
#include <set>
#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "crypto/algorithm.h"

namespace tokensign::service {
namespace {

absl::Status Bad(const std::string& path, const std::string& rule) {
  return absl::InvalidArgumentError(path + ": " + rule);
}

// Reads typed values out of one TOML table; every key read is remembered so
// that CheckUnknown can reject the rest. Error messages carry the full key
// path.
class TableReader {
 public:
  TableReader(const toml::table& table, std::string path)
      : table_(table), path_(std::move(path)) {}

  std::string KeyPath(std::string_view key) const {
    return path_.empty() ? std::string(key) : path_ + "." + std::string(key);
  }
  const toml::node* Get(std::string_view key) {
    seen_.insert(std::string(key));
    return table_.get(key);
  }

  absl::Status String(std::string_view key, std::string* out) {
    const toml::node* n = Get(key);
    if (n == nullptr) return absl::OkStatus();
    if (!n->is_string()) return Bad(KeyPath(key), "must be a string");
    *out = n->value<std::string>().value();
    return absl::OkStatus();
  }
  absl::Status Bool(std::string_view key, bool* out) {
    const toml::node* n = Get(key);
    if (n == nullptr) return absl::OkStatus();
    if (!n->is_boolean()) return Bad(KeyPath(key), "must be true or false");
    *out = n->value<bool>().value();
    return absl::OkStatus();
  }
  template <typename Int>
  absl::Status Integer(std::string_view key, Int* out, int64_t min,
                       int64_t max) {
    const toml::node* n = Get(key);
    if (n == nullptr) return absl::OkStatus();
    if (!n->is_integer()) return Bad(KeyPath(key), "must be an integer");
    int64_t v = n->value<int64_t>().value();
    if (v < min || v > max) {
      return Bad(KeyPath(key),
                 absl::StrCat("must be ", min, "..", max, ", got ", v));
    }
    *out = static_cast<Int>(v);
    return absl::OkStatus();
  }
  absl::Status StringList(std::string_view key, std::vector<std::string>* out) {
    const toml::node* n = Get(key);
    if (n == nullptr) return absl::OkStatus();
    const toml::array* arr = n->as_array();
    if (arr == nullptr) return Bad(KeyPath(key), "must be an array of strings");
    out->clear();
    for (size_t i = 0; i < arr->size(); ++i) {
      const toml::node& e = *arr->get(i);
      if (!e.is_string()) {
        return Bad(absl::StrCat(KeyPath(key), "[", i, "]"), "must be a string");
      }
      out->push_back(e.value<std::string>().value());
    }
    return absl::OkStatus();
  }
  absl::Status CheckUnknown() const {
    for (auto&& [k, v] : table_) {
      if (!seen_.contains(std::string(k.str())))
        return Bad(KeyPath(std::string_view(k.str())), "unknown key");
    }
    return absl::OkStatus();
  }

 private:
  const toml::table& table_;
  std::string path_;
  std::set<std::string> seen_;
};

#define RETURN_IF_ERROR(expr)  \
  do {                         \
    absl::Status _st = (expr); \
    if (!_st.ok()) return _st; \
  } while (0)

// A sub-table at `key`, nullptr if absent, error if not a table.
absl::StatusOr<const toml::table*> SubTable(TableReader& r,
                                            std::string_view key) {
  const toml::node* n = r.Get(key);
  if (n == nullptr) return nullptr;
  if (!n->is_table()) return Bad(r.KeyPath(key), "must be a table");
  return n->as_table();
}

absl::Status ParseHsm(const toml::table& t, hsm::HsmConfig* out) {
  TableReader r(t, "hsm");
  RETURN_IF_ERROR(r.String("module", &out->module_path));
  RETURN_IF_ERROR(r.String("token_label", &out->token_label));
  RETURN_IF_ERROR(r.String("token_serial", &out->token_serial));
  RETURN_IF_ERROR(r.String("pin_env", &out->pin_env));
  RETURN_IF_ERROR(r.String("pin_file", &out->pin_file));
  RETURN_IF_ERROR(r.Integer("pool_size", &out->pool_size, 0, 1024));
  RETURN_IF_ERROR(r.CheckUnknown());
  if (out->module_path.empty())
    return Bad("hsm.module", "required (PKCS#11 module path)");
  if (out->token_label.empty() == out->token_serial.empty()) {
    return Bad("hsm.token_label",
               "exactly one of token_label / token_serial is required");
  }
  if (out->pin_env.empty() == out->pin_file.empty()) {
    return Bad("hsm.pin_env", "exactly one of pin_env / pin_file is required");
  }
  return absl::OkStatus();
}

absl::Status ParseServer(const toml::table& t, ServerConfig* out) {
  TableReader r(t, "server");
  RETURN_IF_ERROR(r.String("grpc_listen", &out->grpc_listen));
  RETURN_IF_ERROR(r.String("http_listen", &out->http_listen));
  RETURN_IF_ERROR(r.String("tls_cert", &out->tls_cert));
  RETURN_IF_ERROR(r.String("tls_key", &out->tls_key));
  RETURN_IF_ERROR(r.String("client_ca", &out->client_ca));
  RETURN_IF_ERROR(r.Bool("insecure", &out->insecure));
  RETURN_IF_ERROR(r.Integer("worker_threads", &out->worker_threads, 0, 256));
  RETURN_IF_ERROR(r.Integer("max_queue", &out->max_queue, 1, 1 << 20));
  RETURN_IF_ERROR(r.Integer("jwks_max_age", &out->jwks_max_age, 0, 86400));
  RETURN_IF_ERROR(r.Integer("keyset_refresh_seconds",
                            &out->keyset_refresh_seconds, 0, 86400));
  RETURN_IF_ERROR(
      r.Integer("clock_skew_seconds", &out->clock_skew_seconds, 0, 3600));
  return r.CheckUnknown();
}

absl::Status ParseAudit(const toml::table& t, AuditConfig* out) {
  TableReader r(t, "audit");
  RETURN_IF_ERROR(r.String("path", &out->path));
  std::string durability = "fsync";
  RETURN_IF_ERROR(r.String("durability", &durability));
  if (durability == "fsync") {
    out->durability = audit::Durability::kFsync;
  } else if (durability == "none") {
    out->durability = audit::Durability::kNone;
  } else {
    return Bad("audit.durability",
               absl::StrCat("must be \"fsync\" or \"none\", got \"", durability,
                            "\""));
  }
  RETURN_IF_ERROR(r.Integer("rotate_bytes", &out->rotate_bytes, 0, INT64_MAX));
  RETURN_IF_ERROR(
      r.Integer("commit_linger_us", &out->commit_linger_us, 0, 100000));
  RETURN_IF_ERROR(r.String("instance", &out->instance));
  RETURN_IF_ERROR(r.Integer("checkpoint_every_records",
                            &out->checkpoint_every_records, 1, 100000000));
  RETURN_IF_ERROR(r.Integer("checkpoint_every_seconds",
                            &out->checkpoint_every_seconds, 1, 86400));
  std::string alg(crypto::SignAlgorithmName(out->checkpoint_alg));
  RETURN_IF_ERROR(r.String("checkpoint_alg", &alg));
  auto parsed = crypto::ParseSignAlgorithm(alg);
  if (!parsed || (*parsed != crypto::SignAlgorithm::kES256 &&
                  *parsed != crypto::SignAlgorithm::kES384 &&
                  *parsed != crypto::SignAlgorithm::kEdDSA)) {
    return Bad("audit.checkpoint_alg",
               absl::StrCat("must be ES256, ES384 or EdDSA, got \"", alg,
                            "\""));
  }
  out->checkpoint_alg = *parsed;
  RETURN_IF_ERROR(r.CheckUnknown());
  if (out->path.empty()) return Bad("audit.path", "must not be empty");
  if (out->instance.size() > 128 ||
      !std::all_of(out->instance.begin(), out->instance.end(), [](char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
               (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.';
      })) {
    return Bad("audit.instance",
               "must be at most 128 characters of [A-Za-z0-9._-] (empty = the "
               "host name)");
  }
  return absl::OkStatus();
}

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

// "30d", "12h", "45m", "90s" or an integer number of seconds.
absl::StatusOr<int64_t> ParseDuration(TableReader& r, std::string_view key) {
  const toml::node* n = r.Get(key);
  if (n == nullptr) return 0;
  if (n->is_integer()) return n->value<int64_t>().value();
  if (!n->is_string())
    return Bad(r.KeyPath(key), "must be a duration like \"30d\", \"12h\", "
                               "\"45m\", \"90s\" or seconds");
  std::string text = n->value<std::string>().value();
  int64_t unit = 0;
  if (!text.empty()) {
    switch (text.back()) {
      case 'd': unit = 86400; break;
      case 'h': unit = 3600; break;
      case 'm': unit = 60; break;
      case 's': unit = 1; break;
    }
  }
  int64_t count = 0;
  if (unit == 0 || !absl::SimpleAtoi(text.substr(0, text.size() - 1), &count) ||
      count < 0 || count > (int64_t{1} << 40) / unit) {
    return Bad(r.KeyPath(key),
               absl::StrCat("\"", absl::CEscape(text.substr(0, 32)),
                            "\" is not a duration (like \"30d\", \"12h\", "
                            "\"45m\", \"90s\")"));
  }
  return count * unit;
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

absl::Status ParseCallers(const toml::array& arr, const Config& cfg,
                          std::vector<CallerConfig>* out) {
  for (size_t i = 0; i < arr.size(); ++i) {
    std::string path = absl::StrCat("callers[", i, "]");
    const toml::table* t = arr.get(i)->as_table();
    if (t == nullptr) return Bad(path, "must be a table ([[callers]])");
    TableReader r(*t, path);
    CallerConfig c;
    std::vector<std::string> roles;
    RETURN_IF_ERROR(r.String("id", &c.id));
    RETURN_IF_ERROR(r.StringList("roles", &roles));
    RETURN_IF_ERROR(r.StringList("issuers", &c.issuers));
    RETURN_IF_ERROR(r.CheckUnknown());
    if (c.id.empty()) return Bad(r.KeyPath("id"), "required (SAN URI or CN)");
    if (std::string problem = CallerIdProblem(c.id); !problem.empty())
      return Bad(r.KeyPath("id"), problem);
    for (const std::string& role : roles) {
      if (role == "signer") {
        c.roles.push_back(Role::kSigner);
      } else if (role == "custodian") {
        c.roles.push_back(Role::kCustodian);
      } else if (role == "auditor") {
        c.roles.push_back(Role::kAuditor);
      } else if (role == "status-publisher") {
        c.roles.push_back(Role::kStatusPublisher);
      } else {
        return Bad(
            r.KeyPath("roles"),
            absl::StrCat("must hold signer / custodian / auditor / "
                         "status-publisher, got \"", role,
                         "\""));
      }
    }
    if (!c.roles.empty() && c.issuers.empty()) {
      return Bad(r.KeyPath("issuers"),
                 "required with roles: the issuers this caller's roles apply "
                 "to (\"*\" = all)");
    }
    for (const std::string& iss : c.issuers) {
      if (iss != "*" && !cfg.issuers.contains(iss)) {
        return Bad(r.KeyPath("issuers"),
                   absl::StrCat("unknown issuer \"", iss, "\""));
      }
    }
    for (const CallerConfig& prev : *out) {
      if (prev.id == c.id)
        return Bad(r.KeyPath("id"), absl::StrCat("duplicate \"", c.id, "\""));
    }
    out->push_back(std::move(c));
  }
  return absl::OkStatus();
}

}  // namespace

const char* RoleName(Role role) {
  switch (role) {
    case Role::kSigner:
      return "signer";
    case Role::kCustodian:
      return "custodian";
    case Role::kAuditor:
      return "auditor";
    case Role::kStatusPublisher:
      return "status-publisher";
  }
  return "?";
}

std::string CallerIdProblem(std::string_view id) {
  auto quoted = [&] {
    std::string q;
    for (unsigned char ch : id.substr(0, 80)) {
      if (ch < 0x20 || ch == 0x7f) {
        absl::StrAppend(&q, "\\x", absl::Hex(ch, absl::kZeroPad2));
      } else {
        q.push_back(static_cast<char>(ch));
      }
    }
    return absl::StrCat("\"", q, id.size() > 80 ? "...\"" : "\"");
  };
  if (id.find(':') != std::string_view::npos) {
    // RFC 3986: scheme = ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ), then ':'
    // and the rest in URI characters (unreserved, reserved, '%').
    size_t colon = id.find(':');
    bool scheme_ok = colon > 0 && absl::ascii_isalpha(id[0]);
    for (size_t i = 1; scheme_ok && i < colon; ++i) {
      char ch = id[i];
      scheme_ok = absl::ascii_isalnum(ch) || ch == '+' || ch == '-' || ch == '.';
    }
    bool chars_ok = colon + 1 < id.size();
    for (char ch : id) {
      if (!chars_ok) break;
      chars_ok = absl::ascii_isalnum(ch) ||
                 std::string_view("-._~:/?#[]@!$&'()*+,;=%").find(ch) !=
                     std::string_view::npos;
    }
    if (scheme_ok && chars_ok) return "";
    return absl::StrCat(
        "contains ':' so it must be a URI (scheme \":\" rest, only URI "
        "characters, e.g. spiffe://example.org/svc), matched only against a "
        "client certificate's URI SAN; got ",
        quoted());
  }
  size_t chars = 0;
  bool control = false;
  for (size_t i = 0; i < id.size(); ++i) {
    unsigned char ch = static_cast<unsigned char>(id[i]);
    if ((ch & 0xC0) != 0x80) ++chars;  // UTF-8: count lead bytes only
    if (ch < 0x20 || ch == 0x7f) control = true;
    // C1 controls U+0080..U+009F are C2 80..C2 9F in UTF-8.
    if (ch == 0xC2 && i + 1 < id.size() &&
        static_cast<unsigned char>(id[i + 1]) < 0xA0) {
      control = true;
    }
  }
  if (chars >= 1 && chars <= 64 && !control && id.front() != ' ' &&
      id.back() != ' ') {
    return "";
  }
  return absl::StrCat(
      "has no ':' so it must be a common name (1-64 characters, no control "
      "characters, no leading or trailing space), matched only against a "
      "client certificate's CN; got ",
      quoted());
}

bool IsLoopbackAddress(std::string_view addr) {
  if (addr.starts_with("unix:")) return true;
  std::string_view host = addr;
  if (host.starts_with("[")) {
    size_t end = host.find(']');
    if (end == std::string_view::npos) return false;
    host = host.substr(1, end - 1);
    return host == "::1";
  }
  size_t colon = host.rfind(':');
  if (colon != std::string_view::npos) host = host.substr(0, colon);
  if (host == "localhost" || host == "::1") return true;
  // An IPv4 literal in 127.0.0.0/8 only: a host name such as 127.example.com is not.
  in_addr v4{};
  return inet_pton(AF_INET, std::string(host).c_str(), &v4) == 1 &&
         (ntohl(v4.s_addr) >> 24) == 127;
}

absl::StatusOr<Config> ParseConfig(std::string_view toml_text,
                                   std::string_view source) {
  toml::table root;
  try {
    root = toml::parse(toml_text, source);
  } catch (const toml::parse_error& e) {
    const auto& b = e.source().begin;
    return absl::InvalidArgumentError(
        absl::StrCat(std::string(source), ":", b.line, ":", b.column,
                     ": TOML syntax: ", std::string(e.description())));
  }
  Config cfg;
  TableReader r(root, "");
  absl::StatusOr<const toml::table*> t = SubTable(r, "hsm");
  if (!t.ok()) return t.status();
  if (*t == nullptr)
    return Bad("hsm", "required ([hsm] module, token_label, pin_env|pin_file)");
  RETURN_IF_ERROR(ParseHsm(**t, &cfg.hsm));
  if (t = SubTable(r, "server"); !t.ok()) return t.status();
  if (*t != nullptr) RETURN_IF_ERROR(ParseServer(**t, &cfg.server));
  if (t = SubTable(r, "audit"); !t.ok()) return t.status();
  if (*t != nullptr) RETURN_IF_ERROR(ParseAudit(**t, &cfg.audit));
  if (t = SubTable(r, "issuers"); !t.ok()) return t.status();
  if (*t == nullptr || (*t)->empty())
    return Bad("issuers", "at least one [issuers.<name>]");
  for (auto&& [k, v] : **t) {
    std::string name(k.str());
    if (!v.is_table())
      return Bad(absl::StrCat("issuers.", name), "must be a table");
    IssuerConfig ic;
    RETURN_IF_ERROR(ParseIssuer(name, *v.as_table(), &ic));
    cfg.issuers.emplace(name, std::move(ic));
  }
  for (const auto& [name, issuer] : cfg.issuers) {
    const auto& trusted = issuer.policy.exchange.trusted_parent_issuers;
    for (size_t i = 0; i < trusted.size(); ++i) {
      if (!cfg.issuers.contains(trusted[i])) {
        return Bad(absl::StrCat("issuers.", name,
                                ".exchange.trusted_parent_issuers[", i, "]"),
                   absl::StrCat("unknown issuer \"", trusted[i], "\""));
      }
    }
  }
  if (const toml::node* n = r.Get("callers"); n != nullptr) {
    if (!n->is_array())
      return Bad("callers", "must be an array of tables ([[callers]])");
    RETURN_IF_ERROR(ParseCallers(*n->as_array(), cfg, &cfg.callers));
  }
  RETURN_IF_ERROR(r.CheckUnknown());

  for (const auto& [name, issuer] : cfg.issuers) {
    const std::string path = absl::StrCat("issuers.", name);
    const keyset::LifecyclePolicy lc = LifecycleFor(cfg, issuer);
    if (issuer.publish_lead_seconds != 0 &&
        issuer.publish_lead_seconds < MinPublishLead(cfg.server)) {
      return Bad(path + ".publish_lead_seconds",
                 absl::StrCat("must be 0 (automatic) or at least "
                              "server.jwks_max_age + keyset_refresh_seconds + "
                              "clock_skew_seconds = ",
                              MinPublishLead(cfg.server), ", got ",
                              issuer.publish_lead_seconds));
    }
    if (issuer.rotation_period == 0) continue;
    if (cfg.server.keyset_refresh_seconds == 0) {
      return Bad(path + ".rotation_period",
                 "needs server.keyset_refresh_seconds > 0 (replicas would "
                 "never see the schedule's steps)");
    }
    if (issuer.rotation_period <= lc.publish_lead) {
      return Bad(path + ".rotation_period",
                 absl::StrCat("must be longer than the publish lead (",
                              lc.publish_lead, " s)"));
    }
  }

  const ServerConfig& s = cfg.server;
  if (s.grpc_listen.empty())
    return Bad("server.grpc_listen", "must not be empty");
  if (s.insecure) {
    if (!IsLoopbackAddress(s.grpc_listen)) {
      return Bad(
          "server.insecure",
          absl::StrCat(
              "plaintext is only allowed on a loopback grpc_listen, got \"",
              s.grpc_listen, "\""));
    }
  } else {
    if (s.tls_cert.empty())
      return Bad("server.tls_cert", "required unless insecure (loopback)");
    if (s.tls_key.empty())
      return Bad("server.tls_key", "required unless insecure (loopback)");
    if (s.client_ca.empty())
      return Bad("server.client_ca", "required unless insecure (loopback)");
  }
  return cfg;
}

int64_t MinPublishLead(const ServerConfig& server) {
  return int64_t{server.jwks_max_age} + server.keyset_refresh_seconds +
         server.clock_skew_seconds;
}

keyset::LifecyclePolicy LifecycleFor(const Config& cfg,
                                     const IssuerConfig& issuer) {
  keyset::LifecyclePolicy p;
  // Dev mode walks the lifecycle at once (one daemon, no cached verifiers).
  p.publish_lead =
      cfg.dev ? 0
              : std::max(MinPublishLead(cfg.server), issuer.publish_lead_seconds);
  p.retire_window = int64_t{cfg.server.keyset_refresh_seconds} +
                    std::max(issuer.policy.max_ttl_access,
                             issuer.policy.max_ttl_transaction) +
                    cfg.server.clock_skew_seconds;
  p.rotation_period = issuer.rotation_period;
  p.max_published_keys = issuer.max_published_keys;
  p.algorithms = issuer.algorithms;
  return p;
}

absl::StatusOr<Config> LoadConfigFile(const std::string& path) {
  std::ifstream in(path);
  if (!in)
    return absl::NotFoundError(absl::StrCat("config: cannot read ", path));
  std::stringstream ss;
  ss << in.rdbuf();
  return ParseConfig(ss.str(), path);
}

Config DevConfig(const std::string& state_dir, const std::string& module_path) {
  Config cfg;
  cfg.dev = true;
  cfg.hsm.module_path = module_path;
  cfg.hsm.token_label = "tokensign-dev";
  cfg.hsm.pin_file = state_dir + "/pin";
  cfg.server.insecure = true;
  cfg.audit.path = state_dir + "/audit.log";
  // Its own instance name: a config-mode daemon on the dev token (default
  // instance = the host name) keeps its own log and anchor.
  cfg.audit.instance = "dev";
  IssuerConfig dev;
  dev.name = "dev";
  dev.algorithm = crypto::SignAlgorithm::kES256;
  dev.policy.iss = "https://issuer.example";
  dev.policy.allowed_audiences = {"https://api.example",
                                  "https://tools.example"};
  dev.policy.allowed_scopes = {"read", "write"};
  dev.policy.any_actor = true;
  dev.policy.max_chain_depth = 4;
  dev.policy.max_ttl_access = 3600;
  dev.policy.max_ttl_transaction = 300;
  dev.policy.allowed_extra_claims = {"tenant"};  // as in the README example
  cfg.issuers.emplace("dev", std::move(dev));
  return cfg;
}

std::vector<std::string> KeepRestartOnlySections(const Config& running, Config* next) {
  std::vector<std::string> changed;
  auto note = [&](const char* path, bool differs) {
    if (differs) changed.push_back(path);
  };
  const ServerConfig &a = running.server, &b = next->server;
  note("server.grpc_listen", a.grpc_listen != b.grpc_listen);
  note("server.http_listen", a.http_listen != b.http_listen);
  note("server.tls_cert", a.tls_cert != b.tls_cert);
  note("server.tls_key", a.tls_key != b.tls_key);
  note("server.client_ca", a.client_ca != b.client_ca);
  note("server.insecure", a.insecure != b.insecure);
  note("server.worker_threads", a.worker_threads != b.worker_threads);
  note("server.max_queue", a.max_queue != b.max_queue);
  note("server.jwks_max_age", a.jwks_max_age != b.jwks_max_age);
  note("server.keyset_refresh_seconds",
       a.keyset_refresh_seconds != b.keyset_refresh_seconds);
  const hsm::HsmConfig &ha = running.hsm, &hb = next->hsm;
  note("hsm.module", ha.module_path != hb.module_path);
  note("hsm.token_label", ha.token_label != hb.token_label);
  note("hsm.token_serial", ha.token_serial != hb.token_serial);
  note("hsm.pin_env", ha.pin_env != hb.pin_env);
  note("hsm.pin_file", ha.pin_file != hb.pin_file);
  note("hsm.pool_size", ha.pool_size != hb.pool_size);
  const AuditConfig &aa = running.audit, &ab = next->audit;
  note("audit.path", aa.path != ab.path);
  note("audit.durability", aa.durability != ab.durability);
  note("audit.rotate_bytes", aa.rotate_bytes != ab.rotate_bytes);
  note("audit.commit_linger_us", aa.commit_linger_us != ab.commit_linger_us);
  note("audit.instance", aa.instance != ab.instance);
  note("audit.checkpoint_every_records",
       aa.checkpoint_every_records != ab.checkpoint_every_records);
  note("audit.checkpoint_every_seconds",
       aa.checkpoint_every_seconds != ab.checkpoint_every_seconds);
  note("audit.checkpoint_alg", aa.checkpoint_alg != ab.checkpoint_alg);
  next->server = running.server;
  next->hsm = running.hsm;
  next->audit = running.audit;
  next->dev = running.dev;
  return changed;
}

}  // namespace tokensign::service
