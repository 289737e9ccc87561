// The pieces tokensignd is assembled from that need more than a constructor:
// the gRPC listener's credentials, the audit log with its HSM-held checkpoint
// key and anchors, and the per-issuer lifecycle rules of a config. Daemon
// (daemon.cc) only wires what these return.
//
// Contract:
// - GrpcServerCredentials: mTLS (client certificate required and verified
//   against server.client_ca; tls_cert/tls_key/client_ca read here) unless
//   dev or insecure, which need a loopback server.grpc_listen
//   (InvalidArgument naming the field otherwise); *plaintext says which.
// - OpenAudit: the audit instance (audit.instance, else the host name), its
//   checkpoint key in the HSM (created when missing), the anchor store and
//   the log itself. A log the daemon refuses (lost, truncated, replaced or
//   rewritten) still opens: its health() says why, and the daemon signs
//   nothing until a custodian acknowledges it.
// - ScrubEnvironmentVariable overwrites the variable's value in place (the
//   bytes /proc/<pid>/environ shows) and removes it from the environment.
//
// Thread-safety: called once, from the thread that starts the daemon.
#ifndef TOKENSIGN_SIGNER_SERVICE_DAEMON_SETUP_H_
#define TOKENSIGN_SIGNER_SERVICE_DAEMON_SETUP_H_

#include <grpcpp/grpcpp.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "hsm/hsm.h"
#include "hsm/provider/provider_keys.h"
#include "signer/audit/audit_log.h"
#include "signer/keyset/lifecycle.h"
#include "signer/service/audit_hsm.h"
#include "signer/service/config.h"

namespace tokensign::service {

absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> GrpcServerCredentials(
    const Config& cfg, bool* plaintext);

struct OpenedAudit {
  std::string instance;
  std::string jwks;  // this instance's audit keys
  std::string kid;   // the key that signs new checkpoints
  std::unique_ptr<HsmAnchorStore> anchors;  // must outlive `log`
  std::unique_ptr<audit::AuditLog> log;
};
// `records`: the token's records read at start (LoadAuditKey), or nullptr.
absl::StatusOr<OpenedAudit> OpenAudit(
    const Config& cfg, std::shared_ptr<hsm::Hsm> hsm,
    std::shared_ptr<hsm::provider::HsmKeyProvider> provider,
    const hsm::DataScan* records = nullptr);

std::vector<std::string> IssuerNames(const Config& cfg);
// Each issuer's key lifecycle rules under `cfg`.
std::map<std::string, keyset::LifecyclePolicy> LifecyclePolicies(
    const Config& cfg);

void ScrubEnvironmentVariable(const std::string& name);

}  // namespace tokensign::service

#endif  // TOKENSIGN_SIGNER_SERVICE_DAEMON_SETUP_H_
