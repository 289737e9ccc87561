// tokensignd configuration: one TOML file parsed into plain structs, fully
// validated.
//
// Contract: ParseConfig accepts the TOML text and returns a Config in which
// every field has a value (a default or the file's) or an InvalidArgument whose
// message names the key path and the rule, e.g. "issuers.dev.max_chain_depth:
// must be 0..16, got 40". Unknown keys are errors. DevConfig builds the config
// `tokensignd --dev` runs with. Thread-safety: all types are values; the
// functions are pure (LoadConfigFile reads a file).
#ifndef TOKENSIGN_SIGNER_SERVICE_CONFIG_H_
#define TOKENSIGN_SIGNER_SERVICE_CONFIG_H_

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "crypto/algorithm.h"
#include "hsm/hsm_types.h"
#include "signer/audit/audit_log.h"
#include "signer/keyset/lifecycle.h"
#include "signer/token/policy.h"

namespace tokensign::service {

// kStatusPublisher signs the issuer's Token Status Lists (SignStatusList).
enum class Role { kSigner, kCustodian, kAuditor, kStatusPublisher };
// "signer" / "custodian" / "auditor" / "status-publisher".
const char* RoleName(Role role);

struct ServerConfig {
  std::string grpc_listen = "127.0.0.1:50051";
  std::string http_listen = "127.0.0.1:8080";  // empty = no HTTP listener
  std::string tls_cert;                        // PEM server certificate chain
  std::string tls_key;                         // PEM server private key
  std::string
      client_ca;  // PEM CA bundle that client certificates must chain to
  bool insecure =
      false;  // plaintext gRPC; only allowed on a loopback grpc_listen
  int worker_threads = 0;  // 0 = hardware threads
  int max_queue =
      1024;  // queued + running work items before RESOURCE_EXHAUSTED
  int jwks_max_age = 300;  // Cache-Control max-age of the HTTP JWKS, seconds
  // Re-read the keyset records from the HSM this often (other replicas'
  // rotations); 0 = only at start and on SIGHUP.
  int keyset_refresh_seconds = 15;
  // Clock difference allowed between replicas and verifiers; part of the
  // publish lead and the retire window (key lifecycle).
  int clock_skew_seconds = 60;
};

struct AuditConfig {
  std::string path = "tokensign-audit.log";
  audit::Durability durability = audit::Durability::kFsync;
  int64_t rotate_bytes = 64 << 20;
  // Group-commit linger of the audit writer in microseconds
  // (audit.commit_linger_us; see AuditLogOptions::commit_linger); -1 = the
  // audit log's default.
  int64_t commit_linger_us = -1;
  // Signed checkpoints (signer/audit/checkpoint.h), anchored in the HSM:
  // every checkpoint_every_records decision records or
  // checkpoint_every_seconds, whichever comes first (only when records were
  // added), signed by this instance's audit key (checkpoint_alg, generated in
  // the HSM). `instance` names this daemon's log and anchor ([A-Za-z0-9._-],
  // at most 128; empty = the host name). A replica under a new name begins a
  // new log.
  std::string instance;
  int64_t checkpoint_every_records = 1000;
  int64_t checkpoint_every_seconds = 10;
  // The records count does not make checkpoints (each rewrites the HSM
  // anchor) more often than this; 0 = no minimum.
  int64_t checkpoint_min_interval_ms = 1000;
  crypto::SignAlgorithm checkpoint_alg = crypto::SignAlgorithm::kES256;
};

// A caller known by its client-certificate identity: an id containing ':' is a
// URI and matches only a certificate's URI SAN; an id without ':' is a common
// name and matches only its CN (see CallerIdProblem).
struct CallerConfig {
  std::string id;
  std::vector<Role> roles;
  std::vector<std::string>
      issuers;  // issuers every role of this caller covers; "*" = all
};

struct IssuerConfig {
  std::string name;  // the key under [issuers]
  crypto::SignAlgorithm algorithm = crypto::SignAlgorithm::kES256;
  token::IssuerPolicy policy;
  // Key lifecycle (keyset/lifecycle.h): algorithms a key may have (default:
  // [algorithm]); scheduled rotation period in seconds (0 = off);
  // publish_lead_seconds (0 = jwks_max_age + keyset_refresh_seconds +
  // clock_skew_seconds; more may be set, not less); keys in the JWKS at once.
  std::vector<crypto::SignAlgorithm> algorithms;
  int64_t rotation_period = 0;
  int64_t publish_lead_seconds = 0;
  int max_published_keys = 4;
};

struct Config {
  hsm::HsmConfig hsm;
  ServerConfig server;
  AuditConfig audit;
  std::vector<CallerConfig> callers;
  std::map<std::string, IssuerConfig> issuers;
  // Set by dev mode only (never from TOML): every caller is "dev" with all
  // roles.
  bool dev = false;
};

// Parses and validates. `source` names the file in error messages of the TOML
// parser.
absl::StatusOr<Config> ParseConfig(std::string_view toml_text,
                                   std::string_view source = "config");
// Reads `path` and parses it.
absl::StatusOr<Config> LoadConfigFile(const std::string& path);

// Why `id` can name no caller, or "" when it can. An id containing ':' must be
// a URI with a scheme (RFC 3986 scheme ":" rest, e.g. spiffe://example.org/svc,
// only URI characters); one without ':' is a common name: 1-64 characters, no
// control characters, no leading or trailing space. Used for configured ids
// and for the names read from client certificates alike.
std::string CallerIdProblem(std::string_view id);

// jwks_max_age + keyset_refresh_seconds + clock_skew_seconds.
int64_t MinPublishLead(const ServerConfig& server);
// The lifecycle rules of `issuer` under `cfg` (publish lead, retire window =
// keyset_refresh_seconds + the longest token TTL + clock skew, schedule,
// bounds); dev mode has no publish lead.
keyset::LifecyclePolicy LifecycleFor(const Config& cfg,
                                     const IssuerConfig& issuer);

// True for 127.0.0.0/8, ::1 and "localhost" hosts (with a port), and unix:
// sockets.
bool IsLoopbackAddress(std::string_view listen_address);

// The dev-mode config: issuer `dev` (iss https://issuer.example, ES256,
// audiences https://api.example and https://tools.example, scopes read/write,
// any actor, depth <= 4, access <= 3600 s, transaction <= 300 s), plaintext
// loopback listeners, audit log and token in `state_dir`, PIN read from
// `state_dir`/pin.
Config DevConfig(const std::string& state_dir, const std::string& module_path);

// SIGHUP reloads callers and issuer policies only: the [server], [hsm] and [audit]
// sections (listeners, TLS files, listener mode, module, token, PIN source, audit file)
// need a restart. Copies them from `running` into `next` and returns the key paths that
// differed (e.g. "server.insecure"), so the daemon can say which changes it ignored.
std::vector<std::string> KeepRestartOnlySections(const Config& running, Config* next);

}  // namespace tokensign::service

#endif  // TOKENSIGN_SIGNER_SERVICE_CONFIG_H_
