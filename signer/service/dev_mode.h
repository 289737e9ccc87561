// Dev mode ("embedded default") of tokensignd: a self-contained state
// directory.
//
// Contract: PrepareDevState(dir) makes `dir` (0700) hold its own SoftHSM token:
// dir/softhsm2.conf (tokendir = dir/tokens), dir/pin and dir/so-pin (random,
// 0600), and a token labelled "tokensign-dev" initialized through
// hsm::InitializeToken (PINs never in argv). It sets SOFTHSM2_CONF for this
// process before any module is opened. A second run finds dir/token-initialized
// and reuses the token (and so the keys). Returns the absolute state directory.
// Thread-safety: call once, before starting threads (it calls setenv).
#ifndef TOKENSIGN_SIGNER_SERVICE_DEV_MODE_H_
#define TOKENSIGN_SIGNER_SERVICE_DEV_MODE_H_

#include <string>

#include "absl/status/statusor.h"

namespace tokensign::service {

inline constexpr char kDevTokenLabel[] = "tokensign-dev";

absl::StatusOr<std::string> PrepareDevState(const std::string& dir,
                                            const std::string& module_path);

}  // namespace tokensign::service

#endif  // TOKENSIGN_SIGNER_SERVICE_DEV_MODE_H_
