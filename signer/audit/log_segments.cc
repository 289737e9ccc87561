#include "signer/audit/log_segments.h"

#include <cerrno>
#include <cstdio>
#include <filesystem>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "signer/audit/audit_format.h"
#include "signer/audit/audit_io.h"

namespace tokensign::audit {

std::string LogBaseName(const std::string& path) {
  return std::filesystem::path(path).filename().string();
}

absl::StatusOr<std::unique_ptr<WritableFile>> RotateLogFiles(
    const std::string& path, bool durable) {
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
  absl::StatusOr<UniqueFd> fd = OpenAppendFd(path, /*exclusive=*/true,
                                             "open (rotation)");
  if (!fd.ok()) return fd.status();
  if (durable) {
    if (absl::Status s = SyncParentDir(path); !s.ok()) return s;
  }
  return std::make_unique<PosixWritableFile>(*std::move(fd), path);
}

absl::StatusOr<UniqueFd> StartNewSegment(const std::string& path,
                                         bool durable) {
  std::error_code ec;
  if (std::filesystem::exists(path, ec)) {
    std::string lost = absl::StrCat(
        path, ".lost-",
        absl::FormatTime("%Y%m%dT%H%M%SZ", absl::Now(), absl::UTCTimeZone()));
    if (::rename(path.c_str(), lost.c_str()) != 0)
      return PosixError("rename", path, errno);
  }
  absl::StatusOr<UniqueFd> fd = OpenAppendFd(path, /*exclusive=*/true,
                                             "open (new segment)");
  if (!fd.ok()) return fd.status();
  if (durable) {
    if (absl::Status s = SyncParentDir(path); !s.ok()) return s;
  }
  return fd;
}

}  // namespace tokensign::audit
