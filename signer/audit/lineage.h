// Delegation lineage from the audit log: given a jti, follow parent_jti links
// backward (a parent was signed before its child, possibly in a rotated file)
// and return the hops root-first. A parent that is not in this log (signed by
// another replica, or its file is gone) ends the walk with a hop whose in_log
// is false; that is not an error. Lineage reads records, it does not verify the
// chain (use VerifyAuditChain); torn or unparsable lines are skipped.
// Thread-safety: reentrant; reads files only.
#ifndef TOKENSIGN_SIGNER_AUDIT_LINEAGE_H_
#define TOKENSIGN_SIGNER_AUDIT_LINEAGE_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "signer/audit/audit_log.h"

namespace tokensign::audit {

struct LineageHop {
  std::string jti;
  bool in_log =
      true;  // false: referenced as parent_jti but not found in this log
  std::string sub;
  std::string client_id;
  std::vector<AuditActor> actors;  // [0] = current actor
  std::vector<std::string> aud;
  std::vector<std::string> scope;
  absl::Time time;
  std::string issuer;
  std::string kind;
  std::string kid;
  std::string outcome;
  std::string parent_jti;
  std::string file;  // where the record is
  int64_t line = 0;  // 1-based line in `file`
};

// NotFound if no record carries `jti`. The requested record may be of any
// outcome; parents must be "signed" records.
absl::StatusOr<std::vector<LineageHop>> Lineage(const std::string& path,
                                                std::string_view jti);

// One line per hop, root first, e.g.
//   1. jti=J1 sub=alice client=app actors=[planner] aud=https://api.example
//   scope=read
//      issuer=main time=2024-05-01T12:00:00.000Z
//   2. jti=J2 sub=alice client=app actors=[agent-7 <- planner] aud=...
//   scope=read ...
// (each hop on one line). Values made only of [A-Za-z0-9-_.:/~+#%] print
// bare; any other value prints as a JSON string with non-ASCII escaped
// (actors=["agent-7 <- root"] is one actor), so no name can fake a hop, an
// "@issuer" or another field. aud and scope values are joined by ",".
// A hop not in the log prints
//   1. jti=J0 (not in this log: the delegation chain continues outside it)
std::string FormatLineage(const std::vector<LineageHop>& hops);

}  // namespace tokensign::audit

#endif  // TOKENSIGN_SIGNER_AUDIT_LINEAGE_H_
