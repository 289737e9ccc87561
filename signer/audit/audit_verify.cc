#include "signer/audit/audit_verify.h"

#include <deque>
#include <memory>
#include <utility>

#include "absl/strings/str_cat.h"
#include "signer/audit/audit_format.h"

namespace tokensign::audit {
namespace {

struct Line {
  std::string file;
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
  }
  return "unknown";
}

absl::StatusOr<VerifyReport> VerifyAuditChain(const std::string& path) {
  VerifyReport report;
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
    if (first) {
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
    before_prev = {report.lines, report.records, report.last_seq,
                   report.head_sha256};
    prev_hash = Sha256Hex(l.text);
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
  for (const std::string& f : r.files) absl::StrAppend(&out, "file: ", f, "\n");
  return out;
}

}  // namespace tokensign::audit
