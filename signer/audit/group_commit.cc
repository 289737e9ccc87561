#include "signer/audit/group_commit.h"

#include <utility>

#include "absl/strings/str_cat.h"

namespace tokensign::audit {

GroupCommitter::GroupCommitter(StdMutex* mu, Options options,
                               RotateFn rotate)
    : mu_(mu), options_(options), rotate_(std::move(rotate)) {}

GroupCommitter::~GroupCommitter() { Stop(); }

void GroupCommitter::StartLocked(std::unique_ptr<WritableFile> file,
                                 int64_t durable_seq) {
  file_ = std::move(file);
  durable_seq_ = durable_seq;
  stopping_ = false;
  writer_ = std::thread([this] { WriterLoop(); });
}

void GroupCommitter::Stop() {
  {
    StdMutexLock lock(mu_);
    stopping_ = true;
    work_cv_.Signal();
  }
  if (writer_.joinable()) writer_.join();
}

std::string* GroupCommitter::BufferLocked() {
  if (pending_.empty()) pending_.emplace_back();
  return &pending_.back().data;
}

void GroupCommitter::NewFileLocked() {
  pending_.emplace_back();
  pending_.back().rotate_before = true;
}

void GroupCommitter::LineAddedLocked(int64_t seq, bool decision) {
  Segment& seg = pending_.back();
  seg.last_seq = seq;
  if (decision) {
    ++seg.decisions;
    ++queued_decisions_;
  }
  // Wake the writer only when it waits for this: idle (any line), or
  // lingering and the batch is full. Otherwise it finds the line anyway.
  if (writer_state_ == WriterState::kIdle ||
      (writer_state_ == WriterState::kLingering &&
       queued_decisions_ >= options_.batch_records)) {
    work_cv_.Signal();
  }
}

void GroupCommitter::AddCallbackLocked(Callback done) {
  pending_.back().callbacks.push_back(std::move(done));
}

void GroupCommitter::SyncWaiterLocked() {
  // Blocked synchronous appenders cannot add more records: once as many are
  // queued as the last commit had, lingering longer only adds latency.
  ++sync_queued_;
  if (writer_state_ == WriterState::kLingering && SyncBatchCompleteLocked())
    work_cv_.Signal();
}

absl::Status GroupCommitter::WaitDurableLocked(int64_t seq) {
  while (durable_seq_ < seq && failed_.ok()) done_cv_.Wait(mu_);
  return durable_seq_ >= seq ? absl::OkStatus() : failed_;
}

void GroupCommitter::ExpectLocked(int delta) {
  if (delta > 0) {
    announced_total_ += delta;
  } else {
    withdrawn_total_ -= delta;
  }
  announced_ = true;
  if (writer_state_ == WriterState::kLingering && !AwaitedOutstandingLocked())
    work_cv_.Signal();
}

// While lingering: records announced before the linger began are still
// being made (a steady stream of new ones would otherwise hold every commit
// until the signing queue drains, and then all of it waits for one sync).
// Totals only grow, so this implies OutstandingLocked() > 0.
bool GroupCommitter::AwaitedOutstandingLocked() const {
  return withdrawn_total_ < linger_until_withdrawn_;
}

// More records are on their way: announced ones outstanding (ExpectRecords),
// or, for a log that never gets announcements, the last commit had several.
bool GroupCommitter::MoreComingLocked() const {
  return announced_ ? OutstandingLocked() > 0 : last_commit_decisions_ > 1;
}

// Every queued decision is a blocked synchronous Append and there are as many
// as in the last commit: nobody is likely to add more soon.
bool GroupCommitter::SyncBatchCompleteLocked() const {
  return sync_queued_ > 0 && sync_queued_ == queued_decisions_ &&
         sync_queued_ >= last_commit_sync_;
}

void GroupCommitter::MaybeLingerLocked() {
  // commit_delay: linger only while more records are coming; never for a lone
  // record.
  if (options_.linger <= absl::ZeroDuration() || !MoreComingLocked() ||
      stopping_) {
    return;
  }
  writer_state_ = WriterState::kLingering;
  linger_until_withdrawn_ = announced_total_;
  const absl::Time deadline = absl::Now() + options_.linger;
  while (!stopping_ && queued_decisions_ < options_.batch_records &&
         !SyncBatchCompleteLocked() &&
         (!announced_ || AwaitedOutstandingLocked()) &&
         !work_cv_.WaitWithDeadline(mu_, deadline)) {
  }
  ++stats_.lingered;
}

absl::Status GroupCommitter::WriteBatch(const std::vector<Segment>& batch,
                                        size_t* written, int64_t* durable,
                                        Stats* delta) {
  for (const Segment& seg : batch) {
    if (seg.rotate_before) {
      if (file_ != nullptr) file_->Close().IgnoreError();
      absl::StatusOr<std::unique_ptr<WritableFile>> next = rotate_();
      if (!next.ok()) return next.status();
      file_ = *std::move(next);
      ++delta->rotations;
    }
    if (seg.data.empty()) {
      ++*written;
      continue;
    }
    if (absl::Status s = file_->Append(seg.data); !s.ok()) return s;
    if (options_.sync) {
      if (absl::Status s = file_->Sync(); !s.ok()) return s;
    }
    *durable = seg.last_seq;
    ++*written;
    delta->records += seg.decisions;
    delta->bytes += static_cast<int64_t>(seg.data.size());
    ++delta->commits;
  }
  return absl::OkStatus();
}

void GroupCommitter::WriterLoop() {
  for (;;) {
    std::vector<Segment> batch;
    {
      StdMutexLock lock(mu_);
      writer_state_ = WriterState::kIdle;
      while (pending_.empty() && !stopping_) work_cv_.Wait(mu_);
      if (pending_.empty()) return;  // stopping and drained
      MaybeLingerLocked();
      writer_state_ = WriterState::kBusy;
      last_commit_decisions_ = queued_decisions_;
      last_commit_sync_ = sync_queued_;
      queued_decisions_ = 0;
      sync_queued_ = 0;
      batch.swap(pending_);
    }
    int64_t durable = -1;
    size_t written = 0;  // segments of `batch` made durable
    Stats delta;
    const absl::Status status = WriteBatch(batch, &written, &durable, &delta);
    absl::Status failed;
    {
      StdMutexLock lock(mu_);
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

}  // namespace tokensign::audit
