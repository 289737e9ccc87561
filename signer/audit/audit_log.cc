// AuditLog implementation: a file-backed, group-committing, hash-chained log.
#include "signer/audit/audit_log.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <string_view>
#include <thread>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "signer/audit/audit_format.h"
#include "signer/audit/audit_io.h"
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

class FileAuditLog final : public AuditLog {
 public:
  FileAuditLog(AuditLogOptions options, UniqueFd fd, int64_t file_bytes)
      : options_(std::move(options)),
        fd_(std::move(fd)),
        active_bytes_(file_bytes) {}

  ~FileAuditLog() override {
    {
      absl::MutexLock lock(&mu_);
      stopping_ = true;
      work_cv_.Signal();
    }
    if (writer_.joinable()) writer_.join();
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
    if (!genesis_line.empty()) last = AddRawLocked(genesis_line, 0, false);
    if (!continuation_body.empty())
      last = AddBodyLocked(continuation_body, false);
    if (!repair_body.empty()) last = AddBodyLocked(repair_body, false);
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
    if (stopping_) {
      return absl::FailedPreconditionError(
          absl::StrCat("audit log ", options_.path, ": Append after close"));
    }
    if (options_.rotate_bytes > 0 && active_bytes_ > options_.rotate_bytes) {
      // The next line opens a fresh file; its first line continues the chain.
      pending_.emplace_back();
      pending_.back().rotate_before = true;
      active_bytes_ = 0;
      AddBodyLocked(
          FormatContinuationBody(BaseName(options_.path) + ".1", absl::Now()),
          false);
    }
    int64_t seq = AddBodyLocked(body, true);
    if (done != nullptr) pending_.back().callbacks.push_back(std::move(*done));
    return seq;
  }

  // Assembles {"v":1,"seq":N,BODY,"prev":"PREV"} (AssembleLine's bytes)
  // straight into the pending segment and hashes it there: no temporary line.
  int64_t AddBodyLocked(std::string_view body, bool decision)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    std::string& data = SegmentForAppendLocked();
    const size_t start = data.size();
    absl::StrAppend(&data, "{\"v\":", kAuditFormatVersion,
                    ",\"seq\":", next_seq_, ",");
    data.append(body);
    data.append(",\"prev\":\"");
    data.append(prev_hash_);
    data.append("\"}");
    return CommitLineLocked(start, next_seq_, decision);
  }

  int64_t AddRawLocked(std::string_view line, int64_t seq, bool decision)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    std::string& data = SegmentForAppendLocked();
    const size_t start = data.size();
    data.append(line);
    return CommitLineLocked(start, seq, decision);
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
  int64_t CommitLineLocked(size_t start, int64_t seq, bool decision)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    Segment& seg = pending_.back();
    std::string_view line(seg.data.data() + start, seg.data.size() - start);
    prev_hash_.resize(64);
    if (!hasher_.HexDigest(line, prev_hash_.data())) prev_hash_.clear();
    seg.data.push_back('\n');
    seg.last_seq = seq;
    if (decision) {
      ++seg.decisions;
      ++queued_decisions_;
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
};

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
      genesis = FormatGenesisLine(options.log_name, absl::Now());
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
  absl::Status s =
      log->Start(next_seq, std::move(prev_hash), genesis, continuation, repair);
  if (!s.ok()) return s;
  return std::unique_ptr<AuditLog>(std::move(log));
}

}  // namespace tokensign::audit
