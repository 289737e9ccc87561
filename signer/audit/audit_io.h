// Internal file helpers of the audit log: errno -> Status, and reading the tail
// of a log file (last complete line, the line before it, and any torn bytes
// after the last newline) without reading the whole file. Thread-safety: pure
// functions.
#ifndef TOKENSIGN_SIGNER_AUDIT_AUDIT_IO_H_
#define TOKENSIGN_SIGNER_AUDIT_AUDIT_IO_H_

#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "signer/audit/audit_format.h"

namespace tokensign::audit {

// "<what> <path>: <strerror> (errno N)"; code from errno (NotFound,
// PermissionDenied, ResourceExhausted for ENOSPC/EFBIG/EDQUOT, else Internal).
absl::Status PosixError(std::string_view what, const std::string& path,
                        int err);

struct LogTail {
  int64_t size = 0;  // file size
  int64_t complete_end =
      0;  // offset just after the last '\n' (0: no complete line)
  bool has_last = false;    // last_line valid
  std::string last_line;    // last complete line, without '\n'
  bool has_before = false;  // before_last valid
  std::string before_last;  // the complete line before last_line
  std::string torn;         // bytes after the last '\n' (a torn write)
};

absl::StatusOr<LogTail> ReadLogTail(const std::string& path);

// Parses tail.last_line and checks that it links to tail.before_last (or, when
// it is the file's only line, that it is a genesis or continuation record).
// DataLoss on failure.
absl::StatusOr<ParsedLine> CheckTailLinks(const std::string& path,
                                          const LogTail& tail);

}  // namespace tokensign::audit

#endif  // TOKENSIGN_SIGNER_AUDIT_AUDIT_IO_H_
