#include "signer/audit/audit_verify.h"

#include <deque>
#include <memory>
#include <utility>

#include "absl/strings/str_cat.h"
#include "signer/audit/audit_format.h"
#include "signer/audit/checkpoint_keys.h"
#include "signer/audit/verify_checkpoints.h"

namespace tokensign::audit {
namespace {

struct Line {
  std::string file;
  const std::string* file_ref = nullptr;  // the same name, stable
  int64_t number = 0;  // 1-based within file
  std::string_view text;
  bool terminated = true;
  bool first_in_file = false;
  std::shared_ptr<const std::string> content;  // keeps `text` alive
};

// Streams the lines of the chain's files in order, one file in memory at a time
// (plus the next one while peeking across a file boundary).
class ChainReader {
 public:
  explicit ChainReader(std::vector<std::string> files)
      : files_(std::move(files)) {}

  // Makes sure `n` lines are buffered (fewer at the end of the chain).
  absl::Status Fill(size_t n) {
    while (buf_.size() < n) {
      if (!content_ || pos_ >= content_->size()) {
        if (next_file_ >= files_.size()) return absl::OkStatus();
        name_ = files_[next_file_++];
        auto data = ReadWholeFile(name_);
        if (!data.ok()) return data.status();
        content_ = std::make_shared<const std::string>(*std::move(data));
        pos_ = 0;
        lineno_ = 0;
        continue;
      }
      Line l;
      l.file = name_;
      l.file_ref = &files_[next_file_ - 1];
      l.number = ++lineno_;
      l.first_in_file = lineno_ == 1;
      l.content = content_;
      size_t nl = content_->find('\n', pos_);
      std::string_view all(*content_);
      if (nl == std::string::npos) {
        l.text = all.substr(pos_);
        l.terminated = false;
        pos_ = content_->size();
      } else {
        l.text = all.substr(pos_, nl - pos_);
        pos_ = nl + 1;
      }
      buf_.push_back(std::move(l));
    }
    return absl::OkStatus();
  }

  std::deque<Line>& buffered() { return buf_; }

 private:
  std::vector<std::string> files_;
  size_t next_file_ = 0;
  std::string name_;
  std::shared_ptr<const std::string> content_;
  size_t pos_ = 0;
  int64_t lineno_ = 0;
  std::deque<Line> buf_;
};

}  // namespace

std::string_view BreakKindName(BreakKind kind) {
  switch (kind) {
    case BreakKind::kTornTail:
      return "torn tail";
    case BreakKind::kUnparsable:
      return "unparsable";
    case BreakKind::kMissingGenesis:
      return "missing genesis";
    case BreakKind::kUnexpectedGenesis:
      return "unexpected genesis";
    case BreakKind::kBadContinuation:
      return "bad continuation";
    case BreakKind::kSeqGap:
      return "seq gap";
    case BreakKind::kReordered:
      return "reordered";
    case BreakKind::kHashMismatch:
      return "hash mismatch";
    case BreakKind::kBadCheckpoint:
      return "bad checkpoint";
    case BreakKind::kAfterFinal:
      return "after final checkpoint";
  }
  return "unknown";
}

VerifyVerdict Verdict(const VerifyReport& r) {
  if (!r.ok) return VerifyVerdict::kBroken;
  if (r.unanchored_lines > 0 || r.checkpoints == 0)
    return VerifyVerdict::kUnanchoredTail;
  return VerifyVerdict::kIntact;
}

absl::StatusOr<VerifyReport> VerifyAuditChain(const std::string& path,
                                              const VerifyOptions& options) {
  VerifyReport report;
  const CheckpointTrust embedded = CheckpointTrust::Embedded();
  const CheckpointTrust& trust =
      options.trust != nullptr ? *options.trust : embedded;
  report.trust = trust.Describe();
  CheckpointTracker tracker(trust);
  report.files = AuditChainFiles(path);
  if (report.files.empty()) {
    return absl::NotFoundError(absl::StrCat(
        "audit verify: ", path, " does not exist (nor any ", path, ".N)"));
  }
  ChainReader reader(report.files);
  std::string prev_hash;
  std::string prev_file;
  int64_t prev_number = 0;
  int64_t expected_seq = 0;
  auto fail = [&](const std::string& file, int64_t line, BreakKind kind,
                  std::string detail) {
    report.first_break = ChainBreak{file, line, kind, std::move(detail)};
  };
  // Parses the line after the current one, if any (for telling edits from
  // moves).
  auto peek_next = [&]() -> std::optional<ParsedLine> {
    if (!reader.Fill(2).ok() || reader.buffered().size() < 2)
      return std::nullopt;
    const Line& n = reader.buffered()[1];
    if (!n.terminated) return std::nullopt;
    auto p = ParseAuditLine(n.text);
    if (!p.ok()) return std::nullopt;
    return *std::move(p);
  };

  // The counters as they were before the previous line was counted: a hash
  // mismatch puts the previous line in doubt (it, or the line that names it,
  // was altered), so it is taken back out of "verified".
  struct Counted {
    int64_t lines = 0, records = 0, last_seq = -1;
    std::string head;
  };
  Counted before_prev;
  auto uncount_prev = [&] {
    report.lines = before_prev.lines;
    report.records = before_prev.records;
    report.last_seq = before_prev.last_seq;
    report.head_sha256 = before_prev.head;
  };

  while (!report.first_break) {
    absl::Status s = reader.Fill(1);
    if (!s.ok()) return s;
    if (reader.buffered().empty()) break;
    const Line& l = reader.buffered().front();
    const bool first = report.lines == 0;
    if (!l.terminated) {
      fail(l.file, l.number, BreakKind::kTornTail,
           absl::StrCat(
               "line has no trailing newline (", l.text.size(),
               " bytes): a write was cut short; AuditLog::Open truncates it"));
      break;
    }
    auto p = ParseAuditLine(l.text);
    if (!p.ok()) {
      fail(l.file, l.number, BreakKind::kUnparsable,
           std::string(p.status().message()));
      break;
    }
    const bool new_segment = !first && p->type == LineType::kGenesis &&
                             l.first_in_file && !p->follows.empty();
    if (new_segment) {
      // A custodian acknowledged a lost or tampered log; the chain starts
      // over (PATH.lost-* holds the refused file, if it was kept).
      expected_seq = 0;
      prev_hash.clear();
      report.segments.push_back(absl::StrCat(
          l.file, " line ", l.number, ": new segment, log ", p->log_id,
          ", after an acknowledged loss: follows ", p->follows,
          "; acknowledged ", p->acknowledged));
    }
    if (first || new_segment) {
      if (p->type != LineType::kGenesis) {
        fail(l.file, l.number, BreakKind::kMissingGenesis,
             absl::StrCat(
                 "the chain does not start with a genesis record (first line "
                 "has seq ",
                 p->seq, ")"));
        break;
      }
    } else if (p->type == LineType::kGenesis) {
      fail(l.file, l.number, BreakKind::kUnexpectedGenesis,
           "a genesis record inside the chain (another log was spliced in)");
      break;
    } else if (l.first_in_file != (p->type == LineType::kContinuation)) {
      fail(l.file, l.number, BreakKind::kBadContinuation,
           l.first_in_file
               ? "the first line of a later file must be a continuation record"
               : "a continuation record may only be a file's first line");
      break;
    } else if (p->seq != expected_seq) {
      std::optional<ParsedLine> next = peek_next();
      if (p->seq < expected_seq || (next && next->seq < p->seq)) {
        fail(l.file, l.number, BreakKind::kReordered,
             absl::StrCat("seq ", p->seq, " where ", expected_seq,
                          " was expected; lines are out of order"));
      } else {
        fail(l.file, l.number, BreakKind::kSeqGap,
             absl::StrCat("expected seq ", expected_seq, ", found ", p->seq,
                          ": ", p->seq - expected_seq,
                          " line(s) missing before this line"));
      }
      break;
    } else if (p->prev != prev_hash) {
      uncount_prev();
      std::optional<ParsedLine> next = peek_next();
      if (next && next->prev == Sha256Hex(l.text)) {
        fail(prev_file, prev_number, BreakKind::kHashMismatch,
             absl::StrCat("line was altered: its SHA-256 does not match the "
                          "prev recorded "
                          "in the next line (",
                          l.file, " line ", l.number, ")"));
      } else {
        fail(l.file, l.number, BreakKind::kHashMismatch,
             absl::StrCat(
                 "prev does not match the SHA-256 of the previous line (",
                 prev_file, " line ", prev_number,
                 "): this line or the one before it was altered"));
      }
      break;
    }
    if (p->type == LineType::kGenesis)
      tracker.StartSegment(p->log_id, p->instance);
    const std::string line_hash = Sha256Hex(l.text);
    if (auto b = tracker.OnLine(*p, *l.file_ref, l.number, line_hash)) {
      fail(l.file, l.number, b->first, std::move(b->second));
      break;
    }
    before_prev = {report.lines, report.records, report.last_seq,
                   report.head_sha256};
    prev_hash = line_hash;
    prev_file = l.file;
    prev_number = l.number;
    expected_seq = p->seq + 1;
    ++report.lines;
    if (p->type == LineType::kDecision) ++report.records;
    report.last_seq = p->seq;
    report.head_sha256 = prev_hash;
    reader.buffered().pop_front();
  }
  if (!report.first_break && report.lines == 0) {
    fail(report.files.front(), 1, BreakKind::kMissingGenesis,
         "the log has no lines");
  }
  report.ok = !report.first_break.has_value();
  tracker.Fill(&report);
  return report;
}

std::string FormatVerifyReport(const VerifyReport& r) {
  std::string out;
  if (r.ok) {
    absl::StrAppend(&out, "OK: ", r.files.size(), " file(s), ", r.lines,
                    " lines, ", r.records, " records, last seq ", r.last_seq,
                    "\n");
  } else {
    const ChainBreak& b = *r.first_break;
    std::string_view kind = BreakKindName(b.kind);
    absl::StrAppend(&out, "BROKEN at ", b.file, " line ", b.line, ": ",
                    std::string(kind), ": ", b.detail, "\n");
    absl::StrAppend(&out, "verified before the break: ", r.lines, " lines, ",
                    r.records, " records, last seq ", r.last_seq, "\n");
  }
  absl::StrAppend(&out, "head sha256: ", r.head_sha256, "\n");
  if (!r.log_id.empty()) absl::StrAppend(&out, "log id: ", r.log_id, "\n");
  if (r.checkpoints == 0) {
    absl::StrAppend(&out, "checkpoints: none valid\n");
  } else {
    absl::StrAppend(&out, "checkpoints: ", r.checkpoints, " valid, the last at ",
                    r.last_checkpoint_file, " line ", r.last_checkpoint_line,
                    " covers seq ", r.anchored_seq,
                    r.last_checkpoint_final
                        ? " (written when the daemon stopped cleanly)"
                        : "",
                    "\n");
  }
  absl::StrAppend(&out, "keys: ", r.trust, "\n");
  if (r.unanchored_lines > 0) {
    absl::StrAppend(&out, r.unanchored_lines, " lines (", r.unanchored_records,
                    " records) not yet anchored",
                    r.checkpoints > 0
                        ? absl::StrCat(" (after seq ", r.anchored_seq, ")")
                        : std::string(),
                    ": chained, but no checkpoint vouches for them yet\n");
  }
  for (const std::string& seg : r.segments)
    absl::StrAppend(&out, "segment: ", seg, "\n");
  for (const std::string& f : r.files) absl::StrAppend(&out, "file: ", f, "\n");
  switch (Verdict(r)) {
    case VerifyVerdict::kIntact:
      absl::StrAppend(&out, "verdict: intact\n");
      break;
    case VerifyVerdict::kUnanchoredTail:
      absl::StrAppend(&out, "verdict: intact up to the last checkpoint; "
                            "unanchored tail\n");
      break;
    case VerifyVerdict::kBroken:
      absl::StrAppend(&out, "verdict: broken\n");
      break;
  }
  return out;
}

}  // namespace tokensign::audit
