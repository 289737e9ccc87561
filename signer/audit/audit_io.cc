#include "signer/audit/audit_io.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "signer/audit/unique_fd.h"

namespace tokensign::audit {
namespace {

absl::StatusOr<std::string> PreadAll(int fd, int64_t offset, int64_t len,
                                     const std::string& path) {
  std::string buf(static_cast<size_t>(len), '\0');
  int64_t done = 0;
  while (done < len) {
    ssize_t n = ::pread(fd, buf.data() + done, static_cast<size_t>(len - done),
                        offset + done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return PosixError("pread", path, errno);
    if (n == 0) break;  // file shrank underneath us
    done += n;
  }
  buf.resize(static_cast<size_t>(done));
  return buf;
}

}  // namespace

absl::Status PosixError(std::string_view what, const std::string& path,
                        int err) {
  std::string msg = absl::StrCat(std::string(what), " ", path, ": ",
                                 std::strerror(err), " (errno ", err, ")");
  switch (err) {
    case ENOENT:
      return absl::NotFoundError(msg);
    case EACCES:
    case EPERM:
    case EROFS:
      return absl::PermissionDeniedError(msg);
    case ENOSPC:
    case EFBIG:
    case EDQUOT:
      return absl::ResourceExhaustedError(msg);
    default:
      return absl::InternalError(msg);
  }
}

absl::StatusOr<LogTail> ReadLogTail(const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
  if (!fd.valid()) return PosixError("open", path, errno);
  struct stat st;
  if (::fstat(fd.get(), &st) != 0) return PosixError("fstat", path, errno);
  const int64_t size = st.st_size;
  for (int64_t window = 64 << 10;; window *= 2) {
    const int64_t start = std::max<int64_t>(0, size - window);
    auto buf = PreadAll(fd.get(), start, size - start, path);
    if (!buf.ok()) return buf.status();
    LogTail t;
    t.size = start + static_cast<int64_t>(buf->size());
    const std::string& b = *buf;
    size_t nl = b.rfind('\n');
    if (nl == std::string::npos) {
      if (start > 0) continue;
      t.torn = b;
      return t;
    }
    size_t p = nl == 0 ? std::string::npos : b.rfind('\n', nl - 1);
    if (p == std::string::npos && start > 0) continue;
    size_t q = std::string::npos;
    if (p != std::string::npos) {
      q = p == 0 ? std::string::npos : b.rfind('\n', p - 1);
      if (q == std::string::npos && start > 0) continue;
    }
    t.complete_end = start + static_cast<int64_t>(nl) + 1;
    t.torn = b.substr(nl + 1);
    size_t last_start = p == std::string::npos ? 0 : p + 1;
    t.has_last = true;
    t.last_line = b.substr(last_start, nl - last_start);
    if (p != std::string::npos) {
      size_t before_start = q == std::string::npos ? 0 : q + 1;
      t.has_before = true;
      t.before_last = b.substr(before_start, p - before_start);
    }
    return t;
  }
}

absl::StatusOr<ParsedLine> CheckTailLinks(const std::string& path,
                                          const LogTail& tail) {
  auto parsed = ParseAuditLine(tail.last_line);
  if (!parsed.ok()) {
    return absl::DataLossError(absl::StrCat(
        "audit log ", path, ": last complete line is unparsable (",
        parsed.status().message(),
        "); refusing to append to a damaged chain, run audit verify"));
  }
  if (tail.has_before) {
    if (parsed->prev != Sha256Hex(tail.before_last)) {
      return absl::DataLossError(absl::StrCat(
          "audit log ", path, ": prev of the last line (seq ", parsed->seq,
          ") does not match SHA-256 of the line before it; refusing to append "
          "to a "
          "damaged chain, run audit verify"));
    }
  } else if (parsed->type != LineType::kGenesis &&
             parsed->type != LineType::kContinuation) {
    return absl::DataLossError(absl::StrCat(
        "audit log ", path,
        ": the only line is neither a genesis nor a continuation record"));
  }
  return parsed;
}

}  // namespace tokensign::audit
