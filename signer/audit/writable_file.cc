#include "signer/audit/writable_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>
#include <utility>

#include "signer/audit/audit_io.h"

namespace tokensign::audit {

absl::Status PosixWritableFile::Append(std::string_view data) {
  if (!fd_.valid()) return absl::FailedPreconditionError("write " + path_ + ": closed");
  while (!data.empty()) {
    ssize_t n = ::write(fd_.get(), data.data(), data.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return PosixError("write", path_, errno);
    data.remove_prefix(static_cast<size_t>(n));
  }
  return absl::OkStatus();
}

absl::Status PosixWritableFile::Sync() {
  if (!fd_.valid()) return absl::FailedPreconditionError("fdatasync " + path_ + ": closed");
  if (::fdatasync(fd_.get()) != 0) return PosixError("fdatasync", path_, errno);
  return absl::OkStatus();
}

absl::Status PosixWritableFile::Close() {
  fd_.reset();
  return absl::OkStatus();
}

absl::StatusOr<UniqueFd> OpenAppendFd(const std::string& path, bool exclusive,
                                      std::string_view what) {
  const int flags = O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW |
                    (exclusive ? O_EXCL : 0);
  UniqueFd fd(::open(path.c_str(), flags, 0600));
  if (!fd.valid()) return PosixError(what, path, errno);
  return fd;
}

absl::Status SyncParentDir(const std::string& path) {
  std::filesystem::path p(path);
  const std::string dir =
      p.has_parent_path() ? p.parent_path().string() : std::string(".");
  UniqueFd dfd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!dfd.valid()) return PosixError("open directory", dir, errno);
  if (::fsync(dfd.get()) != 0) return PosixError("fsync directory", dir, errno);
  return absl::OkStatus();
}

absl::Status MemoryWritableFile::Append(std::string_view data) {
  StdMutexLock lock(&contents_->mu);
  if (contents_->closed) return absl::FailedPreconditionError("memory file: closed");
  if (!contents_->fail_append.ok()) {
    return std::exchange(contents_->fail_append, absl::OkStatus());
  }
  ++contents_->appends;
  contents_->data.append(data);
  return absl::OkStatus();
}

absl::Status MemoryWritableFile::Sync() {
  StdMutexLock lock(&contents_->mu);
  if (contents_->closed) return absl::FailedPreconditionError("memory file: closed");
  if (!contents_->fail_sync.ok()) {
    return std::exchange(contents_->fail_sync, absl::OkStatus());
  }
  ++contents_->syncs;
  contents_->synced = contents_->data;
  return absl::OkStatus();
}

absl::Status MemoryWritableFile::Close() {
  StdMutexLock lock(&contents_->mu);
  contents_->closed = true;
  return absl::OkStatus();
}

}  // namespace tokensign::audit
