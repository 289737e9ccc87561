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
#include "signer/service/config_reader.h"

namespace tokensign::service {

using config_internal::Bad;
using config_internal::ParseAudit;
using config_internal::ParseCallers;
using config_internal::ParseHsm;
using config_internal::ParseIssuer;
using config_internal::ParseServer;
using config_internal::SubTable;
using config_internal::TableReader;

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
  note("audit.checkpoint_min_interval_ms",
       aa.checkpoint_min_interval_ms != ab.checkpoint_min_interval_ms);
  note("audit.checkpoint_alg", aa.checkpoint_alg != ab.checkpoint_alg);
  next->server = running.server;
  next->hsm = running.hsm;
  next->audit = running.audit;
  next->dev = running.dev;
  return changed;
}

}  // namespace tokensign::service
