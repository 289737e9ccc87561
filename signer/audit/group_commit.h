// GroupCommitter owns the audit lines that are chained but not yet durable,
// the active WritableFile and the writer thread that writes them in groups:
// one Append and one Sync (fdatasync) per group, then it wakes the waiters and
// runs the AppendAsync completions. It also decides how long to wait for more
// records before a commit (AuditLogOptions.commit_linger). A write, sync or
// rotation error fails every waiting record and every later one with the
// same Status (no silent gap in the chain).
//
// Thread-safety: the committer shares its owner's mutex (`mu`, as leveldb's
// DBImpl shares mutex_ with its writers): the *Locked methods are called with
// it held, from any thread; Stop without it. The writer thread is internal.
// The mutex is a StdMutex (std::mutex), not absl::Mutex, so that TSan sees
// the hand-off between appenders and the writer (std_mutex.h).
#ifndef TOKENSIGN_SIGNER_AUDIT_GROUP_COMMIT_H_
#define TOKENSIGN_SIGNER_AUDIT_GROUP_COMMIT_H_

#include <cstdint>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "signer/audit/std_mutex.h"
#include "signer/audit/writable_file.h"

namespace tokensign::audit {

class GroupCommitter {
 public:
  using Callback = absl::AnyInvocable<void(absl::Status) &&>;
  // Rotation, on the writer thread: moves the full active file aside and
  // returns the fresh one (log_segments.h).
  using RotateFn =
      absl::AnyInvocable<absl::StatusOr<std::unique_ptr<WritableFile>>()>;

  struct Options {
    bool sync = true;  // Sync after every group (false: Durability::kNone)
    absl::Duration linger = absl::ZeroDuration();
    int batch_records = 128;
  };
  struct Stats {
    int64_t records = 0;    // decision records made durable
    int64_t commits = 0;    // Append+Sync rounds
    int64_t bytes = 0;      // bytes written
    int64_t rotations = 0;  // files rotated
    int64_t lingered = 0;   // commits that waited for more records
  };

  GroupCommitter(StdMutex* mu, Options options, RotateFn rotate);
  ~GroupCommitter();  // Stop()
  GroupCommitter(const GroupCommitter&) = delete;
  GroupCommitter& operator=(const GroupCommitter&) = delete;

  // Lines up to durable_seq are durable already; starts the writer on `file`.
  void StartLocked(std::unique_ptr<WritableFile> file, int64_t durable_seq)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(*mu_);
  bool running() const { return writer_.joinable(); }
  // Writes everything queued, then joins the writer. Idempotent.
  void Stop() ABSL_LOCKS_EXCLUDED(*mu_);

  // The open group's bytes: append whole lines (with '\n'), then call
  // LineAddedLocked for each.
  std::string* BufferLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(*mu_);
  // The lines queued from now on go to a fresh file (rotation first).
  void NewFileLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(*mu_);
  // A line with `seq` was appended to BufferLocked(); `decision` counts it as
  // a record (stats, batch size).
  void LineAddedLocked(int64_t seq, bool decision)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(*mu_);
  // Runs `done` once the last line added is durable (or failed).
  void AddCallbackLocked(Callback done) ABSL_EXCLUSIVE_LOCKS_REQUIRED(*mu_);
  // The last decision added belongs to a blocked synchronous Append.
  void SyncWaiterLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(*mu_);
  // Waits until `seq` is durable; the failure if it never will be.
  absl::Status WaitDurableLocked(int64_t seq)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(*mu_);
  // Announced records (AuditLog::ExpectRecords).
  void ExpectLocked(int delta) ABSL_EXCLUSIVE_LOCKS_REQUIRED(*mu_);

  // The log refuses appends with `why` (Open refused it) / again accepts them.
  void FailLocked(absl::Status why) ABSL_EXCLUSIVE_LOCKS_REQUIRED(*mu_) {
    failed_ = std::move(why);
  }
  void ClearFailureLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(*mu_) {
    failed_ = absl::OkStatus();
  }
  const absl::Status& failure_locked() const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(*mu_) {
    return failed_;
  }
  bool stopping_locked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(*mu_) {
    return stopping_;
  }
  int64_t durable_seq_locked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(*mu_) {
    return durable_seq_;
  }
  const Stats& stats_locked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(*mu_) {
    return stats_;
  }

 private:
  // A run of lines for one file; rotate_before = rotate the active file first.
  struct Segment {
    bool rotate_before = false;
    std::string data;
    int64_t last_seq = -1;
    int64_t decisions = 0;
    std::vector<Callback> callbacks;  // share the segment's fate
  };
  enum class WriterState { kBusy, kIdle, kLingering };

  void WriterLoop();
  // Waits (lingers) for more records before a commit, when they are coming.
  void MaybeLingerLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(*mu_);
  // Writes `batch` on the writer thread, without the lock. Returns how many
  // segments are durable and the error that stopped it.
  absl::Status WriteBatch(const std::vector<Segment>& batch, size_t* written,
                          int64_t* durable, Stats* delta);
  bool MoreComingLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(*mu_);
  bool AwaitedOutstandingLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(*mu_);
  int64_t OutstandingLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(*mu_) {
    return announced_total_ - withdrawn_total_;
  }
  bool SyncBatchCompleteLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(*mu_);

  StdMutex* const mu_;
  const Options options_;
  RotateFn rotate_;
  std::unique_ptr<WritableFile> file_;  // writer thread only once started
  std::thread writer_;
  StdCondVar work_cv_;  // writer waits for pending_ / stopping_
  StdCondVar done_cv_;  // waiters wait for durable_seq_ / failed_

  std::vector<Segment> pending_ ABSL_GUARDED_BY(*mu_);
  int64_t durable_seq_ ABSL_GUARDED_BY(*mu_) = -1;
  absl::Status failed_ ABSL_GUARDED_BY(*mu_);
  bool stopping_ ABSL_GUARDED_BY(*mu_) = false;
  Stats stats_ ABSL_GUARDED_BY(*mu_);
  WriterState writer_state_ ABSL_GUARDED_BY(*mu_) = WriterState::kBusy;
  int64_t queued_decisions_ ABSL_GUARDED_BY(*mu_) = 0;  // in pending_
  int64_t last_commit_decisions_ ABSL_GUARDED_BY(*mu_) = 0;
  int64_t sync_queued_ ABSL_GUARDED_BY(*mu_) = 0;  // of queued_decisions_
  int64_t last_commit_sync_ ABSL_GUARDED_BY(*mu_) = 0;
  bool announced_ ABSL_GUARDED_BY(*mu_) = false;    // ever announced
  // Announcements made / withdrawn so far (their difference: announced
  // records outstanding), and while lingering, how many withdrawals end the
  // linger: those announced when it began (a record announced later does not
  // extend it).
  int64_t announced_total_ ABSL_GUARDED_BY(*mu_) = 0;
  int64_t withdrawn_total_ ABSL_GUARDED_BY(*mu_) = 0;
  int64_t linger_until_withdrawn_ ABSL_GUARDED_BY(*mu_) = 0;
};

}  // namespace tokensign::audit

#endif  // TOKENSIGN_SIGNER_AUDIT_GROUP_COMMIT_H_
