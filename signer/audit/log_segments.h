// The files of one audit log on disk: the active file PATH, rotated files
// PATH.1 (newest) .. PATH.N (oldest), and refused files PATH.lost-<time>.
// Moving them and opening a fresh active file, with the directory synced
// when the log is durable. Thread-safety: free functions; the audit log calls
// them from one thread at a time (its writer thread, or Open /
// AcknowledgeLoss before the writer runs).
#ifndef TOKENSIGN_SIGNER_AUDIT_LOG_SEGMENTS_H_
#define TOKENSIGN_SIGNER_AUDIT_LOG_SEGMENTS_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "signer/audit/writable_file.h"

namespace tokensign::audit {

// The file name of `path` without its directory ("audit.log").
std::string LogBaseName(const std::string& path);

// Rotation: PATH.N -> PATH.N+1 (oldest first) ... PATH -> PATH.1, then a new
// empty PATH (O_EXCL), the directory synced when `durable`. Nothing is
// deleted.
absl::StatusOr<std::unique_ptr<WritableFile>> RotateLogFiles(
    const std::string& path, bool durable);

// A refused active file leaves the chain but is kept: PATH ->
// PATH.lost-<UTC time> (when PATH exists), then a new empty PATH (O_EXCL),
// the directory synced when `durable`.
absl::StatusOr<UniqueFd> StartNewSegment(const std::string& path,
                                         bool durable);

}  // namespace tokensign::audit

#endif  // TOKENSIGN_SIGNER_AUDIT_LOG_SEGMENTS_H_
