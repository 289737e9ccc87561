// The [hsm], [server], [audit] and [[callers]] sections of the config, and
// the reader helpers every section uses (config_reader.h).
#include <algorithm>

#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "crypto/algorithm.h"
#include "signer/service/config_reader.h"

namespace tokensign::service::config_internal {

absl::StatusOr<const toml::table*> SubTable(TableReader& r,
                                            std::string_view key) {
  const toml::node* n = r.Get(key);
  if (n == nullptr) return nullptr;
  if (!n->is_table()) return Bad(r.KeyPath(key), "must be a table");
  return n->as_table();
}

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
  RETURN_IF_ERROR(r.Integer("checkpoint_min_interval_ms",
                            &out->checkpoint_min_interval_ms, 0, 86400000));
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

}  // namespace tokensign::service::config_internal
