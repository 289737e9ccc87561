// tokensignctl audit ...: the commands on audit log files (verify, lineage)
// and, with a daemon, on its audit keys and anchors (keys, verify --server,
// acknowledge). Thread-safety: single-threaded CLI code.
#ifndef TOKENSIGN_TOOLS_TOKENSIGNCTL_AUDIT_COMMANDS_H_
#define TOKENSIGN_TOOLS_TOKENSIGNCTL_AUDIT_COMMANDS_H_

#include <string>
#include <vector>

namespace tokensign::ctl {

// Exit codes of `audit verify` (the worst over all FILEs: broken, then
// cannot read, then unanchored tail).
enum AuditExit {
  kAuditIntact = 0,      // chain intact, every line covered by a checkpoint
  kAuditCannotRead = 1,  // a file could not be read (or bad arguments)
  kAuditUnanchored = 2,  // intact, but lines after the last checkpoint
  kAuditBroken = 3,      // tampered: the report names the line
};

struct AuditVerifyArgs {
  std::vector<std::string> files;  // each a log path (its rotated files too)
  std::string keys_file;           // JWKS of trusted audit keys
  std::vector<std::string> pins;   // trusted RFC 7638 thumbprints
};

// Prints one report per FILE and returns the exit code.
int RunAuditVerify(const AuditVerifyArgs& args);

}  // namespace tokensign::ctl

#endif  // TOKENSIGN_TOOLS_TOKENSIGNCTL_AUDIT_COMMANDS_H_
