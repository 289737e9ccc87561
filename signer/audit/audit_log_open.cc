// AuditLog::Open: checks the options, checks the active file against the
// anchor (when checkpointed), repairs a torn tail, resumes the chain from the
// last complete line (or after an interrupted rotation) and starts the
// FileAuditLog. Recovery runs on the calling thread before any writer exists.
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "signer/audit/anchor_check.h"
#include "signer/audit/anchor_store.h"
#include "signer/audit/audit_format.h"
#include "signer/audit/audit_io.h"
#include "signer/audit/audit_log.h"
#include "signer/audit/checkpoint.h"
#include "signer/audit/file_audit_log.h"
#include "signer/audit/log_segments.h"
#include "signer/audit/writable_file.h"

namespace tokensign::audit {

absl::StatusOr<std::unique_ptr<AuditLog>> AuditLog::Open(
    const AuditLogOptions& options) {
  const std::string& path = options.path;
  if (path.empty()) {
    return absl::InvalidArgumentError(
        "AuditLogOptions.path: must not be empty");
  }
  if (options.commit_linger < absl::ZeroDuration() ||
      options.commit_batch_records < 1) {
    return absl::InvalidArgumentError(
        "AuditLogOptions.commit_linger: must be >= 0, and commit_batch_records "
        ">= 1");
  }
  if (options.rotate_bytes < 0) {
    return absl::InvalidArgumentError(
        "AuditLogOptions.rotate_bytes: must be >= 0");
  }
  const bool checkpoints = options.checkpoint_key != nullptr;
  if (checkpoints && (options.checkpoint_every_records < 1 ||
                      options.checkpoint_every <= absl::ZeroDuration())) {
    return absl::InvalidArgumentError(
        "AuditLogOptions.checkpoint_every_records: must be >= 1, and "
        "checkpoint_every > 0");
  }
  // With checkpoints: what the active file holds, checked against the anchor
  // before anything is written to it.
  ActiveFileScan scan;
  int64_t anchor_version = 0;
  if (checkpoints) {
    auto scanned = ScanActiveFile(path);
    if (!scanned.ok()) return scanned.status();
    scan = *std::move(scanned);
    if (options.anchors != nullptr) {
      auto anchor =
          LoadAnchor(*options.anchors, AnchorRecordName(options.instance));
      if (!anchor.ok()) return anchor.status();
      if (anchor->has_value()) {
        anchor_version = (*anchor)->version;
        absl::Status check = CheckAgainstAnchor(
            path, scan, **anchor,
            CheckpointTrust::Pinned({options.checkpoint_key->kid}));
        if (!check.ok()) {
          return std::unique_ptr<AuditLog>(
              FileAuditLog::Refused(options, check, **anchor));
        }
      }
    }
  }
  const std::string log_id = scan.log_id.empty() ? NewLogId() : scan.log_id;
  absl::StatusOr<UniqueFd> opened =
      OpenAppendFd(path, /*exclusive=*/false, "open");
  if (!opened.ok()) return opened.status();
  UniqueFd wfd = *std::move(opened);
  struct stat st;
  if (::fstat(wfd.get(), &st) != 0) return PosixError("fstat", path, errno);
  if (!S_ISREG(st.st_mode)) {
    return absl::FailedPreconditionError(
        absl::StrCat("AuditLogOptions.path: ", path, " is not a regular file"));
  }
  if ((st.st_mode & 077) != 0 && ::fchmod(wfd.get(), 0600) != 0) {
    return PosixError("fchmod 0600", path, errno);
  }
  auto tail = ReadLogTail(path);
  if (!tail.ok()) return tail.status();

  std::string genesis, continuation, repair, prev_hash;
  int64_t next_seq = 0;
  int64_t dropped = tail->size - tail->complete_end;
  if (dropped > 0) {
    repair = FormatRepairBody(dropped, Sha256Hex(tail->torn), absl::Now());
    if (::ftruncate(wfd.get(), tail->complete_end) != 0) {
      return PosixError("ftruncate (torn tail)", path, errno);
    }
  }
  if (tail->has_last) {
    auto last = CheckTailLinks(path, *tail);
    if (!last.ok()) return last.status();
    next_seq = last->seq + 1;
    prev_hash = Sha256Hex(tail->last_line);
  } else {
    std::vector<std::string> files = AuditChainFiles(path);
    std::erase(files, path);
    if (files.empty()) {
      GenesisInfo g;
      g.log_name = options.log_name;
      g.log_id = log_id;
      g.instance = options.instance;
      g.created = absl::Now();
      genesis = FormatGenesisLine(g);
    } else {
      // A rotation was interrupted before the fresh file got its first line.
      auto prev_tail = ReadLogTail(files.back());
      if (!prev_tail.ok()) return prev_tail.status();
      if (!prev_tail->has_last || prev_tail->complete_end != prev_tail->size) {
        return absl::DataLossError(
            absl::StrCat("audit log ", files.back(),
                         ": rotated file ends without a complete line"));
      }
      auto last = CheckTailLinks(files.back(), *prev_tail);
      if (!last.ok()) return last.status();
      next_seq = last->seq + 1;
      prev_hash = Sha256Hex(prev_tail->last_line);
      continuation =
          FormatContinuationBody(LogBaseName(files.back()), absl::Now());
    }
  }
  if (options.durability == Durability::kFsync) {
    if (dropped > 0 && ::fsync(wfd.get()) != 0)
      return PosixError("fsync", path, errno);
    absl::Status s = SyncParentDir(path);
    if (!s.ok()) return s;
  }
  auto log = std::make_unique<FileAuditLog>(
      options, std::make_unique<PosixWritableFile>(std::move(wfd), path),
      tail->complete_end);
  log->set_torn_tail_bytes(dropped);
  if (checkpoints) log->InitCheckpoints(scan, log_id, anchor_version);
  absl::Status s =
      log->Start(next_seq, std::move(prev_hash), genesis, continuation, repair);
  if (!s.ok()) return s;
  if (checkpoints) {
    if (absl::Status c = log->BeginCheckpoints(); !c.ok()) return c;
  }
  return std::unique_ptr<AuditLog>(std::move(log));
}

}  // namespace tokensign::audit
