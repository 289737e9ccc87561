// OpenSSL's error queue as an absl::Status, both ways: the one place tokensign
// turns OpenSSL failures into Status, and the one way code running inside
// OpenSSL (the tokensign provider) hands a Status back across EVP — in the
// error queue itself, with no side channel.
// Thread-safety: OpenSSL's error queue is per thread; these functions read and
// write the calling thread's queue only.
#ifndef TOKENSIGN_CRYPTO_OPENSSL_ERROR_H_
#define TOKENSIGN_CRYPTO_OPENSSL_ERROR_H_

#include <string_view>

#include "absl/status/status.h"

namespace tokensign::crypto {

// Status with `what` and the drained OpenSSL error queue, e.g.
// "EVP_DigestVerifyInit: error:...:bad signature" (with each error's data
// text). Clears the queue. When the queue holds a Status raised with
// RaiseStatusError (the tokensign provider's failures), the first such one
// decides: its code (e.g. Unavailable for an HSM that is down, so callers
// retry) and its message ("what: C_Sign: CKR_DEVICE_REMOVED ...").
absl::Status OpenSslError(std::string_view what,
                          absl::StatusCode code = absl::StatusCode::kInternal);

// Pushes `status` (not OK) onto this thread's OpenSSL error queue as one
// error whose reason carries the code and whose data carries the message, so
// that OpenSslError recovers both after EVP returns. Used by the provider's
// operations when they fail.
void RaiseStatusError(const absl::Status& status);

// Forgets stale OpenSSL errors on this thread; call before an EVP operation
// whose failure will be reported with OpenSslError.
void ClearErrors();

}  // namespace tokensign::crypto

#endif  // TOKENSIGN_CRYPTO_OPENSSL_ERROR_H_
