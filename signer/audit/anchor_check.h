// The start check of an anchored audit log: does the active file reach the
// checkpoint the HSM holds? AuditLog::Open runs it before it touches the file.
//
// The active file only (a log shipper may remove rotated files); when it has
// no complete line (a crash right after a rotation renamed it), path.1
// instead. Accepted: the file's chain is intact within the file and its last
// checkpoint is the anchored one, or the one after it (a crash between the
// checkpoint's log write and its HSM write; that checkpoint must then carry
// a valid signature by the audit key and name the anchored one as its
// predecessor). After an anchor written at clean shutdown, nothing but that
// next checkpoint may follow. Anything else is a lost, truncated, replaced or
// rewritten log, and the message says which and names the line.
// Thread-safety: pure functions; ScanActiveFile reads files only.
#ifndef TOKENSIGN_SIGNER_AUDIT_ANCHOR_CHECK_H_
#define TOKENSIGN_SIGNER_AUDIT_ANCHOR_CHECK_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "signer/audit/anchor_store.h"
#include "signer/audit/checkpoint.h"
#include "signer/audit/checkpoint_keys.h"

namespace tokensign::audit {

struct ScannedCheckpoint {
  CheckpointRef ref;    // the line (log id from its payload)
  int64_t line = 0;     // 1-based line number in the scanned file
  int64_t covered_seq = 0;
  bool final = false;
  std::optional<CheckpointRef> prev;
  std::string jws;
  std::string key_jwk;
};

struct ActiveFileScan {
  std::string file;    // the file scanned ("" if neither path nor path.1 has a line)
  int64_t lines = 0;   // complete lines
  int64_t first_seq = -1;
  int64_t last_seq = -1;
  std::string log_id;  // from the first line or the last checkpoint
  std::vector<ScannedCheckpoint> checkpoints;  // in file order
  // Lines after the last checkpoint line, and decision records after the
  // last line a checkpoint covers (what the next checkpoint will count).
  int64_t lines_after_checkpoint = 0;
  int64_t decisions_after_covered = 0;
  // The first break of the chain inside the file: line number and what.
  int64_t break_line = 0;
  std::string break_detail;
};

// Reads the complete lines of `path` (or of path.1, see above). Checks links
// (seq, prev) line by line; a torn tail is ignored (Open repairs it).
absl::StatusOr<ActiveFileScan> ScanActiveFile(const std::string& path);

// OK when the scan reaches `anchor` (see above). `trust`: the audit keys a
// newer, unanchored checkpoint may be signed with. On
// refusal: FailedPrecondition whose message says what was found, where, and
// that a custodian must acknowledge it.
absl::Status CheckAgainstAnchor(const std::string& path,
                                const ActiveFileScan& scan,
                                const Anchor& anchor,
                                const CheckpointTrust& trust);

}  // namespace tokensign::audit

#endif  // TOKENSIGN_SIGNER_AUDIT_ANCHOR_CHECK_H_
