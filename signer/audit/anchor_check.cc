#include "signer/audit/anchor_check.h"

#include <deque>
#include <string_view>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "signer/audit/audit_format.h"
#include "signer/token/jws.h"

namespace tokensign::audit {
namespace {

// The payload of a checkpoint JWS, read without checking the signature.
absl::StatusOr<CheckpointPayload> PeekPayload(std::string_view jws) {
  size_t a = jws.find('.');
  size_t b = a == std::string_view::npos ? a : jws.find('.', a + 1);
  if (b == std::string_view::npos)
    return absl::InvalidArgumentError("checkpoint: not a compact JWS");
  auto bytes = token::Base64UrlDecode(jws.substr(a + 1, b - a - 1),
                                      "checkpoint payload");
  if (!bytes.ok()) return bytes.status();
  return ParseCheckpointPayload(nlohmann::json::parse(*bytes, nullptr, false));
}

// seq and prev of an ordinary line without a JSON parse:
// {"v":1,"seq":N,...,"prev":"<64 hex>"}. False if the line is not shaped so.
bool FastSeqPrev(std::string_view line, int64_t* seq, std::string_view* prev) {
  constexpr std::string_view kHead = "{\"v\":1,\"seq\":";
  constexpr std::string_view kTail = ",\"prev\":\"";
  if (line.size() < kHead.size() + kTail.size() + 66 ||
      line.substr(0, kHead.size()) != kHead || line.substr(line.size() - 2) != "\"}")
    return false;
  size_t end = line.find(',', kHead.size());
  if (end == std::string_view::npos ||
      !absl::SimpleAtoi(absl::string_view(line.data() + kHead.size(),
                                           end - kHead.size()),
                         seq))
    return false;
  if (line.substr(line.size() - 66 - kTail.size(), kTail.size()) != kTail)
    return false;
  *prev = line.substr(line.size() - 66, 64);
  return true;
}

bool Contains(std::string_view line, std::string_view what) {
  return line.find(what) != std::string_view::npos;
}

void ScanLines(std::string_view all, ActiveFileScan* scan) {
  std::string prev_hash;
  int64_t prev_seq = -1;
  std::deque<int64_t> uncovered_decisions;  // seqs after the last covered seq
  std::string first_log_id;
  for (size_t pos = 0; pos < all.size();) {
    size_t nl = all.find('\n', pos);
    if (nl == std::string_view::npos) break;  // torn tail: Open repairs it
    std::string_view line = all.substr(pos, nl - pos);
    pos = nl + 1;
    const int64_t lineno = ++scan->lines;
    auto fail = [&](std::string detail) {
      scan->break_line = lineno;
      scan->break_detail = std::move(detail);
    };
    int64_t seq = 0;
    std::string_view prev;
    bool decision = false;
    std::optional<ParsedLine> parsed;
    const bool special = lineno == 1 || Contains(line, "\"checkpoint\":") ||
                         Contains(line, "\"genesis\":") ||
                         Contains(line, "\"continues\":") ||
                         Contains(line, "\"repair\":");
    if (!special && FastSeqPrev(line, &seq, &prev)) {
      decision = true;
    } else {
      auto p = ParseAuditLine(line);
      if (!p.ok()) {
        fail(absl::StrCat("unparsable: ", p.status().message()));
        return;
      }
      parsed = *std::move(p);
      seq = parsed->seq;
      prev = parsed->prev;
      decision = parsed->type == LineType::kDecision;
    }
    if (lineno == 1) {
      if (parsed->type != LineType::kGenesis &&
          parsed->type != LineType::kContinuation) {
        fail("the file's first line is neither a genesis nor a continuation");
        return;
      }
      first_log_id = parsed->log_id;
      scan->first_seq = seq;
    } else if (seq != prev_seq + 1) {
      fail(absl::StrCat("seq ", seq, " where ", prev_seq + 1,
                        " was expected (lines removed or moved)"));
      return;
    } else if (prev != prev_hash) {
      fail("prev does not match the SHA-256 of the line before (a line was "
           "altered)");
      return;
    }
    prev_hash = Sha256Hex(line);
    prev_seq = seq;
    scan->last_seq = seq;
    if (parsed && !parsed->checkpoint.empty()) {
      auto payload = PeekPayload(parsed->checkpoint);
      if (!payload.ok()) {
        fail(absl::StrCat("checkpoint unreadable: ", payload.status().message()));
        return;
      }
      ScannedCheckpoint cp;
      cp.ref = {payload->log_id, seq, prev_hash};
      cp.line = lineno;
      cp.covered_seq = payload->seq;
      cp.final = payload->final;
      cp.prev = payload->prev;
      cp.jws = parsed->checkpoint;
      cp.key_jwk = parsed->key_jwk;
      scan->checkpoints.push_back(std::move(cp));
      while (!uncovered_decisions.empty() &&
             uncovered_decisions.front() <= payload->seq) {
        uncovered_decisions.pop_front();
      }
      scan->lines_after_checkpoint = 0;
    } else {
      ++scan->lines_after_checkpoint;
      if (decision) uncovered_decisions.push_back(seq);
    }
  }
  scan->decisions_after_covered =
      static_cast<int64_t>(uncovered_decisions.size());
  scan->log_id = scan->checkpoints.empty() ? first_log_id
                                           : scan->checkpoints.back().ref.log_id;
}

}  // namespace

absl::StatusOr<ActiveFileScan> ScanActiveFile(const std::string& path) {
  ActiveFileScan scan;
  for (const std::string& f : {path, path + ".1"}) {
    auto data = ReadWholeFile(f);
    if (!data.ok()) {
      if (absl::IsNotFound(data.status())) continue;
      return data.status();
    }
    if (data->find('\n') == std::string::npos) continue;  // no complete line
    scan.file = f;
    ScanLines(*data, &scan);
    return scan;
  }
  return scan;
}

absl::Status CheckAgainstAnchor(const std::string& path,
                                const ActiveFileScan& scan,
                                const Anchor& anchor,
                                const CheckpointTrust& trust) {
  const CheckpointRef& a = anchor.checkpoint;
  auto at = [&](int64_t line) { return absl::StrCat(scan.file, " line ", line); };
  auto refuse = [&](std::string_view what) {
    return absl::FailedPreconditionError(absl::StrCat(
        "audit log ", path, ": ", std::string(what), "; the HSM holds checkpoint seq ",
        a.seq, " of log ", a.log_id, " for instance \"", anchor.instance,
        "\". tokensignd refuses to append to this log until a custodian "
        "acknowledges the loss (tokensignctl audit acknowledge --reason ...); "
        "that starts a new log segment which records the acknowledgement"));
  };
  if (scan.lines == 0)
    return refuse("the log is missing or empty (lost or removed)");
  if (scan.break_line > 0) {
    return refuse(absl::StrCat("the chain is broken at ", at(scan.break_line),
                               ": ", scan.break_detail, " (tampered)"));
  }
  if (scan.checkpoints.empty()) {
    return refuse(absl::StrCat(
        scan.file, " holds no checkpoint (replaced, or truncated before the "
                   "checkpoint the HSM holds)"));
  }
  const ScannedCheckpoint& last = scan.checkpoints.back();
  const ScannedCheckpoint* anchored = nullptr;
  for (const ScannedCheckpoint& cp : scan.checkpoints) {
    if (cp.ref.seq == a.seq && cp.ref.log_id == a.log_id) anchored = &cp;
  }
  if (last.ref == a) {
    if (anchor.final && scan.lines_after_checkpoint > 0) {
      return refuse(absl::StrCat(
          scan.lines_after_checkpoint, " line(s) follow ", at(last.line),
          ", where the daemon stopped cleanly: they were added while no "
          "daemon ran (first: ", at(last.line + 1), ")"));
    }
    return absl::OkStatus();
  }
  if (last.prev && *last.prev == a) {
    auto payload = trust.Verify(last.jws, last.key_jwk);
    if (!payload.ok()) {
      return refuse(absl::StrCat("the checkpoint at ", at(last.line),
                                 " is not validly signed by the audit key: ",
                                 payload.status().message()));
    }
    if (anchor.final && anchored != nullptr &&
        last.line != anchored->line + 1) {
      return refuse(absl::StrCat(
          "lines follow ", at(anchored->line),
          ", where the daemon stopped cleanly, before the next start's "
          "checkpoint (first: ", at(anchored->line + 1), ")"));
    }
    return absl::OkStatus();
  }
  if (anchored != nullptr && anchored->ref.sha256 != a.sha256) {
    return refuse(absl::StrCat(at(anchored->line), " (seq ", a.seq,
                               ") differs from the checkpoint the HSM holds "
                               "(rewritten)"));
  }
  bool has_log = false;
  for (const ScannedCheckpoint& cp : scan.checkpoints)
    has_log = has_log || cp.ref.log_id == a.log_id;
  if (!has_log) {
    return refuse(absl::StrCat(scan.file, " belongs to log ", last.ref.log_id,
                               ", not to the anchored log (replaced)"));
  }
  if (last.ref.seq < a.seq) {
    return refuse(absl::StrCat(
        "the last checkpoint in ", scan.file, " (", at(last.line), ", seq ",
        last.ref.seq,
        ") is older than the HSM's: the log was truncated or replaced by an "
        "older copy"));
  }
  return refuse(absl::StrCat("the last checkpoint in ", scan.file, " (",
                             at(last.line), ", seq ", last.ref.seq,
                             ") does not follow the checkpoint the HSM holds"));
}

}  // namespace tokensign::audit
