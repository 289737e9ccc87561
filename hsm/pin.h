// Reads the user PIN for the token from an environment variable or a file
// (never argv). The PIN is never logged and never part of a Status message.
// Thread-safety: stateless; safe from any thread (getenv is read-only here).
#ifndef TOKENSIGN_HSM_PIN_H_
#define TOKENSIGN_HSM_PIN_H_

#include <string>

#include "absl/status/statusor.h"
#include "hsm/hsm.h"

namespace tokensign::hsm {

// Exactly one of config.pin_env / config.pin_file / config.pin_value must be
// set (pin_value is returned as it is). A file's
// trailing newline(s) are stripped. An empty PIN is an error.
absl::StatusOr<std::string> ReadPin(const HsmConfig& config);

}  // namespace tokensign::hsm

#endif  // TOKENSIGN_HSM_PIN_H_
