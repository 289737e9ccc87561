// tokensignctl audit ...: the commands on audit log files (verify, lineage)
// and, with a daemon, on its audit keys and anchors (keys, verify --server,
// acknowledge, anchors, retire-anchor). Thread-safety: single-threaded CLI
// code.
#ifndef TOKENSIGN_TOOLS_TOKENSIGNCTL_AUDIT_COMMANDS_H_
#define TOKENSIGN_TOOLS_TOKENSIGNCTL_AUDIT_COMMANDS_H_

#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>
#include <vector>

namespace tokensign::ctl {

// Exit codes of `audit verify` (the worst over all FILEs: broken, then
// cannot read, then unanchored tail).
enum AuditExit {
  kAuditIntact = 0,      // chain intact, every line covered by a checkpoint
  kAuditCannotRead = 1,  // a file could not be read (or bad arguments)
  kAuditUnanchored = 2,  // intact, but lines after the last checkpoint, or
                         // (--server) the HSM holds no anchor for the log
                         // (retired, or never anchored)
  kAuditBroken = 3,      // tampered: the report names the line
};

struct AuditVerifyArgs {
  std::vector<std::string> files;  // each a log path (its rotated files too)
  std::string keys_file;           // JWKS of trusted audit keys
  std::vector<std::string> pins;   // trusted RFC 7638 thumbprints
  // With a daemon (role auditor): its audit keys are trusted when neither
  // keys_file nor pins is given, and each log's newest checkpoint must be
  // the one the HSM holds (or the one right after it, whose anchor write is
  // pending): a log that ends before it was truncated or replaced by an
  // older copy. When the HSM holds no anchor for the log (a custodian
  // retired it) the report says ABSENT and the file is at best kAuditUnanchored.
  std::string server;  // host:port; empty = files only
  std::shared_ptr<grpc::Channel> channel;  // to `server`
};

// Prints one report per FILE and returns the exit code.
int RunAuditVerify(const AuditVerifyArgs& args);

// Prints the instance's audit keys (JWKS; each kid is the thumbprint to
// --pin). Exit 0, or 1 with the gRPC error.
int RunAuditKeys(const std::shared_ptr<grpc::Channel>& channel,
                 const std::string& instance);

// Acknowledges the daemon's refused audit log; prints the new log id.
int RunAuditAcknowledge(const std::shared_ptr<grpc::Channel>& channel,
                        const std::string& reason);

// Lists the anchors the HSM holds for an instance (empty = the daemon's):
// a table (LOG_ID, LIVE or archived, checkpoint seq, covered seq, checkpoint
// time, final), or with `json` the ListAuditAnchorsResponse (proto field
// names). Exit codes as `keys` (key_commands.h: 0 ok, 1 connection, 2
// refused, 3 retry, 4 not allowed).
int RunAuditAnchors(const std::shared_ptr<grpc::Channel>& channel,
                    const std::string& instance, bool json);

// Custodian: retires the archived anchor of an old log (the live log's is
// refused: exit 2; unknown: exit 4). Exit codes as `keys`.
int RunAuditRetireAnchor(const std::shared_ptr<grpc::Channel>& channel,
                         const std::string& instance,
                         const std::string& log_id, const std::string& reason);

}  // namespace tokensign::ctl

#endif  // TOKENSIGN_TOOLS_TOKENSIGNCTL_AUDIT_COMMANDS_H_
