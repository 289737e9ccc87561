#include "signer/service/daemon_setup.h"

#include <spdlog/spdlog.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"

namespace tokensign::service {
namespace {

absl::StatusOr<std::string> ReadFile(const std::string& what,
                                     const std::string& path) {
  std::ifstream in(path);
  if (!in)
    return absl::NotFoundError(absl::StrCat(what, ": cannot read ", path));
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace

void ScrubEnvironmentVariable(const std::string& name) {
  if (char* value = std::getenv(name.c_str()); value != nullptr) {
    volatile char* p = value;
    while (*p != '\0') *p++ = '\0';
  }
  ::unsetenv(name.c_str());
}

std::vector<std::string> IssuerNames(const Config& cfg) {
  std::vector<std::string> names;
  for (const auto& [name, _] : cfg.issuers) names.push_back(name);
  return names;
}

std::map<std::string, keyset::LifecyclePolicy> LifecyclePolicies(
    const Config& cfg) {
  std::map<std::string, keyset::LifecyclePolicy> out;
  for (const auto& [name, issuer] : cfg.issuers)
    out[name] = LifecycleFor(cfg, issuer);
  return out;
}

absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> GrpcServerCredentials(
    const Config& cfg, bool* plaintext) {
  *plaintext = cfg.dev || cfg.server.insecure;
  if (*plaintext) {
    if (!IsLoopbackAddress(cfg.server.grpc_listen)) {
      return absl::InvalidArgumentError(
          absl::StrCat("server.grpc_listen: plaintext (dev/insecure) needs a "
                       "loopback address, got \"",
                       cfg.server.grpc_listen, "\""));
    }
    return grpc::InsecureServerCredentials();
  }
  auto cert = ReadFile("server.tls_cert", cfg.server.tls_cert);
  if (!cert.ok()) return cert.status();
  auto key = ReadFile("server.tls_key", cfg.server.tls_key);
  if (!key.ok()) return key.status();
  auto ca = ReadFile("server.client_ca", cfg.server.client_ca);
  if (!ca.ok()) return ca.status();
  grpc::SslServerCredentialsOptions ssl(
      GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY);
  ssl.pem_root_certs = *ca;
  ssl.pem_key_cert_pairs.push_back({*key, *cert});
  return grpc::SslServerCredentials(ssl);
}

absl::StatusOr<OpenedAudit> OpenAudit(
    const Config& cfg, std::shared_ptr<hsm::Hsm> hsm,
    std::shared_ptr<hsm::provider::HsmKeyProvider> provider,
    const hsm::DataScan* records) {
  OpenedAudit out;
  audit::AuditLogOptions audit_opts;
  audit_opts.path = cfg.audit.path;
  audit_opts.durability = cfg.audit.durability;
  if (cfg.audit.durability == audit::Durability::kNone) {
    spdlog::warn(
        "audit.durability = \"none\": tokens are released before their audit "
        "records are on disk; a crash can lose records. Use only for "
        "benchmarks.");
  }
  audit_opts.rotate_bytes = cfg.audit.rotate_bytes;
  if (cfg.audit.commit_linger_us >= 0)
    audit_opts.commit_linger = absl::Microseconds(cfg.audit.commit_linger_us);
  // Signed checkpoints, anchored in the HSM (issue 12).
  out.instance = cfg.audit.instance;
  if (out.instance.empty()) {
    char host[256] = {};
    if (::gethostname(host, sizeof(host) - 1) != 0 || host[0] == '\0') {
      return absl::FailedPreconditionError(
          "audit.instance: empty and the host name is unavailable; set it");
    }
    out.instance = host;
  }
  auto audit_key = LoadAuditKey(
      *hsm,
      [provider](std::string_view id) { return provider->PrivateKey(id); },
      out.instance, cfg.audit.checkpoint_alg, records);
  if (!audit_key.ok()) return audit_key.status();
  out.jwks = audit_key->jwks_json;
  out.kid = audit_key->current->kid;
  out.anchors = std::make_unique<HsmAnchorStore>(hsm);
  audit_opts.checkpoint_key = audit_key->current;
  audit_opts.checkpoint_every_records = cfg.audit.checkpoint_every_records;
  audit_opts.checkpoint_every =
      absl::Seconds(cfg.audit.checkpoint_every_seconds);
  audit_opts.checkpoint_min_interval =
      absl::Milliseconds(cfg.audit.checkpoint_min_interval_ms);
  audit_opts.instance = out.instance;
  audit_opts.anchors = out.anchors.get();
  auto log = audit::AuditLog::Open(audit_opts);
  if (!log.ok()) return log.status();
  out.log = std::move(*log);
  return out;
}

}  // namespace tokensign::service
