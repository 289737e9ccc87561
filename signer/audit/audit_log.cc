// AuditLog implementation: a file-backed, group-committing, hash-chained log.
#include "signer/audit/audit_log.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <optional>
#include <string_view>
#include <thread>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "signer/audit/anchor_check.h"
#include "signer/audit/anchor_store.h"
#include "signer/audit/audit_format.h"
#include "signer/audit/audit_io.h"
#include "signer/audit/checkpoint.h"
#include "signer/audit/checkpoint_keys.h"
#include "signer/audit/line_writer.h"
#include "signer/audit/unique_fd.h"

namespace tokensign::audit {
namespace {

constexpr int kOpenFlags =
    O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW;

std::string BaseName(const std::string& path) {
  return std::filesystem::path(path).filename().string();
}

std::string DirName(const std::string& path) {
  std::filesystem::path p(path);
  return p.has_parent_path() ? p.parent_path().string() : std::string(".");
}

absl::Status WriteAll(int fd, std::string_view data, const std::string& path) {
  while (!data.empty()) {
    ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return PosixError("write", path, errno);
    data.remove_prefix(static_cast<size_t>(n));
  }
  return absl::OkStatus();
}

absl::Status SyncDir(const std::string& path) {
  std::string dir = DirName(path);
  UniqueFd dfd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!dfd.valid()) return PosixError("open directory", dir, errno);
  if (::fsync(dfd.get()) != 0) return PosixError("fsync directory", dir, errno);
  return absl::OkStatus();
}

// What a line is, for the group commit and the checkpoint counters.
enum class LineKind { kOther, kDecision, kCheckpoint };

class FileAuditLog final : public AuditLog {
 public:
  FileAuditLog(AuditLogOptions options, UniqueFd fd, int64_t file_bytes)
      : options_(std::move(options)),
        fd_(std::move(fd)),
        active_bytes_(file_bytes) {}

  // A log Open refused (see AuditLogOptions.anchors): no file is open and
  // every Append fails with `why` until AcknowledgeLoss.
  static std::unique_ptr<FileAuditLog> Refused(AuditLogOptions options,
                                               absl::Status why,
                                               Anchor anchor) {
    auto log =
        std::make_unique<FileAuditLog>(std::move(options), UniqueFd(), 0);
    absl::MutexLock lock(&log->mu_);
    log->failed_ = std::move(why);
    log->refused_anchor_ = std::move(anchor);
    return log;
  }

  ~FileAuditLog() override {
    StopCheckpointer();
    // A clean close ends with a final checkpoint, while the writer still runs.
    if (options_.checkpoint_key != nullptr && writer_.joinable()) {
      absl::MutexLock cp_lock(&cp_mu_);
      WriteCheckpointLocked(/*final=*/true, /*force=*/true).IgnoreError();
    }
    {
      absl::MutexLock lock(&mu_);
      closing_ = true;
      stopping_ = true;
      work_cv_.Signal();
    }
    if (writer_.joinable()) writer_.join();
  }

  // Checkpoint state from the file Open scanned (before Start chains lines).
  void InitCheckpoints(const ActiveFileScan& scan, std::string log_id,
                       int64_t anchor_version) {
    absl::MutexLock lock(&mu_);
    log_id_ = std::move(log_id);
    if (!scan.checkpoints.empty()) {
      last_cp_ = scan.checkpoints.back().ref;
      last_cp_.log_id = log_id_;
    }
    chained_decisions_ = scan.decisions_after_covered;
    decisions_at_cover_ = 0;
    uncovered_lines_ = scan.lines_after_checkpoint;
    anchor_version_ = anchor_version;
  }

  // After Start: the first checkpoint (it anchors this start; written even
  // when nothing is new), then the checkpoint thread.
  absl::Status BeginCheckpoints() {
    {
      absl::MutexLock cp_lock(&cp_mu_);
      absl::Status s = WriteCheckpointLocked(/*final=*/false, /*force=*/true);
      if (!s.ok()) return s;
    }
    StartCheckpointer();
    return absl::OkStatus();
  }

  // Chains the initial lines (header / repair), starts the writer and waits
  // until they are durable.
  absl::Status Start(int64_t next_seq, std::string prev_hash,
                     const std::string& genesis_line,
                     const std::string& continuation_body,
                     const std::string& repair_body) {
    absl::MutexLock lock(&mu_);
    next_seq_ = next_seq;
    prev_hash_ = std::move(prev_hash);
    durable_seq_ = next_seq - 1;
    int64_t last = durable_seq_;
    if (!genesis_line.empty())
      last = AddRawLocked(genesis_line, 0, LineKind::kOther);
    if (!continuation_body.empty())
      last = AddBodyLocked(continuation_body, LineKind::kOther);
    if (!repair_body.empty())
      last = AddBodyLocked(repair_body, LineKind::kOther);
    writer_ = std::thread([this] { WriterLoop(); });
    while (durable_seq_ < last && failed_.ok()) done_cv_.Wait(&mu_);
    return durable_seq_ >= last ? absl::OkStatus() : failed_;
  }

  absl::Status Append(const AuditRecord& record) override {
    std::string body = Body(record);
    absl::MutexLock lock(&mu_);
    absl::StatusOr<int64_t> seq = EnqueueLocked(body, nullptr);
    if (!seq.ok()) return seq.status();
    // Blocked synchronous appenders cannot add more records: once as many
    // are queued as the last commit had, lingering longer only adds latency.
    ++sync_queued_;
    if (writer_state_ == WriterState::kLingering && SyncBatchCompleteLocked())
      work_cv_.Signal();
    while (durable_seq_ < *seq && failed_.ok()) done_cv_.Wait(&mu_);
    return durable_seq_ >= *seq ? absl::OkStatus() : failed_;
  }

  void AppendAsync(const AuditRecord& record,
                   absl::AnyInvocable<void(absl::Status) &&> done) override {
    std::string body = Body(record);
    absl::Status rejected;
    {
      absl::MutexLock lock(&mu_);
      absl::StatusOr<int64_t> seq = EnqueueLocked(body, &done);
      if (seq.ok()) return;  // `done` now belongs to the pending segment
      rejected = seq.status();
    }
    std::move(done)(rejected);
  }

  void ExpectRecords(int delta) override {
    absl::MutexLock lock(&mu_);
    expected_ += delta;
    announced_ = true;
    if (expected_ <= 0 && writer_state_ == WriterState::kLingering)
      work_cv_.Signal();
  }

  absl::Status Checkpoint() override {
    if (options_.checkpoint_key == nullptr) return AuditLog::Checkpoint();
    absl::MutexLock cp_lock(&cp_mu_);
    return WriteCheckpointLocked(/*final=*/false, /*force=*/true);
  }

  std::string log_id() const override {
    absl::MutexLock lock(&mu_);
    return log_id_;
  }

  absl::Status AcknowledgeLoss(std::string_view by,
                               std::string_view reason) override;

  bool torn_tail_repaired() const override { return torn_tail_bytes_ > 0; }
  int64_t torn_tail_bytes() const override { return torn_tail_bytes_; }
  void set_torn_tail_bytes(int64_t n) { torn_tail_bytes_ = n; }

  absl::Status health() const override {
    absl::MutexLock lock(&mu_);
    return failed_;
  }
  int64_t last_durable_seq() const override {
    absl::MutexLock lock(&mu_);
    return durable_seq_;
  }
  AuditLogStats stats() const override {
    absl::MutexLock lock(&mu_);
    return stats_;
  }

 private:
  // A run of lines for one file; rotate_before = rotate the active file first.
  using Callback = absl::AnyInvocable<void(absl::Status) &&>;
  struct Segment {
    bool rotate_before = false;
    std::string data;
    int64_t last_seq = -1;
    int64_t decisions = 0;
    std::vector<Callback>
        callbacks;  // AppendAsync waiters; share the segment's fate
  };

  static std::string Body(const AuditRecord& record) {
    std::string body;
    body.reserve(512);
    AppendDecisionBody(
        record, record.time != absl::UnixEpoch() ? record.time : absl::Now(),
        &body);
    return body;
  }

  // Chains a decision line (rotating first if the active file is full). With
  // `done`, moves it into the segment. Returns the line's seq, or why the log
  // refuses it.
  absl::StatusOr<int64_t> EnqueueLocked(std::string_view body, Callback* done)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (!failed_.ok()) return failed_;
    if (closing_ || stopping_) {
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
      pending_.emplace_back();
      pending_.back().rotate_before = true;
      active_bytes_ = 0;
      AddBodyLocked(
          FormatContinuationBody(BaseName(options_.path) + ".1", absl::Now()),
          LineKind::kOther);
    }
    int64_t seq = AddBodyLocked(body, LineKind::kDecision);
    if (done != nullptr) pending_.back().callbacks.push_back(std::move(*done));
    return seq;
  }

  // Assembles {"v":1,"seq":N,BODY,"prev":"PREV"} (AssembleLine's bytes)
  // straight into the pending segment and hashes it there: no temporary line.
  int64_t AddBodyLocked(std::string_view body, LineKind kind)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    std::string& data = SegmentForAppendLocked();
    const size_t start = data.size();
    absl::StrAppend(&data, "{\"v\":", kAuditFormatVersion,
                    ",\"seq\":", next_seq_, ",");
    data.append(body);
    data.append(",\"prev\":\"");
    data.append(prev_hash_);
    data.append("\"}");
    return CommitLineLocked(start, next_seq_, kind);
  }

  int64_t AddRawLocked(std::string_view line, int64_t seq, LineKind kind)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    std::string& data = SegmentForAppendLocked();
    const size_t start = data.size();
    data.append(line);
    return CommitLineLocked(start, seq, kind);
  }

  // More records are on their way: announced ones outstanding (ExpectRecords),
  // or, for a log that never gets announcements, the last commit had several.
  bool MoreComingLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return announced_ ? expected_ > 0 : last_commit_decisions_ > 1;
  }

  // Every queued decision is a blocked synchronous Append and there are as
  // many as in the last commit: nobody is likely to add more soon.
  bool SyncBatchCompleteLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return sync_queued_ > 0 && sync_queued_ == queued_decisions_ &&
           sync_queued_ >= last_commit_sync_;
  }

  std::string& SegmentForAppendLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (pending_.empty()) pending_.emplace_back();
    return pending_.back().data;
  }

  // The line occupies pending_.back().data[start..]: chain it and queue it.
  int64_t CommitLineLocked(size_t start, int64_t seq, LineKind kind)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    Segment& seg = pending_.back();
    std::string_view line(seg.data.data() + start, seg.data.size() - start);
    prev_hash_.resize(64);
    if (!hasher_.HexDigest(line, prev_hash_.data())) prev_hash_.clear();
    seg.data.push_back('\n');
    seg.last_seq = seq;
    if (kind == LineKind::kDecision) {
      ++seg.decisions;
      ++queued_decisions_;
    }
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
    active_bytes_ += static_cast<int64_t>(seg.data.size() - start);
    next_seq_ = seq + 1;
    // Wake the writer only when it waits for this: idle (any line), or
    // lingering and the batch is full. Otherwise it finds the line anyway.
    if (writer_state_ == WriterState::kIdle ||
        (writer_state_ == WriterState::kLingering &&
         queued_decisions_ >= options_.commit_batch_records)) {
      work_cv_.Signal();
    }
    return seq;
  }

  void WriterLoop() {
    for (;;) {
      std::vector<Segment> batch;
      {
        absl::MutexLock lock(&mu_);
        writer_state_ = WriterState::kIdle;
        while (pending_.empty() && !stopping_) work_cv_.Wait(&mu_);
        if (pending_.empty()) return;  // stopping and drained
        // commit_delay: linger only while more records are coming: announced
        // ones (ExpectRecords), or without announcements while others append
        // concurrently (the last commit covered several decisions). Never for
        // a lone record.
        if (options_.commit_linger > absl::ZeroDuration() && MoreComingLocked() &&
            !stopping_) {
          writer_state_ = WriterState::kLingering;
          const absl::Time deadline = absl::Now() + options_.commit_linger;
          while (!stopping_ &&
                 queued_decisions_ < options_.commit_batch_records &&
                 !SyncBatchCompleteLocked() && (!announced_ || expected_ > 0) &&
                 !work_cv_.WaitWithDeadline(&mu_, deadline)) {
          }
          ++stats_.lingered;
        }
        writer_state_ = WriterState::kBusy;
        last_commit_decisions_ = queued_decisions_;
        last_commit_sync_ = sync_queued_;
        queued_decisions_ = 0;
        sync_queued_ = 0;
        batch.swap(pending_);
      }
      absl::Status status;
      int64_t durable = -1;
      size_t written = 0;  // segments of `batch` made durable
      AuditLogStats delta;
      for (const Segment& seg : batch) {
        if (seg.rotate_before) {
          status = RotateFiles();
          if (!status.ok()) break;
          ++delta.rotations;
        }
        if (seg.data.empty()) {
          ++written;
          continue;
        }
        status = WriteAll(fd_.get(), seg.data, options_.path);
        if (status.ok() && options_.durability == Durability::kFsync &&
            ::fdatasync(fd_.get()) != 0) {
          status = PosixError("fdatasync", options_.path, errno);
        }
        if (!status.ok()) break;
        durable = seg.last_seq;
        ++written;
        delta.records += seg.decisions;
        delta.bytes += static_cast<int64_t>(seg.data.size());
        ++delta.commits;
      }
      absl::Status failed;
      {
        absl::MutexLock lock(&mu_);
        if (durable >= 0) durable_seq_ = durable;
        stats_.records += delta.records;
        stats_.bytes += delta.bytes;
        stats_.commits += delta.commits;
        stats_.rotations += delta.rotations;
        if (!status.ok()) {
          failed_ = absl::UnavailableError(
              absl::StrCat("audit log stopped accepting appends (no token may "
                           "be released): ",
                           status.message()));
          failed = failed_;
          // Lines queued meanwhile are chained after the failed ones: fail them
          // too.
          for (Segment& seg : pending_) batch.push_back(std::move(seg));
          pending_.clear();
        }
        done_cv_.SignalAll();
      }
      // Async completions run outside the lock.
      for (size_t i = 0; i < batch.size(); ++i) {
        for (Callback& cb : batch[i].callbacks) {
          std::move(cb)(i < written ? absl::OkStatus() : failed);
        }
      }
      if (!failed.ok()) return;
    }
  }

  // Signs the chain head, appends the checkpoint line (as the continuation
  // record of a fresh file when a rotation is due), waits until it is durable
  // and anchors it. Without `force`, only when lines were added (or a
  // rotation is due). A checkpoint whose anchor could not be stored is
  // re-anchored before any newer one is written, so the anchor never lags
  // more than one checkpoint behind the log.
  absl::Status WriteCheckpointLocked(bool final, bool force)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(cp_mu_) {
    const CheckpointKey& key = *options_.checkpoint_key;
    if (unanchored_.has_value()) {
      if (absl::Status s = StoreAnchor(*unanchored_); !s.ok()) return s;
      unanchored_.reset();
    }
    CheckpointPayload payload;
    int64_t decisions = 0;
    int64_t taken = 0;
    {
      absl::MutexLock lock(&mu_);
      if (!failed_.ok()) return failed_;
      if (!force && uncovered_lines_ == 0 && !rotate_wanted_)
        return absl::OkStatus();
      payload.log_id = log_id_;
      payload.instance = options_.instance;
      payload.seq = next_seq_ - 1;
      payload.head = prev_hash_;
      decisions = chained_decisions_;
      payload.records = decisions - decisions_at_cover_;
      payload.time = absl::Now();
      payload.final = final;
      if (last_cp_.seq >= 0) payload.prev = last_cp_;
      taken = uncovered_lines_;
      uncovered_lines_ = 0;
    }
    // The HSM signs outside the lock: Appends go on meanwhile.
    absl::StatusOr<std::string> jws = SignCheckpoint(key, payload);
    Anchor anchor;
    {
      absl::MutexLock lock(&mu_);
      if (!jws.ok()) {
        uncovered_lines_ += taken;
        ++stats_.checkpoint_errors;
        return absl::Status(jws.status().code(),
                            absl::StrCat("audit checkpoint: signing failed: ",
                                         jws.status().message()));
      }
      if (!failed_.ok()) return failed_;
      std::string body;
      if (rotate_wanted_) {
        pending_.emplace_back();
        pending_.back().rotate_before = true;
        active_bytes_ = 0;
        body = FormatCheckpointContinuationBody(BaseName(options_.path) + ".1",
                                                log_id_, payload.time, *jws,
                                                key.public_jwk);
        rotate_wanted_ = false;
      } else {
        body = FormatCheckpointBody(*jws, key.public_jwk);
      }
      const int64_t seq = AddBodyLocked(body, LineKind::kCheckpoint);
      last_cp_ = CheckpointRef{log_id_, seq, prev_hash_};
      decisions_at_cover_ = decisions;
      last_cp_time_ = absl::Now();
      while (durable_seq_ < seq && failed_.ok()) done_cv_.Wait(&mu_);
      if (durable_seq_ < seq) return failed_;
      ++stats_.checkpoints;
      anchor.version = ++anchor_version_;
      anchor.instance = options_.instance;
      anchor.checkpoint = last_cp_;
      anchor.covered_seq = payload.seq;
      anchor.final = final;
      anchor.jws = *std::move(jws);
    }
    if (absl::Status s = StoreAnchor(anchor); !s.ok()) {
      unanchored_ = std::move(anchor);
      return s;
    }
    return absl::OkStatus();
  }

  absl::Status StoreAnchor(const Anchor& anchor) {
    if (options_.anchors == nullptr) return absl::OkStatus();
    absl::Status s = options_.anchors->Put(AnchorRecordName(options_.instance),
                                           SerializeAnchor(anchor));
    absl::MutexLock lock(&mu_);
    if (s.ok()) {
      ++stats_.anchor_writes;
      return s;
    }
    ++stats_.checkpoint_errors;
    return absl::Status(s.code(), absl::StrCat("audit checkpoint: storing the "
                                               "anchor failed: ",
                                               s.message()));
  }

  void StartCheckpointer() {
    {
      absl::MutexLock lock(&mu_);
      cp_stop_ = false;
      last_cp_time_ = absl::Now();
    }
    checkpointer_ = std::thread([this] { CheckpointerLoop(); });
  }

  void StopCheckpointer() {
    {
      absl::MutexLock lock(&mu_);
      cp_stop_ = true;
      closing_ = true;
      cp_cv_.Signal();
    }
    if (checkpointer_.joinable()) checkpointer_.join();
  }

  // Writes a checkpoint when checkpoint_every_records decisions or
  // checkpoint_every have passed with lines added, or a rotation is due.
  // After a failure (the HSM may be down) it retries within a second.
  void CheckpointerLoop() {
    const absl::Duration every = options_.checkpoint_every;
    const absl::Duration backoff = std::min(every, absl::Seconds(1));
    absl::Time retry_after = absl::InfinitePast();
    mu_.Lock();
    while (!cp_stop_) {
      const absl::Time now = absl::Now();
      const bool pending = uncovered_lines_ > 0 || unanchored_pending_;
      const bool due =
          now >= retry_after &&
          (rotate_wanted_ ||
           chained_decisions_ - decisions_at_cover_ >=
               options_.checkpoint_every_records ||
           (pending && now >= last_cp_time_ + every));
      if (!due) {
        absl::Time wake = absl::InfiniteFuture();
        if (now < retry_after) {
          wake = retry_after;
        } else if (pending) {
          wake = last_cp_time_ + every;
        }
        cp_cv_.WaitWithDeadline(&mu_, wake);
        continue;
      }
      mu_.Unlock();
      absl::Status s;
      {
        absl::MutexLock cp_lock(&cp_mu_);
        s = WriteCheckpointLocked(/*final=*/false, /*force=*/false);
        const bool lagging = unanchored_.has_value();
        absl::MutexLock lock(&mu_);
        unanchored_pending_ = lagging;
        if (!s.ok()) last_cp_error_ = s;
      }
      mu_.Lock();
      retry_after = s.ok() ? absl::InfinitePast() : absl::Now() + backoff;
    }
    mu_.Unlock();
  }

  // path.N -> path.N+1 ... path -> path.1, then a fresh path. Writer thread
  // only.
  absl::Status RotateFiles() {
    const std::string& path = options_.path;
    std::vector<std::string> files = AuditChainFiles(path);
    for (const std::string& f : files) {  // oldest (highest index) first
      if (f == path) continue;
      int64_t n = 0;
      if (!absl::SimpleAtoi(absl::string_view(f).substr(path.size() + 1), &n))
        continue;
      std::string to = absl::StrCat(path, ".", n + 1);
      if (::rename(f.c_str(), to.c_str()) != 0)
        return PosixError("rename", f, errno);
    }
    std::string first = path + ".1";
    if (::rename(path.c_str(), first.c_str()) != 0) {
      return PosixError("rename", path, errno);
    }
    fd_.reset(::open(path.c_str(), kOpenFlags | O_EXCL, 0600));
    if (!fd_.valid()) return PosixError("open (rotation)", path, errno);
    if (options_.durability == Durability::kFsync) return SyncDir(path);
    return absl::OkStatus();
  }

  const AuditLogOptions options_;
  UniqueFd fd_;  // writer thread only once started
  int64_t torn_tail_bytes_ = 0;
  std::thread writer_;

  mutable absl::Mutex mu_;
  absl::CondVar work_cv_;  // writer waits for pending_ / stopping_
  absl::CondVar done_cv_;  // appenders wait for durable_seq_ / failed_
  int64_t next_seq_ ABSL_GUARDED_BY(mu_) = 0;
  std::string prev_hash_ ABSL_GUARDED_BY(mu_);
  int64_t active_bytes_ ABSL_GUARDED_BY(mu_) =
      0;  // written + queued, active file
  std::vector<Segment> pending_ ABSL_GUARDED_BY(mu_);
  int64_t durable_seq_ ABSL_GUARDED_BY(mu_) = -1;
  absl::Status failed_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  AuditLogStats stats_ ABSL_GUARDED_BY(mu_);
  // Group commit state (WriterLoop / CommitLineLocked).
  enum class WriterState { kBusy, kIdle, kLingering };
  WriterState writer_state_ ABSL_GUARDED_BY(mu_) = WriterState::kBusy;
  int64_t queued_decisions_ ABSL_GUARDED_BY(mu_) = 0;  // in pending_
  int64_t last_commit_decisions_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t sync_queued_ ABSL_GUARDED_BY(mu_) = 0;  // of queued_decisions_
  int64_t last_commit_sync_ ABSL_GUARDED_BY(mu_) = 0;
  Sha256Hasher hasher_ ABSL_GUARDED_BY(mu_);  // chains lines (prev_hash_)
  int64_t expected_ ABSL_GUARDED_BY(mu_) = 0;  // ExpectRecords outstanding
  bool announced_ ABSL_GUARDED_BY(mu_) = false;  // ExpectRecords ever called
  bool closing_ ABSL_GUARDED_BY(mu_) = false;    // Appends refused

  // Checkpoints (options_.checkpoint_key). Lock order: cp_mu_, then mu_.
  absl::Mutex cp_mu_;  // one checkpoint at a time
  std::thread checkpointer_;
  absl::CondVar cp_cv_;  // checkpoint thread waits for a trigger
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
  std::optional<Anchor> unanchored_ ABSL_GUARDED_BY(cp_mu_);
  // Set while Open refused the log (AcknowledgeLoss clears it).
  std::optional<Anchor> refused_anchor_ ABSL_GUARDED_BY(mu_);
};

absl::Status FileAuditLog::AcknowledgeLoss(std::string_view by,
                                           std::string_view reason) {
  absl::MutexLock cp_lock(&cp_mu_);
  Anchor old;
  std::string finding;
  {
    absl::MutexLock lock(&mu_);
    if (!refused_anchor_) return AuditLog::AcknowledgeLoss(by, reason);
    old = *refused_anchor_;
    finding = std::string(failed_.message());
  }
  if (by.empty() || reason.empty()) {
    return absl::InvalidArgumentError(
        "acknowledge: who acknowledges and why must both be given");
  }
  const std::string& path = options_.path;
  // The old log's anchor stays readable (and listed) for verifying shipped
  // copies of it, until a custodian retires it.
  if (options_.anchors != nullptr) {
    absl::Status s = ArchiveAnchor(*options_.anchors, options_.instance, old);
    if (!s.ok()) return s;
  }
  // The refused file leaves the chain but is kept.
  std::error_code ec;
  if (std::filesystem::exists(path, ec)) {
    std::string lost = absl::StrCat(
        path, ".lost-",
        absl::FormatTime("%Y%m%dT%H%M%SZ", absl::Now(), absl::UTCTimeZone()));
    if (::rename(path.c_str(), lost.c_str()) != 0)
      return PosixError("rename", path, errno);
  }
  UniqueFd fd(::open(path.c_str(), kOpenFlags | O_EXCL, 0600));
  if (!fd.valid()) return PosixError("open (new segment)", path, errno);
  if (options_.durability == Durability::kFsync) {
    if (absl::Status s = SyncDir(path); !s.ok()) return s;
  }
  GenesisInfo genesis;
  genesis.log_name = options_.log_name;
  genesis.log_id = NewLogId();
  genesis.instance = options_.instance;
  genesis.created = absl::Now();
  genesis.follows = old.checkpoint;
  genesis.acknowledged_by = std::string(by);
  genesis.acknowledged_reason = std::string(reason);
  genesis.acknowledged_finding = finding;
  {
    absl::MutexLock lock(&mu_);
    fd_ = std::move(fd);
    active_bytes_ = 0;
    failed_ = absl::OkStatus();
    refused_anchor_.reset();
    log_id_ = genesis.log_id;
    last_cp_ = old.checkpoint;  // the first checkpoint names it as prev
    chained_decisions_ = 0;
    decisions_at_cover_ = 0;
    uncovered_lines_ = 0;
    anchor_version_ = old.version;
  }
  if (absl::Status s = Start(0, "", FormatGenesisLine(genesis), "", "");
      !s.ok())
    return s;
  absl::Status s = WriteCheckpointLocked(/*final=*/false, /*force=*/true);
  StartCheckpointer();
  return s;
}

}  // namespace

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
  UniqueFd wfd(::open(path.c_str(), kOpenFlags, 0600));
  if (!wfd.valid()) return PosixError("open", path, errno);
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
          FormatContinuationBody(BaseName(files.back()), absl::Now());
    }
  }
  if (options.durability == Durability::kFsync) {
    if (dropped > 0 && ::fsync(wfd.get()) != 0)
      return PosixError("fsync", path, errno);
    absl::Status s = SyncDir(path);
    if (!s.ok()) return s;
  }
  auto log = std::make_unique<FileAuditLog>(options, std::move(wfd),
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
