// FileAuditLog: the AuditLog that AuditLog::Open returns (internal to
// signer/audit). It owns the log's one mutex and, under it, the chain head
// (ChainWriter), the group committer's queue (GroupCommitter) and the
// checkpoint state; a checkpoint thread of its own signs checkpoints.
// Thread-safety: every public method from any thread. Lock order: cp_mu_,
// then mu_. Code: file_audit_log.cc (appends), audit_checkpointer.cc
// (checkpoints, AcknowledgeLoss), audit_log_open.cc (Open, recovery).
#ifndef TOKENSIGN_SIGNER_AUDIT_FILE_AUDIT_LOG_H_
#define TOKENSIGN_SIGNER_AUDIT_FILE_AUDIT_LOG_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "signer/audit/anchor_check.h"
#include "signer/audit/audit_log.h"
#include "signer/audit/chain_writer.h"
#include "signer/audit/checkpoint.h"
#include "signer/audit/group_commit.h"
#include "signer/audit/std_mutex.h"
#include "signer/audit/writable_file.h"

namespace tokensign::audit {

// What a line is, for the group commit and the checkpoint counters.
enum class LineKind { kOther, kDecision, kCheckpoint };

class FileAuditLog final : public AuditLog {
 public:
  // `file` is the open active file holding file_bytes bytes (null for a
  // refused log).
  FileAuditLog(AuditLogOptions options, std::unique_ptr<WritableFile> file,
               int64_t file_bytes);
  // A log Open refused (see AuditLogOptions.anchors): no file is open and
  // every Append fails with `why` until AcknowledgeLoss.
  static std::unique_ptr<FileAuditLog> Refused(AuditLogOptions options,
                                               absl::Status why,
                                               Anchor anchor);
  ~FileAuditLog() override;

  // Open's steps (audit_log_open.cc): the checkpoint state of the scanned
  // file, then Start (chains the initial lines, starts the writer and waits
  // until they are durable), then BeginCheckpoints.
  void InitCheckpoints(const ActiveFileScan& scan, std::string log_id,
                       int64_t anchor_version);
  absl::Status Start(int64_t next_seq, std::string prev_hash,
                     const std::string& genesis_line,
                     const std::string& continuation_body,
                     const std::string& repair_body);
  absl::Status BeginCheckpoints();
  void set_torn_tail_bytes(int64_t n) { torn_tail_bytes_ = n; }

  // AuditLog.
  absl::Status Append(const AuditRecord& record) override;
  void AppendAsync(const AuditRecord& record,
                   absl::AnyInvocable<void(absl::Status) &&> done) override;
  void ExpectRecords(int delta) override;
  absl::Status health() const override;
  bool torn_tail_repaired() const override { return torn_tail_bytes_ > 0; }
  int64_t torn_tail_bytes() const override { return torn_tail_bytes_; }
  int64_t last_durable_seq() const override;
  AuditLogStats stats() const override;
  absl::Status Checkpoint() override;
  std::string log_id() const override;
  absl::Status AcknowledgeLoss(std::string_view by,
                               std::string_view reason) override;

 private:
  using Callback = GroupCommitter::Callback;

  static std::string Body(const AuditRecord& record);
  // Chains a decision line (rotating first if the active file is full). With
  // `done`, the committer runs it once the line is durable. Returns the
  // line's seq, or why the log refuses it.
  absl::StatusOr<int64_t> EnqueueLocked(std::string_view body, Callback* done)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Chains `body` into the committer's queue; counts it for checkpoints.
  int64_t AddBodyLocked(std::string_view body, LineKind kind)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  int64_t AddRawLocked(std::string_view line, int64_t seq, LineKind kind)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  int64_t LineAddedLocked(size_t start, int64_t seq, LineKind kind)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  // audit_checkpointer.cc.
  absl::Status WriteCheckpointLocked(bool final, bool force)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(cp_mu_);
  absl::Status StoreAnchor(const Anchor& anchor);
  void StartCheckpointer();
  void StopCheckpointer();
  void CheckpointerLoop();

  const AuditLogOptions options_;
  int64_t torn_tail_bytes_ = 0;
  std::unique_ptr<WritableFile> initial_file_;  // until Start

  mutable StdMutex mu_;
  ChainWriter chain_ ABSL_GUARDED_BY(mu_);
  GroupCommitter committer_;  // shares mu_
  int64_t active_bytes_ ABSL_GUARDED_BY(mu_) = 0;  // written + queued
  bool closing_ ABSL_GUARDED_BY(mu_) = false;      // Appends refused

  // Checkpoints (options_.checkpoint_key).
  StdMutex cp_mu_;  // one checkpoint at a time
  std::thread checkpointer_;
  StdCondVar cp_cv_;  // checkpoint thread waits for a trigger
  bool cp_stop_ ABSL_GUARDED_BY(mu_) = false;
  std::string log_id_ ABSL_GUARDED_BY(mu_);
  CheckpointRef last_cp_ ABSL_GUARDED_BY(mu_);  // seq -1: none yet
  int64_t chained_decisions_ ABSL_GUARDED_BY(mu_) = 0;   // since Open
  int64_t decisions_at_cover_ ABSL_GUARDED_BY(mu_) = 0;  // at last covered line
  int64_t uncovered_lines_ ABSL_GUARDED_BY(mu_) = 0;  // non-checkpoint lines
  bool rotate_wanted_ ABSL_GUARDED_BY(mu_) = false;
  absl::Time last_cp_time_ ABSL_GUARDED_BY(mu_);
  int64_t anchor_version_ ABSL_GUARDED_BY(mu_) = 0;
  bool unanchored_pending_ ABSL_GUARDED_BY(mu_) = false;
  absl::Status last_cp_error_ ABSL_GUARDED_BY(mu_);
  int64_t checkpoints_ ABSL_GUARDED_BY(mu_) = 0;        // stats
  int64_t checkpoint_errors_ ABSL_GUARDED_BY(mu_) = 0;  // stats
  int64_t anchor_writes_ ABSL_GUARDED_BY(mu_) = 0;      // stats
  std::optional<Anchor> unanchored_ ABSL_GUARDED_BY(cp_mu_);
  // Set while Open refused the log (AcknowledgeLoss clears it).
  std::optional<Anchor> refused_anchor_ ABSL_GUARDED_BY(mu_);
};

}  // namespace tokensign::audit

#endif  // TOKENSIGN_SIGNER_AUDIT_FILE_AUDIT_LOG_H_
