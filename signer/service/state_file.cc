#include "signer/service/state_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <random>

#include "absl/strings/str_cat.h"

namespace tokensign::service {
namespace {

absl::Status Errno(const std::string& what, const std::string& file, int err) {
  return absl::InternalError(
      absl::StrCat(what, " ", file, ": ", std::strerror(err)));
}

}  // namespace

absl::Status ReplaceFile(const std::string& path, std::string_view content,
                         mode_t mode) {
  // A fresh name each try: O_EXCL refuses anything already there, so a name
  // planted in advance can only make us pick another.
  std::random_device rd;
  std::string tmp;
  int fd = -1;
  for (int attempt = 0; fd < 0; ++attempt) {
    tmp = absl::StrCat(path, ".tmp-", ::getpid(), "-",
                       absl::Hex(static_cast<uint32_t>(rd()), absl::kZeroPad8));
    fd = ::open(tmp.c_str(),
                O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
    if (fd < 0 && (errno != EEXIST || attempt >= 16))
      return Errno("create", tmp, errno);
  }
  absl::Status st;
  if (::fchmod(fd, mode) != 0) st = Errno("chmod", tmp, errno);
  for (size_t done = 0; st.ok() && done < content.size();) {
    ssize_t n = ::write(fd, content.data() + done, content.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      st = Errno("write", tmp, errno);
      break;
    }
    done += static_cast<size_t>(n);
  }
  if (::close(fd) != 0 && st.ok()) st = Errno("close", tmp, errno);
  if (st.ok() && std::rename(tmp.c_str(), path.c_str()) != 0)
    st = Errno(absl::StrCat("rename ", tmp, " to"), path, errno);
  if (!st.ok()) ::unlink(tmp.c_str());
  return st;
}

}  // namespace tokensign::service
