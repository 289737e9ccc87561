// Internal to VerifyAuditChain: follows the checkpoints of one chain. It is
// given every line whose links (seq, prev) already checked out, and answers
// with a break when a checkpoint is not validly signed by a trusted key,
// names another log, covers a line whose hash is not its "head", miscounts
// the records since its predecessor or names the wrong predecessor; or when
// a line other than the next start's checkpoint follows a clean-shutdown
// (final) checkpoint. It also counts the lines no valid checkpoint covers
// yet (the unanchored tail). Thread-safety: not thread-safe (one per verify).
#ifndef TOKENSIGN_SIGNER_AUDIT_VERIFY_CHECKPOINTS_H_
#define TOKENSIGN_SIGNER_AUDIT_VERIFY_CHECKPOINTS_H_

#include <array>
#include <cstdint>
#include <deque>
#include <optional>
#include <string>
#include <vector>
#include <string_view>
#include <utility>

#include "signer/audit/audit_format.h"
#include "signer/audit/audit_verify.h"
#include "signer/audit/checkpoint.h"
#include "signer/audit/checkpoint_keys.h"

namespace tokensign::audit {

class CheckpointTracker {
 public:
  explicit CheckpointTracker(const CheckpointTrust& trust) : trust_(trust) {}

  // A genesis record starts a (new) segment of the chain.
  void StartSegment(const std::string& log_id, const std::string& instance);

  // `line_hash` = hex SHA-256 of the line; `file` must outlive the tracker.
  // Returns the break, if this line is one.
  std::optional<std::pair<BreakKind, std::string>> OnLine(
      const ParsedLine& p, const std::string& file, int64_t line_no,
      const std::string& line_hash);

  // Copies the results into `report` (checkpoints, anchored_*, unanchored_*,
  // last_checkpoint*, log_id).
  void Fill(VerifyReport* report) const;

 private:
  // One line not yet covered by a checkpoint (kept small: a log without
  // checkpoints keeps one per line).
  struct Covered {
    int64_t seq;
    std::array<char, 64> hash;  // hex SHA-256
    const std::string* file;    // owned by the caller (VerifyReport.files)
    int64_t line;
    LineType type;
  };
  const CheckpointTrust& trust_;
  std::string log_id_;
  std::string instance_;
  std::optional<CheckpointRef> last_prev_;
  // Every valid checkpoint of this segment, oldest first.
  std::vector<CheckpointRef> segment_checkpoints_;
  std::deque<Covered> window_;  // lines after anchored_seq_
  int64_t anchored_seq_ = -1;
  int64_t lines_ = 0;
  int64_t checkpoints_ = 0;
  std::optional<CheckpointRef> last_;  // last valid checkpoint (this segment)
  std::string last_file_;
  int64_t last_line_ = 0;
  bool last_final_ = false;
  bool after_final_ = false;  // the previous line was a final checkpoint
};

}  // namespace tokensign::audit

#endif  // TOKENSIGN_SIGNER_AUDIT_VERIFY_CHECKPOINTS_H_
