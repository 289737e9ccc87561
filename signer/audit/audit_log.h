// Hash-chained, append-only audit log: one JSON line per signing decision.
// Each line carries `prev` = hex SHA-256 of the previous line (the first line's
// prev is the hash of a genesis record naming the log). Append blocks until the
// record is durable (group-committed by a writer thread with fdatasync) unless
// durability is kNone. Thread-safety: AuditLog is safe for concurrent Append
// from many threads.
//
// Line format: see signer/audit/audit_format.h. Group commit: Append formats
// its record outside the lock, chains it (seq, prev: one SHA-256) under a
// short lock and enqueues it; one writer thread (optionally lingering, see
// AuditLogOptions.commit_linger) takes ALL queued lines, writes them with one
// write() and one fdatasync() (none with kNone), then wakes the waiters. A
// write/sync/rotate error fails every waiting Append and every later one with
// the same Status (the log stops accepting: no silent gap in the chain).
// Rotation: when the active file exceeds rotate_bytes, the next line goes to a
// fresh file: path -> path.1 (path.1 -> path.2, ...; nothing is deleted), and
// the new file begins with a continuation record whose prev is the hash of the
// previous file's last line.
#ifndef TOKENSIGN_SIGNER_AUDIT_AUDIT_LOG_H_
#define TOKENSIGN_SIGNER_AUDIT_AUDIT_LOG_H_

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "signer/audit/audit_record.h"

namespace tokensign::audit {

class AnchorStore;     // signer/audit/anchor_store.h
struct CheckpointKey;  // signer/audit/checkpoint.h

enum class Durability { kFsync, kNone };

struct AuditLogOptions {
  std::string path;  // active file; rotated files get .1, .2, ...
  std::string log_name = "tokensign";  // named in the genesis record
  Durability durability = Durability::kFsync;
  // Rotate when the active file exceeds this; 0 = never.
  int64_t rotate_bytes = 64 << 20;
  // Group commit (after PostgreSQL's commit_delay/commit_siblings): while
  // records announced before the linger began are outstanding (ExpectRecords;
  // the daemon announces each token while it is being signed; one announced
  // later does not extend the linger), or, for a log that never gets
  // announcements, when the previous commit covered more than one decision
  // record, the writer lingers up to commit_linger after waking, or
  // until commit_batch_records decisions are queued, before one write() and
  // one fdatasync(). A lone appender is never delayed, and blocked synchronous
  // Appends end the linger once as many are queued as the last commit had.
  // Durability is unchanged: an Append completes only after its line is synced.
  // Costs at most commit_linger of latency per record under load; saves an
  // fdatasync (and a writer wake-up) per record otherwise. Zero = commit at
  // once. Measured (tokensign-bench core, ES256, 2 signing threads, ext4 on a
  // VM, fdatasync ~0.8 ms, ~330 us of process CPU per commit): 0 -> 2-5
  // records per commit, audit/no-audit 0.70; 1 ms -> ~12, 0.78-0.92;
  // 2 ms -> ~20, 0.86-0.90; 4 ms -> ~50, 0.89-1.06.
  absl::Duration commit_linger = absl::Milliseconds(2);
  int commit_batch_records = 128;

  // Signed checkpoints (signer/audit/checkpoint.h); null = none. With a key,
  // a checkpoint is appended every checkpoint_every_records decision records
  // or checkpoint_every, whichever comes first (only when lines were added),
  // at rotation (the new file's continuation record is a checkpoint), at
  // Open and at clean close (final). A thread of its own signs them: a
  // checkpoint never delays an Append. Rotation waits for the checkpoint (the
  // file may outgrow rotate_bytes while the key cannot sign).
  std::shared_ptr<const CheckpointKey> checkpoint_key = nullptr;
  int64_t checkpoint_every_records = 1000;
  absl::Duration checkpoint_every = absl::Seconds(10);
  // A checkpoint that checkpoint_every_records asks for waits until this long
  // after the previous one (rotation, Open, close and the timer do not).
  // Each checkpoint rewrites its anchor, an object write in the HSM: SoftHSM's
  // file store rescans the token's directory for it (~17 ms of CPU at 3,000
  // objects), and a hardware HSM's object storage is not made for several
  // writes a second. The daemon's default is 1 s; zero = no minimum.
  absl::Duration checkpoint_min_interval = absl::ZeroDuration();
  std::string instance = "";  // named in genesis, checkpoints, anchors
  // Where each checkpoint is anchored after it is durable in the log; Open
  // checks the active file against the anchor (signer/audit/anchor_check.h)
  // and, if the file does not reach it, returns a log that refuses every
  // Append until AcknowledgeLoss. Null = not anchored. Must outlive the log.
  AnchorStore* anchors = nullptr;
};

// Counters for metrics (records per fsync = records / commits).
struct AuditLogStats {
  int64_t records = 0;    // decision records made durable since Open
  int64_t commits = 0;    // write()+fdatasync() rounds
  int64_t bytes = 0;      // bytes written since Open
  int64_t rotations = 0;  // files rotated since Open
  int64_t lingered = 0;   // commits that waited (commit_linger) for more records
  int64_t checkpoints = 0;        // checkpoint lines made durable since Open
  int64_t checkpoint_errors = 0;  // failed signatures or anchor writes
  int64_t anchor_writes = 0;      // anchors stored
};

// The audit log's contract. Every member is pure: the file-backed log
// (file_audit_log.h) and test fakes implement all of it. Thread-safety: every
// method may be called from any thread, concurrently.
class AuditLog {
 public:
  // Opens (0600, O_APPEND|O_CLOEXEC|O_NOFOLLOW; a regular file only;
  // group/other permission bits on an existing file are removed) or creates the
  // log; resumes the chain from the last complete line after checking that it
  // links to the line before it (DataLoss if not, or if that line is
  // unparsable: run VerifyAuditChain). A torn last line (no trailing newline)
  // is truncated away, reported via torn_tail_repaired(), and recorded in the
  // chain as a "repair" record. A new file starts with a genesis record, or
  // with a continuation record when rotated files path.N exist. Returns after
  // those records are durable. (audit_log_open.cc)
  static absl::StatusOr<std::unique_ptr<AuditLog>> Open(
      const AuditLogOptions& options);
  // Drains the queue (every accepted Append completes) and stops the writer
  // thread.
  virtual ~AuditLog() = default;

  // Appends and waits until durable. Fails (and the caller must not release a
  // token) if the record could not be written.
  virtual absl::Status Append(const AuditRecord& record) = 0;
  // Asynchronous Append for callers that must not block a worker thread on
  // fdatasync (e.g. a gRPC callback handler): `done` runs exactly once, on the
  // writer thread after the record is durable (OK) or could not be written (the
  // same error Append returns), or inline before AppendAsync returns if the log
  // already stopped. `done` must be quick and must not call back into this
  // log's Append. Release the token only on OK. With N requests in flight, one
  // fdatasync covers up to N records even when only two threads sign, so
  // durability costs little throughput.
  virtual void AppendAsync(const AuditRecord& record,
                           absl::AnyInvocable<void(absl::Status) &&> done) = 0;
  // Announces records that callers are about to append (+n) or no longer will
  // (-n): a service calls +1 before it signs a token and -1 just before it
  // appends the decision. Once a caller has announced, the group commit
  // lingers only while announced records are outstanding, and ends the
  // linger the moment none are. Without announcements the log guesses from
  // the previous commit (see AuditLogOptions.commit_linger).
  virtual void ExpectRecords(int delta) = 0;

  // OK while the log accepts appends; otherwise the error that stopped it (for
  // /readyz).
  virtual absl::Status health() const = 0;
  // Whether Open truncated a torn last line, and how many bytes (0 if none).
  virtual bool torn_tail_repaired() const = 0;
  virtual int64_t torn_tail_bytes() const = 0;
  // seq of the last line made durable (0 = genesis only).
  virtual int64_t last_durable_seq() const = 0;
  virtual AuditLogStats stats() const = 0;

  // Checkpoints (AuditLogOptions.checkpoint_key). Writes one now, waits until
  // it is durable and anchored. FailedPrecondition without a key.
  virtual absl::Status Checkpoint() = 0;
  // The log id (genesis record; "" for a log without checkpoints that
  // predates log ids).
  virtual std::string log_id() const = 0;
  // A log that Open refused (health() says why) starts over: the refused
  // active file is renamed to PATH.lost-<UTC time>, and a new segment begins
  // at PATH with a genesis record that names the anchored checkpoint of the
  // old log, `by` and `reason`; its first checkpoint links to that anchor.
  // The old anchor is kept as an archived record (audit::ArchiveAnchor) until
  // a custodian retires it. FailedPrecondition when the log was not refused.
  virtual absl::Status AcknowledgeLoss(std::string_view by,
                                       std::string_view reason) = 0;
};

}  // namespace tokensign::audit

#endif  // TOKENSIGN_SIGNER_AUDIT_AUDIT_LOG_H_
