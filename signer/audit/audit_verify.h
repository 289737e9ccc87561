// Verification of a hash-chained audit log across its rotated files.
// VerifyAuditChain walks path.N ... path.1, path (oldest first) and checks
// every line: complete (newline-terminated), parsable, first line of the chain
// a genesis record, first line of every later file a continuation record, seq =
// previous seq + 1, and prev = SHA-256 of the previous line. It stops at the
// first broken line and says where (file + 1-based line number) and what is
// wrong. Limits of a hash chain: an edit of the very last line, or a consistent
// rewrite of the tail, cannot be detected from the file alone. Signed
// checkpoints (checkpoint.h) close that gap up to the last checkpoint: each
// one's signature must verify with a trusted audit key (VerifyOptions), its
// head must be the hash of the line it covers, and it must name its
// predecessor and count the records since it. Lines after the last valid
// checkpoint are reported as not yet anchored, not as verified; whether the
// newest checkpoint is the newest one there is (truncation, an older copy)
// only the anchor held in the HSM can say (tokensignctl audit verify
// --server). A genesis record with "follows" as the first line of a later
// file starts a new segment after a custodian-acknowledged loss; it is
// reported, not a break. Thread-safety: reentrant; reads files only.
#ifndef TOKENSIGN_SIGNER_AUDIT_AUDIT_VERIFY_H_
#define TOKENSIGN_SIGNER_AUDIT_AUDIT_VERIFY_H_

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "signer/audit/checkpoint.h"

namespace tokensign::audit {

class CheckpointTrust;

enum class BreakKind {
  kTornTail,           // last line has no trailing newline (crash mid-write)
  kUnparsable,         // not a valid audit JSON line
  kMissingGenesis,     // the chain does not start with a genesis record
  kUnexpectedGenesis,  // a genesis record after the start (a second log spliced
                       // in)
  kBadContinuation,  // a later file does not start with a continuation record,
                     // or a continuation record appears inside a file
  kSeqGap,        // seq jumps forward: lines are missing (deleted)
  kReordered,     // seq out of order: lines were moved
  kHashMismatch,  // prev does not match the SHA-256 of the previous line
                  // (edited)
  kBadCheckpoint,  // a checkpoint's signature, head, log, predecessor or
                   // record count does not check out
  kAfterFinal,     // a line after a clean-shutdown checkpoint that is not the
                   // next start's checkpoint (added while no daemon ran)
};

// "torn tail", "unparsable", "missing genesis", "unexpected genesis", "bad
// continuation", "seq gap", "reordered", "hash mismatch", "bad checkpoint",
// "after final checkpoint".
std::string_view BreakKindName(BreakKind kind);

struct ChainBreak {
  std::string file;  // path of the file holding the broken line
  int64_t line = 0;  // 1-based line number within that file
  BreakKind kind = BreakKind::kHashMismatch;
  std::string detail;  // human-readable explanation
};

struct VerifyReport {
  bool ok = false;
  std::vector<std::string> files;  // files walked, oldest first
  // Lines verified before the first break. A line the break puts in doubt is
  // not counted: on a hash mismatch that is the line before the mismatching
  // one too (either may be the altered one).
  int64_t lines = 0;
  int64_t records = 0;             // decision records among them
  int64_t last_seq = -1;           // seq of the last verified line
  std::string head_sha256;         // SHA-256 of the last verified line (anchor)
  std::optional<ChainBreak> first_break;

  // Checkpoints (before the first break).
  std::string log_id;
  std::string trust;          // how signatures were checked
  int64_t checkpoints = 0;    // valid checkpoints
  int64_t anchored_seq = -1;  // last line a valid checkpoint covers
  int64_t anchored_lines = 0;
  int64_t unanchored_lines = 0;    // after anchored_seq (checkpoints aside)
  int64_t unanchored_records = 0;  // decision records among them
  std::string instance;  // daemon instance (genesis or checkpoints)
  std::optional<CheckpointRef> last_checkpoint;
  std::optional<CheckpointRef> last_checkpoint_prev;  // the one it names
  // Every valid checkpoint of the last segment, oldest first (each names the
  // one before it): an anchor the HSM holds that is one of them, older than
  // the newest, means anchor writes lag behind a running daemon.
  std::vector<CheckpointRef> segment_checkpoints;
  std::string last_checkpoint_file;
  int64_t last_checkpoint_line = 0;
  bool last_checkpoint_final = false;  // written at clean shutdown
  // New segments after acknowledged losses, one description each.
  std::vector<std::string> segments;
};

struct VerifyOptions {
  // Keys checkpoints must be signed with; null = the keys embedded in the
  // log (unpinned; proves consistency only). Must outlive the call.
  const CheckpointTrust* trust = nullptr;
};

// intact: no break and nothing unanchored; unanchored tail: no break, but
// lines after the last valid checkpoint (or no checkpoint at all); broken.
enum class VerifyVerdict { kIntact, kUnanchoredTail, kBroken };
VerifyVerdict Verdict(const VerifyReport& report);

// Errors (Status) only for I/O: NotFound if neither path nor any path.N exists.
// A broken chain is a successful call with ok = false and first_break set.
absl::StatusOr<VerifyReport> VerifyAuditChain(
    const std::string& path, const VerifyOptions& options = {});

// Multi-line summary for the CLI, e.g. "OK: 3 files, 1201 lines, 1195 records,
// head ..." or "BROKEN at audit.log.1 line 17: hash mismatch: ...".
std::string FormatVerifyReport(const VerifyReport& report);

}  // namespace tokensign::audit

#endif  // TOKENSIGN_SIGNER_AUDIT_AUDIT_VERIFY_H_
