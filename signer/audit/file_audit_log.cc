// FileAuditLog's append path and accessors (see file_audit_log.h).
#include "signer/audit/file_audit_log.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "signer/audit/audit_format.h"
#include "signer/audit/line_writer.h"
#include "signer/audit/log_segments.h"

namespace tokensign::audit {
namespace {

GroupCommitter::Options CommitOptions(const AuditLogOptions& o) {
  GroupCommitter::Options c;
  c.sync = o.durability == Durability::kFsync;
  c.linger = o.commit_linger;
  c.batch_records = o.commit_batch_records;
  return c;
}

}  // namespace

FileAuditLog::FileAuditLog(AuditLogOptions options,
                           std::unique_ptr<WritableFile> file,
                           int64_t file_bytes)
    : options_(std::move(options)),
      initial_file_(std::move(file)),
      committer_(&mu_, CommitOptions(options_),
                 [this] {
                   return RotateLogFiles(
                       options_.path,
                       options_.durability == Durability::kFsync);
                 }),
      active_bytes_(file_bytes) {}

std::unique_ptr<FileAuditLog> FileAuditLog::Refused(AuditLogOptions options,
                                                    absl::Status why,
                                                    Anchor anchor) {
  auto log = std::make_unique<FileAuditLog>(std::move(options), nullptr, 0);
  StdMutexLock lock(&log->mu_);
  log->committer_.FailLocked(std::move(why));
  log->refused_anchor_ = std::move(anchor);
  return log;
}

FileAuditLog::~FileAuditLog() {
  StopCheckpointer();
  // A clean close ends with a final checkpoint, while the writer still runs.
  if (options_.checkpoint_key != nullptr && committer_.running()) {
    StdMutexLock cp_lock(&cp_mu_);
    WriteCheckpointLocked(/*final=*/true, /*force=*/true).IgnoreError();
  }
  {
    StdMutexLock lock(&mu_);
    closing_ = true;
  }
  committer_.Stop();
}

absl::Status FileAuditLog::Start(int64_t next_seq, std::string prev_hash,
                                 const std::string& genesis_line,
                                 const std::string& continuation_body,
                                 const std::string& repair_body) {
  StdMutexLock lock(&mu_);
  chain_.Reset(next_seq, std::move(prev_hash));
  int64_t last = next_seq - 1;
  if (!genesis_line.empty())
    last = AddRawLocked(genesis_line, 0, LineKind::kOther);
  if (!continuation_body.empty())
    last = AddBodyLocked(continuation_body, LineKind::kOther);
  if (!repair_body.empty())
    last = AddBodyLocked(repair_body, LineKind::kOther);
  committer_.StartLocked(std::move(initial_file_), next_seq - 1);
  return committer_.WaitDurableLocked(last);
}

std::string FileAuditLog::Body(const AuditRecord& record) {
  std::string body;
  body.reserve(512);
  AppendDecisionBody(
      record, record.time != absl::UnixEpoch() ? record.time : absl::Now(),
      &body);
  return body;
}

absl::Status FileAuditLog::Append(const AuditRecord& record) {
  std::string body = Body(record);
  StdMutexLock lock(&mu_);
  absl::StatusOr<int64_t> seq = EnqueueLocked(body, nullptr);
  if (!seq.ok()) return seq.status();
  committer_.SyncWaiterLocked();
  return committer_.WaitDurableLocked(*seq);
}

void FileAuditLog::AppendAsync(const AuditRecord& record,
                               absl::AnyInvocable<void(absl::Status) &&> done) {
  std::string body = Body(record);
  absl::Status rejected;
  {
    StdMutexLock lock(&mu_);
    absl::StatusOr<int64_t> seq = EnqueueLocked(body, &done);
    if (seq.ok()) return;  // `done` now belongs to the committer
    rejected = seq.status();
  }
  std::move(done)(rejected);
}

void FileAuditLog::ExpectRecords(int delta) {
  StdMutexLock lock(&mu_);
  committer_.ExpectLocked(delta);
}

absl::StatusOr<int64_t> FileAuditLog::EnqueueLocked(std::string_view body,
                                                    Callback* done) {
  if (const absl::Status& failed = committer_.failure_locked(); !failed.ok())
    return failed;
  if (closing_ || committer_.stopping_locked()) {
    return absl::FailedPreconditionError(
        absl::StrCat("audit log ", options_.path, ": Append after close"));
  }
  if (options_.checkpoint_key != nullptr) {
    // The checkpoint thread rotates: the new file's first line is a
    // checkpoint. Until then lines keep going to the full file.
    if (options_.rotate_bytes > 0 && active_bytes_ > options_.rotate_bytes &&
        !rotate_wanted_) {
      rotate_wanted_ = true;
      cp_cv_.Signal();
    }
  } else if (options_.rotate_bytes > 0 &&
             active_bytes_ > options_.rotate_bytes) {
    // The next line opens a fresh file; its first line continues the chain.
    committer_.NewFileLocked();
    active_bytes_ = 0;
    AddBodyLocked(
        FormatContinuationBody(LogBaseName(options_.path) + ".1", absl::Now()),
        LineKind::kOther);
  }
  int64_t seq = AddBodyLocked(body, LineKind::kDecision);
  if (done != nullptr) committer_.AddCallbackLocked(std::move(*done));
  return seq;
}

int64_t FileAuditLog::AddBodyLocked(std::string_view body, LineKind kind) {
  std::string* data = committer_.BufferLocked();
  const size_t start = data->size();
  return LineAddedLocked(start, chain_.AppendBody(body, data), kind);
}

int64_t FileAuditLog::AddRawLocked(std::string_view line, int64_t seq,
                                   LineKind kind) {
  std::string* data = committer_.BufferLocked();
  const size_t start = data->size();
  return LineAddedLocked(start, chain_.AppendRaw(line, seq, data), kind);
}

// The line occupies the committer's buffer from `start`: count it and hand it
// to the committer.
int64_t FileAuditLog::LineAddedLocked(size_t start, int64_t seq,
                                      LineKind kind) {
  if (options_.checkpoint_key != nullptr && kind != LineKind::kCheckpoint) {
    // Wake the checkpoint thread when its timer starts or its count is
    // reached; otherwise it finds the lines when it wakes.
    if (++uncovered_lines_ == 1) cp_cv_.Signal();
    if (kind == LineKind::kDecision &&
        ++chained_decisions_ - decisions_at_cover_ ==
            options_.checkpoint_every_records) {
      cp_cv_.Signal();
    }
  }
  // The '\n' is counted too, as before.
  active_bytes_ +=
      static_cast<int64_t>(committer_.BufferLocked()->size() - start);
  committer_.LineAddedLocked(seq, kind == LineKind::kDecision);
  return seq;
}

absl::Status FileAuditLog::health() const {
  StdMutexLock lock(&mu_);
  return committer_.failure_locked();
}

int64_t FileAuditLog::last_durable_seq() const {
  StdMutexLock lock(&mu_);
  return committer_.durable_seq_locked();
}

AuditLogStats FileAuditLog::stats() const {
  StdMutexLock lock(&mu_);
  const GroupCommitter::Stats& c = committer_.stats_locked();
  AuditLogStats s;
  s.records = c.records;
  s.commits = c.commits;
  s.bytes = c.bytes;
  s.rotations = c.rotations;
  s.lingered = c.lingered;
  s.checkpoints = checkpoints_;
  s.checkpoint_errors = checkpoint_errors_;
  s.anchor_writes = anchor_writes_;
  return s;
}

std::string FileAuditLog::log_id() const {
  StdMutexLock lock(&mu_);
  return log_id_;
}

}  // namespace tokensign::audit
