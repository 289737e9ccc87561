// The audit log's file seam (after leveldb's WritableFile): the group
// committer writes and syncs through it, so it and the chain writer run
// against memory in tests. PosixWritableFile is the real one (an owned fd,
// write() + fdatasync()); MemoryWritableFile keeps the bytes in memory and can
// be told to fail. Thread-safety: a WritableFile has one user at a time (the
// audit log's writer thread); MemoryWritableFile's shared Contents may be read
// from any thread.
#ifndef TOKENSIGN_SIGNER_AUDIT_WRITABLE_FILE_H_
#define TOKENSIGN_SIGNER_AUDIT_WRITABLE_FILE_H_

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "signer/audit/std_mutex.h"
#include "signer/audit/unique_fd.h"

namespace tokensign::audit {

class WritableFile {
 public:
  virtual ~WritableFile() = default;
  // Appends all of `data` (a short write is retried; an error is final).
  virtual absl::Status Append(std::string_view data) = 0;
  // Makes everything appended so far durable (fdatasync).
  virtual absl::Status Sync() = 0;
  // Closes the file; later calls fail. The destructor closes too.
  virtual absl::Status Close() = 0;
};

// Owns `fd` (opened for appending); `path` only names it in errors.
class PosixWritableFile final : public WritableFile {
 public:
  PosixWritableFile(UniqueFd fd, std::string path)
      : fd_(std::move(fd)), path_(std::move(path)) {}
  absl::Status Append(std::string_view data) override;
  absl::Status Sync() override;
  absl::Status Close() override;

 private:
  UniqueFd fd_;
  const std::string path_;
};

// Opens `path` for appending as the audit log does (O_WRONLY|O_CREAT|
// O_APPEND|O_CLOEXEC|O_NOFOLLOW, mode 0600; with `exclusive` also O_EXCL).
// `what` names the step in the error ("open (rotation)").
absl::StatusOr<UniqueFd> OpenAppendFd(const std::string& path, bool exclusive,
                                      std::string_view what);

// fsync of the directory that holds `path` (a created or renamed file's name
// is durable only after this).
absl::Status SyncParentDir(const std::string& path);

// In-memory file for tests. The bytes and counters live in a shared Contents
// that outlives the file (the committer owns and drops files on rotation).
class MemoryWritableFile final : public WritableFile {
 public:
  struct Contents {
    mutable StdMutex mu;
    std::string data ABSL_GUARDED_BY(mu);    // everything appended
    std::string synced ABSL_GUARDED_BY(mu);  // the prefix made durable
    int64_t appends ABSL_GUARDED_BY(mu) = 0;
    int64_t syncs ABSL_GUARDED_BY(mu) = 0;
    bool closed ABSL_GUARDED_BY(mu) = false;
    // Injected failures: returned by the next Append / Sync (then cleared).
    absl::Status fail_append ABSL_GUARDED_BY(mu);
    absl::Status fail_sync ABSL_GUARDED_BY(mu);

    std::string Synced() const {
      StdMutexLock lock(&mu);
      return synced;
    }
    int64_t Syncs() const {
      StdMutexLock lock(&mu);
      return syncs;
    }
  };
  explicit MemoryWritableFile(std::shared_ptr<Contents> contents)
      : contents_(std::move(contents)) {}
  absl::Status Append(std::string_view data) override;
  absl::Status Sync() override;
  absl::Status Close() override;

 private:
  std::shared_ptr<Contents> contents_;
};

}  // namespace tokensign::audit

#endif  // TOKENSIGN_SIGNER_AUDIT_WRITABLE_FILE_H_
