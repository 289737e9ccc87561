#include "signer/audit/verify_checkpoints.h"

#include "absl/strings/str_cat.h"

namespace tokensign::audit {

void CheckpointTracker::StartSegment(const std::string& log_id,
                                     const std::string& instance) {
  instance_ = instance;
  // Lines the previous segment left unanchored belong to the lost log that
  // the new segment's genesis acknowledges.
  log_id_ = log_id;
  window_.clear();
  anchored_seq_ = -1;
  last_.reset();
  last_prev_.reset();
  segment_checkpoints_.clear();
  after_final_ = false;
}

std::optional<std::pair<BreakKind, std::string>> CheckpointTracker::OnLine(
    const ParsedLine& p, const std::string& file, int64_t line_no,
    const std::string& line_hash) {
  using Break = std::pair<BreakKind, std::string>;
  ++lines_;
  const bool is_checkpoint = !p.checkpoint.empty();
  if (after_final_ && !is_checkpoint && p.type != LineType::kGenesis) {
    return Break(BreakKind::kAfterFinal,
                 absl::StrCat("this line follows the checkpoint at ", last_file_,
                              " line ", last_line_,
                              ", which the daemon wrote when it stopped "
                              "cleanly: it was added while no daemon ran"));
  }
  after_final_ = false;
  if (!p.log_id.empty() && !log_id_.empty() && p.log_id != log_id_) {
    return Break(BreakKind::kBadCheckpoint,
                 absl::StrCat("log_id ", p.log_id, " differs from the log's ",
                              log_id_, " (a file of another log)"));
  }
  if (is_checkpoint) {
    auto payload = trust_.Verify(p.checkpoint, p.key_jwk);
    if (!payload.ok()) {
      return Break(BreakKind::kBadCheckpoint,
                   absl::StrCat("checkpoint signature: ",
                                payload.status().message()));
    }
    if (log_id_.empty()) log_id_ = payload->log_id;  // a log older than ids
    if (payload->log_id != log_id_) {
      return Break(BreakKind::kBadCheckpoint,
                   absl::StrCat("checkpoint of log ", payload->log_id,
                                " inside log ", log_id_));
    }
    if (payload->seq >= p.seq || payload->seq <= anchored_seq_) {
      return Break(BreakKind::kBadCheckpoint,
                   absl::StrCat("checkpoint covers seq ", payload->seq,
                                "; it must lie after the last covered seq ",
                                anchored_seq_, " and before its own seq ",
                                p.seq));
    }
    const Covered* head = nullptr;
    int64_t decisions = 0;
    for (const Covered& c : window_) {
      if (c.seq > payload->seq) break;
      if (c.type == LineType::kDecision) ++decisions;
      if (c.seq == payload->seq) head = &c;
    }
    if (head == nullptr) {
      return Break(BreakKind::kBadCheckpoint,
                   absl::StrCat("checkpoint covers seq ", payload->seq,
                                ", which is not in this segment of the chain"));
    }
    if (std::string_view(head->hash.data(), head->hash.size()) !=
        payload->head) {
      return Break(
          BreakKind::kBadCheckpoint,
          absl::StrCat("the signed head (SHA-256 of seq ", payload->seq,
                       ") does not match ", *head->file, " line ", head->line,
                       ": lines up to it were rewritten (removed, added or "
                       "edited, with seq and prev recomputed)"));
    }
    if (last_.has_value()) {
      if (!payload->prev.has_value() || !(*payload->prev == *last_)) {
        return Break(BreakKind::kBadCheckpoint,
                     absl::StrCat("checkpoint does not name the previous "
                                  "checkpoint (",
                                  last_file_, " line ", last_line_,
                                  ") as its predecessor"));
      }
      if (payload->records != decisions) {
        return Break(BreakKind::kBadCheckpoint,
                     absl::StrCat("checkpoint counts ", payload->records,
                                  " records since the previous one; the chain "
                                  "holds ",
                                  decisions));
      }
    }
    while (!window_.empty() && window_.front().seq <= payload->seq)
      window_.pop_front();
    anchored_seq_ = payload->seq;
    ++checkpoints_;
    last_ = CheckpointRef{log_id_, p.seq, line_hash};
    segment_checkpoints_.push_back(*last_);
    last_file_ = file;
    last_line_ = line_no;
    last_final_ = payload->final;
    last_prev_ = payload->prev;
    instance_ = payload->instance;
    after_final_ = payload->final;
  }
  Covered c{p.seq, {}, &file, line_no,
            is_checkpoint ? LineType::kCheckpoint : p.type};
  line_hash.copy(c.hash.data(), c.hash.size());
  window_.push_back(c);
  return std::nullopt;
}

void CheckpointTracker::Fill(VerifyReport* r) const {
  r->log_id = log_id_;
  r->checkpoints = checkpoints_;
  r->anchored_seq = anchored_seq_;
  r->anchored_lines = lines_ - static_cast<int64_t>(window_.size());
  r->unanchored_lines = 0;
  r->unanchored_records = 0;
  for (const Covered& c : window_) {
    if (c.type == LineType::kCheckpoint) continue;
    ++r->unanchored_lines;
    if (c.type == LineType::kDecision) ++r->unanchored_records;
  }
  r->instance = instance_;
  r->last_checkpoint = last_;
  r->last_checkpoint_prev = last_prev_;
  r->segment_checkpoints = segment_checkpoints_;
  r->last_checkpoint_file = last_file_;
  r->last_checkpoint_line = last_line_;
  r->last_checkpoint_final = last_final_;
}

}  // namespace tokensign::audit
