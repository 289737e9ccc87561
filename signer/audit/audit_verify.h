// Verification of a hash-chained audit log across its rotated files.
// VerifyAuditChain walks path.N ... path.1, path (oldest first) and checks
// every line: complete (newline-terminated), parsable, first line of the chain
// a genesis record, first line of every later file a continuation record, seq =
// previous seq + 1, and prev = SHA-256 of the previous line. It stops at the
// first broken line and says where (file + 1-based line number) and what is
// wrong. Limits of a hash chain: an edit of the very last line, or a consistent
// rewrite of the tail, cannot be detected from the file alone; anchor
// head_sha256 externally for that. Thread-safety: reentrant; reads files only.
#ifndef TOKENSIGN_SIGNER_AUDIT_AUDIT_VERIFY_H_
#define TOKENSIGN_SIGNER_AUDIT_AUDIT_VERIFY_H_

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace tokensign::audit {

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
};

// "torn tail", "unparsable", "missing genesis", "unexpected genesis", "bad
// continuation", "seq gap", "reordered", "hash mismatch".
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
};

// Errors (Status) only for I/O: NotFound if neither path nor any path.N exists.
// A broken chain is a successful call with ok = false and first_break set.
absl::StatusOr<VerifyReport> VerifyAuditChain(const std::string& path);

// Multi-line summary for the CLI, e.g. "OK: 3 files, 1201 lines, 1195 records,
// head ..." or "BROKEN at audit.log.1 line 17: hash mismatch: ...".
std::string FormatVerifyReport(const VerifyReport& report);

}  // namespace tokensign::audit

#endif  // TOKENSIGN_SIGNER_AUDIT_AUDIT_VERIFY_H_
