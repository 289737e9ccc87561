// FileAuditLog's checkpoints (see file_audit_log.h and checkpoint.h): the
// checkpoint thread, signing a checkpoint of the chain head, anchoring it,
// and AcknowledgeLoss, which starts a refused log over.
#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "signer/audit/anchor_store.h"
#include "signer/audit/audit_format.h"
#include "signer/audit/checkpoint_keys.h"
#include "signer/audit/file_audit_log.h"
#include "signer/audit/log_segments.h"

namespace tokensign::audit {

void FileAuditLog::InitCheckpoints(const ActiveFileScan& scan,
                                   std::string log_id,
                                   int64_t anchor_version) {
  StdMutexLock lock(&mu_);
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

// After Start: the first checkpoint (it anchors this start; written even when
// nothing is new), then the checkpoint thread.
absl::Status FileAuditLog::BeginCheckpoints() {
  {
    StdMutexLock cp_lock(&cp_mu_);
    absl::Status s = WriteCheckpointLocked(/*final=*/false, /*force=*/true);
    if (!s.ok()) return s;
  }
  StartCheckpointer();
  return absl::OkStatus();
}

absl::Status FileAuditLog::Checkpoint() {
  if (options_.checkpoint_key == nullptr)
    return absl::FailedPreconditionError("audit log: no checkpoint key");
  StdMutexLock cp_lock(&cp_mu_);
  return WriteCheckpointLocked(/*final=*/false, /*force=*/true);
}

// Signs the chain head, appends the checkpoint line (as the continuation
// record of a fresh file when a rotation is due), waits until it is durable
// and anchors it. Without `force`, only when lines were added (or a rotation
// is due). A checkpoint whose anchor could not be stored is re-anchored before
// any newer one is written, so the anchor never lags more than one checkpoint
// behind the log.
absl::Status FileAuditLog::WriteCheckpointLocked(bool final, bool force) {
  const CheckpointKey& key = *options_.checkpoint_key;
  if (unanchored_.has_value()) {
    if (absl::Status s = StoreAnchor(*unanchored_); !s.ok()) return s;
    unanchored_.reset();
  }
  CheckpointPayload payload;
  int64_t decisions = 0;
  int64_t taken = 0;
  {
    StdMutexLock lock(&mu_);
    if (const absl::Status& f = committer_.failure_locked(); !f.ok()) return f;
    if (!force && uncovered_lines_ == 0 && !rotate_wanted_)
      return absl::OkStatus();
    payload.log_id = log_id_;
    payload.instance = options_.instance;
    payload.seq = chain_.next_seq() - 1;
    payload.head = chain_.prev_hash();
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
    StdMutexLock lock(&mu_);
    if (!jws.ok()) {
      uncovered_lines_ += taken;
      ++checkpoint_errors_;
      return absl::Status(jws.status().code(),
                          absl::StrCat("audit checkpoint: signing failed: ",
                                       jws.status().message()));
    }
    if (const absl::Status& f = committer_.failure_locked(); !f.ok()) return f;
    std::string body;
    if (rotate_wanted_) {
      committer_.NewFileLocked();
      active_bytes_ = 0;
      body = FormatCheckpointContinuationBody(
          LogBaseName(options_.path) + ".1", log_id_, payload.time, *jws,
          key.public_jwk);
      rotate_wanted_ = false;
    } else {
      body = FormatCheckpointBody(*jws, key.public_jwk);
    }
    const int64_t seq = AddBodyLocked(body, LineKind::kCheckpoint);
    last_cp_ = CheckpointRef{log_id_, seq, chain_.prev_hash()};
    decisions_at_cover_ = decisions;
    last_cp_time_ = absl::Now();
    if (absl::Status s = committer_.WaitDurableLocked(seq); !s.ok()) return s;
    ++checkpoints_;
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

absl::Status FileAuditLog::StoreAnchor(const Anchor& anchor) {
  if (options_.anchors == nullptr) return absl::OkStatus();
  absl::Status s = options_.anchors->Put(AnchorRecordName(options_.instance),
                                         SerializeAnchor(anchor));
  StdMutexLock lock(&mu_);
  if (s.ok()) {
    ++anchor_writes_;
    return s;
  }
  ++checkpoint_errors_;
  return absl::Status(
      s.code(),
      absl::StrCat("audit checkpoint: storing the anchor failed: ",
                   s.message()));
}

void FileAuditLog::StartCheckpointer() {
  {
    StdMutexLock lock(&mu_);
    cp_stop_ = false;
    last_cp_time_ = absl::Now();
  }
  checkpointer_ = std::thread([this] { CheckpointerLoop(); });
}

void FileAuditLog::StopCheckpointer() {
  {
    StdMutexLock lock(&mu_);
    cp_stop_ = true;
    closing_ = true;
    cp_cv_.Signal();
  }
  if (checkpointer_.joinable()) checkpointer_.join();
}

// Writes a checkpoint when checkpoint_every_records decisions (but not
// sooner than checkpoint_min_interval after the previous checkpoint) or
// checkpoint_every have passed with lines added, or a rotation is due. After
// a failure (the HSM may be down) it retries within a second.
void FileAuditLog::CheckpointerLoop() {
  const absl::Duration every = options_.checkpoint_every;
  const absl::Duration backoff = std::min(every, absl::Seconds(1));
  absl::Time retry_after = absl::InfinitePast();
  mu_.Lock();
  while (!cp_stop_) {
    const absl::Time now = absl::Now();
    const bool pending = uncovered_lines_ > 0 || unanchored_pending_;
    const bool count_reached = chained_decisions_ - decisions_at_cover_ >=
                               options_.checkpoint_every_records;
    const absl::Time count_allowed =
        last_cp_time_ + options_.checkpoint_min_interval;
    const bool due = now >= retry_after &&
                     (rotate_wanted_ || (count_reached && now >= count_allowed) ||
                      (pending && now >= last_cp_time_ + every));
    if (!due) {
      absl::Time wake = absl::InfiniteFuture();
      if (now < retry_after) {
        wake = retry_after;
      } else {
        if (pending) wake = last_cp_time_ + every;
        if (count_reached) wake = std::min(wake, count_allowed);
      }
      cp_cv_.WaitWithDeadline(&mu_, wake);
      continue;
    }
    mu_.Unlock();
    absl::Status s;
    {
      StdMutexLock cp_lock(&cp_mu_);
      s = WriteCheckpointLocked(/*final=*/false, /*force=*/false);
      const bool lagging = unanchored_.has_value();
      StdMutexLock lock(&mu_);
      unanchored_pending_ = lagging;
      if (!s.ok()) last_cp_error_ = s;
    }
    mu_.Lock();
    retry_after = s.ok() ? absl::InfinitePast() : absl::Now() + backoff;
  }
  mu_.Unlock();
}

absl::Status FileAuditLog::AcknowledgeLoss(std::string_view by,
                                           std::string_view reason) {
  StdMutexLock cp_lock(&cp_mu_);
  Anchor old;
  std::string finding;
  {
    StdMutexLock lock(&mu_);
    if (!refused_anchor_) {
      return absl::FailedPreconditionError(
          "audit log: nothing to acknowledge (the log was not refused)");
    }
    old = *refused_anchor_;
    finding = std::string(committer_.failure_locked().message());
  }
  if (by.empty() || reason.empty()) {
    return absl::InvalidArgumentError(
        "acknowledge: who acknowledges and why must both be given");
  }
  // The old log's anchor stays readable (and listed) for verifying shipped
  // copies of it, until a custodian retires it.
  if (options_.anchors != nullptr) {
    absl::Status s = ArchiveAnchor(*options_.anchors, options_.instance, old);
    if (!s.ok()) return s;
  }
  const bool durable = options_.durability == Durability::kFsync;
  absl::StatusOr<UniqueFd> fd = StartNewSegment(options_.path, durable);
  if (!fd.ok()) return fd.status();
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
    StdMutexLock lock(&mu_);
    initial_file_ =
        std::make_unique<PosixWritableFile>(*std::move(fd), options_.path);
    active_bytes_ = 0;
    committer_.ClearFailureLocked();
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

}  // namespace tokensign::audit
