#include "tools/tokensignctl/audit_tail.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <fstream>
#include <iostream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "nlohmann/json.hpp"
#include "signer/audit/audit_format.h"
#include "signer/audit/checkpoint.h"
#include "signer/token/jws.h"

namespace tokensign::ctl {
namespace {

// The same rule as `audit lineage` (signer/audit/lineage.cc): values made of
// these characters print bare, any other value as a JSON string with
// non-ASCII escaped.
bool IsBareChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
         (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.' ||
         c == ':' || c == '/' || c == '~' || c == '+' || c == '#' || c == '%';
}

std::string Quoted(const std::string& v) {
  if (!v.empty() && std::all_of(v.begin(), v.end(), IsBareChar)) return v;
  return nlohmann::json(v).dump(-1, ' ', /*ensure_ascii=*/true,
                                nlohmann::json::error_handler_t::replace);
}

// " name=value" when value is not empty.
void Member(std::string* out, const char* name, const std::string& value) {
  if (!value.empty()) absl::StrAppend(out, " ", name, "=", Quoted(value));
}

std::string JsonString(const nlohmann::json& j, const char* name) {
  auto it = j.find(name);
  return it != j.end() && it->is_string() ? it->get<std::string>() : "";
}

std::string Decision(const audit::AuditRecord& r) {
  std::string out = absl::StrCat(audit::FormatAuditTime(r.time), " ",
                                 Quoted(r.kind), " ", Quoted(r.outcome));
  Member(&out, "caller", r.caller);
  Member(&out, "issuer", r.issuer);
  Member(&out, "sub", r.sub);
  if (!r.actor_chain.empty()) {
    std::vector<std::string> actors;
    for (const audit::AuditActor& a : r.actor_chain) {
      actors.push_back(a.iss.empty()
                           ? Quoted(a.sub)
                           : absl::StrCat(Quoted(a.sub), "@", Quoted(a.iss)));
    }
    absl::StrAppend(&out, " actors=[", absl::StrJoin(actors, " <- "), "]");
  }
  Member(&out, "kid", r.kid);
  Member(&out, "jti", r.jti);
  Member(&out, "reason", r.reason);
  return out;
}

// "checkpoint covers seq N (M records)" from the JWS payload, unverified.
std::string CheckpointSummary(const std::string& jws) {
  const size_t a = jws.find('.');
  const size_t b = a == std::string::npos ? a : jws.find('.', a + 1);
  if (b == std::string::npos) return "checkpoint (not a compact JWS)";
  auto payload = token::Base64UrlDecode(jws.substr(a + 1, b - a - 1));
  if (!payload.ok()) return "checkpoint (payload not base64url)";
  auto parsed = audit::ParseCheckpointPayload(
      nlohmann::json::parse(*payload, nullptr, /*allow_exceptions=*/false));
  if (!parsed.ok())
    return absl::StrCat("checkpoint (", Quoted(std::string(parsed.status().message())), ")");
  return absl::StrCat(audit::FormatAuditTime(parsed->time),
                      " checkpoint covers seq ", parsed->seq, " (",
                      parsed->records, " records",
                      parsed->final ? ", at clean shutdown" : "", ")");
}

// One line as `audit tail` prints it, given its parse result.
std::string Format(std::string_view line,
                   const absl::StatusOr<audit::ParsedLine>& parsed,
                   long number) {
  if (!parsed.ok()) {
    return absl::StrCat("line ", number, ": not an audit record: ",
                        Quoted(std::string(parsed.status().message())));
  }
  const nlohmann::json j =
      nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
  switch (parsed->type) {
    case audit::LineType::kDecision:
      return Decision(parsed->record);
    case audit::LineType::kGenesis: {
      std::string out =
          absl::StrCat(Quoted(JsonString(j, "created")), " genesis");
      Member(&out, "log", JsonString(j, "log"));
      Member(&out, "log_id", parsed->log_id);
      Member(&out, "instance", parsed->instance);
      if (!parsed->acknowledged.empty()) {
        const nlohmann::json ack = nlohmann::json::parse(
            parsed->acknowledged, nullptr, /*allow_exceptions=*/false);
        absl::StrAppend(&out, " follows a lost log;");
        Member(&out, "acknowledged_by", JsonString(ack, "by"));
        Member(&out, "reason", JsonString(ack, "reason"));
      }
      return out;
    }
    case audit::LineType::kContinuation: {
      std::string out =
          absl::StrCat(Quoted(JsonString(j, "time")), " continuation");
      Member(&out, "continues", parsed->continues);
      if (!parsed->checkpoint.empty())
        absl::StrAppend(&out, "; ", CheckpointSummary(parsed->checkpoint));
      return out;
    }
    case audit::LineType::kRepair: {
      std::string out = absl::StrCat(Quoted(JsonString(j, "time")),
                                     " repair ", Quoted(JsonString(j, "repair")));
      auto dropped = j.find("dropped_bytes");
      if (dropped != j.end() && dropped->is_number_integer())
        absl::StrAppend(&out, " dropped_bytes=", dropped->get<int64_t>());
      return out;
    }
    case audit::LineType::kCheckpoint:
      return CheckpointSummary(parsed->checkpoint);
  }
  return "";
}

// The seq of a file's first line, or -1 when it cannot be read or parsed.
int64_t FirstSeq(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::string line;
  if (!in || !std::getline(in, line)) return -1;
  auto parsed = audit::ParseAuditLine(line);
  return parsed.ok() ? parsed->seq : -1;
}

// Reads one log file after another as `audit tail` does (see the header).
// Rotation may rename files several times between two looks, so after a
// rotation the files that follow the last record printed are found by seq
// (seq numbers the whole chain across rotated files) and read in order; a
// record is never printed twice, and a gap (a file renamed again while being
// looked for) makes it look again.
class Tail {
 public:
  explicit Tail(std::string path) : path_(std::move(path)) {}
  ~Tail() { Close(); }

  bool Open() {
    fd_ = ::open(path_.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd_ < 0) return Error("open", path_);
    return true;
  }

  // Prints the file's complete lines up to its current end.
  bool Drain() {
    char chunk[1 << 16];
    for (;;) {
      const ssize_t n = ::read(fd_, chunk, sizeof(chunk));
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) return Error("read", path_);
      if (n == 0) return true;
      offset_ += n;
      pending_.append(chunk, static_cast<size_t>(n));
      size_t start = 0;
      for (size_t nl; (nl = pending_.find('\n', start)) != std::string::npos;
           start = nl + 1) {
        Print(std::string_view(pending_).substr(start, nl - start));
      }
      pending_.erase(0, start);
    }
  }

  // Notes a last line without its newline (a torn write, or one in progress).
  void NoteTorn() {
    if (!pending_.empty() && !skipping_) {
      std::cout << "line " << number_ + 1 << ": incomplete ("
                << pending_.size() << " bytes without a newline)\n";
    }
  }

  // One step of --follow: false on a read error.
  bool Poll() {
    if (!Drain()) return false;
    std::cout.flush();
    struct stat open_st {}, path_st {};
    if (::fstat(fd_, &open_st) != 0) return Error("stat", path_);
    if (::stat(path_.c_str(), &path_st) != 0) return true;  // mid-rotation
    if (open_st.st_ino != path_st.st_ino || open_st.st_dev != path_st.st_dev) {
      // Rotated: the daemon may have appended to the old file just before
      // renaming it.
      if (!Drain()) return false;
      NoteTorn();
      return CatchUp();
    }
    if (open_st.st_size < offset_) {
      std::cout << "(" << path_
                << " was truncated; reading it from its start)\n";
      ::lseek(fd_, 0, SEEK_SET);
      Reset();
    }
    return true;
  }

 private:
  bool Error(const char* what, const std::string& path) {
    std::cerr << "tokensignctl: " << what << " " << path << ": "
              << std::strerror(errno) << "\n";
    return false;
  }
  void Close() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }
  void Reset() {
    pending_.clear();
    number_ = 0;
    offset_ = 0;
  }

  void Print(std::string_view line) {
    ++number_;
    if (skipping_) return;
    auto parsed = audit::ParseAuditLine(line);
    if (parsed.ok()) {
      const bool genesis = parsed->type == audit::LineType::kGenesis;
      if (catch_up_ && !genesis && last_seq_ >= 0) {
        if (parsed->seq <= last_seq_) return;  // printed before
        if (parsed->seq > last_seq_ + 1) {     // a file was missed
          skipping_ = true;
          return;
        }
      }
      last_seq_ = parsed->seq;  // a genesis starts a new log at 0
    }
    std::cout << Format(line, parsed, number_) << "\n";
  }

  // After a rotation: the files holding the records after last_seq_, oldest
  // first, each read to its end; the newest (path_) stays open.
  bool CatchUp() {
    catch_up_ = true;
    for (int attempt = 0;; ++attempt) {
      std::vector<std::string> files = audit::AuditChainFiles(path_);
      // Newest first, the first file that starts at or before the next seq.
      size_t from = 0;
      for (size_t i = files.size(); i-- > 0;) {
        const int64_t first = FirstSeq(files[i]);
        if (first >= 0 && first <= last_seq_ + 1) {
          from = i;
          break;
        }
      }
      skipping_ = false;
      for (size_t i = from; i < files.size() && !skipping_; ++i) {
        Close();
        Reset();
        path_now_ = files[i];
        fd_ = ::open(files[i].c_str(), O_RDONLY | O_CLOEXEC);
        if (fd_ < 0) {
          skipping_ = true;  // renamed meanwhile: look again
          break;
        }
        if (!Drain()) return false;
        if (i + 1 < files.size()) NoteTorn();
      }
      if (!skipping_ && path_now_ == path_) break;
      if (attempt == 20) {
        std::cout << "(records after seq " << last_seq_
                  << " were rotated away before they could be read)\n";
        skipping_ = false;
        Close();
        Reset();
        if (!Open()) return false;
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    catch_up_ = false;
    return true;
  }

  std::string path_;
  std::string path_now_;  // the file fd_ was opened as during CatchUp
  int fd_ = -1;
  std::string pending_;  // bytes after the last newline read
  long number_ = 0;      // lines of the current file read
  off_t offset_ = 0;     // bytes of the current file read
  int64_t last_seq_ = -1;
  bool catch_up_ = false;  // skip records already printed
  bool skipping_ = false;  // a gap was found: print nothing until looked again
};

}  // namespace

std::string FormatTailLine(std::string_view line, long number) {
  return Format(line, audit::ParseAuditLine(line), number);
}

int RunAuditTail(const std::string& path, bool follow) {
  Tail tail(path);
  if (!tail.Open()) return 1;
  if (!follow) {
    if (!tail.Drain()) return 1;
    tail.NoteTorn();
    return 0;
  }
  for (;;) {
    if (!tail.Poll()) return 1;
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
}

}  // namespace tokensign::ctl
