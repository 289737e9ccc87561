// Reads the user PIN for the token from an environment variable or a file
// (never argv), or takes it from an in-process caller (pin_value). The PIN is
// never logged and never part of a Status message.
//
// A PIN file is checked as ssh checks its key files, on the file actually
// opened (fstat of the descriptor): it must be a regular file, writable by
// nobody but its owner, and owned by this process's user or root (anyone else
// who can write it could hand the daemon a PIN of their choosing, or learn the
// real one by swapping the file). A file that others may read is accepted
// (container secret mounts are often 0444/0644) with a warning.
// Thread-safety: stateless; safe from any thread (getenv is read-only here).
#ifndef TOKENSIGN_HSM_PIN_H_
#define TOKENSIGN_HSM_PIN_H_

#include <sys/stat.h>
#include <sys/types.h>

#include <string>

#include "absl/status/statusor.h"
#include "hsm/hsm_types.h"

namespace tokensign::hsm {

// Exactly one of config.pin_env / config.pin_file / config.pin_value must be
// set (pin_value is returned as it is). A file's trailing newline(s) are
// stripped. An empty PIN is an error. A PIN file that CheckPinFileStat refuses
// is FailedPrecondition; its warning, if any, goes to *warning when given.
absl::StatusOr<std::string> ReadPin(const HsmConfig& config,
                                    std::string* warning = nullptr);

// The rules above for the file at `path` with status `st`, as seen by a
// process running as uid `self`: FailedPrecondition naming the file, what is
// wrong and the command that fixes it, e.g. "pin_file /x: mode 0664 lets group
// write it; chmod 600 /x". OK otherwise; then *warning (when given) is set to
// a note when others may read the file, else cleared.
absl::Status CheckPinFileStat(const std::string& path, const struct stat& st,
                              uid_t self, std::string* warning);

// Checks config.pin_file without reading the PIN: its warning ("" when none,
// or when the PIN comes from pin_env), or CheckPinFileStat's refusal. For the
// daemon to log the warning at start; ReadPin enforces the rules again.
absl::StatusOr<std::string> CheckPinFile(const HsmConfig& config);

}  // namespace tokensign::hsm

#endif  // TOKENSIGN_HSM_PIN_H_
