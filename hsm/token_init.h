// Initializes a fresh token on a PKCS#11 module (C_InitToken + C_InitPIN), the
// way `softhsm2-util --init-token --free` does, but with the PINs passed in
// memory so they never appear in any process's argv. Used by `tokensignd --dev`
// and by custodian tooling. Thread-safety: a free function; do not run two
// initializations on one module at once.
#ifndef TOKENSIGN_HSM_TOKEN_INIT_H_
#define TOKENSIGN_HSM_TOKEN_INIT_H_

#include <string>
#include <string_view>

#include "absl/status/status.h"

namespace tokensign::hsm {

// Initializes the first slot whose token is not yet initialized with `label`,
// sets the SO PIN and the user PIN. Fails with AlreadyExists if a token with
// `label` exists, with FailedPrecondition if no free slot exists, and with the
// PKCS#11 function and CKR_ name otherwise. label: 1..32 bytes; PINs: 4..255
// bytes.
absl::Status InitializeToken(const std::string& module_path,
                             std::string_view label, std::string_view so_pin,
                             std::string_view user_pin);

}  // namespace tokensign::hsm

#endif  // TOKENSIGN_HSM_TOKEN_INIT_H_
