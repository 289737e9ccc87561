// Writing the daemon's small state files (pid file, ready file) so that a
// file or symlink planted in their directory cannot redirect the write.
//
// Contract: ReplaceFile writes `content` to a NEW temporary file beside `path`
// (a random name, opened O_CREAT|O_EXCL|O_NOFOLLOW: never an existing file,
// never through a symlink), sets its mode to exactly `mode` (fchmod: the umask
// does not narrow it), then rename()s it over `path`. rename replaces a symlink
// at `path` itself and never writes through it; readers see the old file or
// the whole new one. On failure the temporary file is removed and the error
// names the file and the call that failed.
// Thread-safety: safe from any thread (no shared state).
#ifndef TOKENSIGN_SIGNER_SERVICE_STATE_FILE_H_
#define TOKENSIGN_SIGNER_SERVICE_STATE_FILE_H_

#include <sys/types.h>

#include <string>
#include <string_view>

#include "absl/status/status.h"

namespace tokensign::service {

absl::Status ReplaceFile(const std::string& path, std::string_view content,
                         mode_t mode = 0644);

}  // namespace tokensign::service

#endif  // TOKENSIGN_SIGNER_SERVICE_STATE_FILE_H_
