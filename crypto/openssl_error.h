// OpenSSL's error queue as an absl::Status: the one place tokensign turns
// OpenSSL failures into Status. Thread-safety: OpenSSL's error queue is per
// thread; these functions read and clear the calling thread's queue only.
#ifndef TOKENSIGN_CRYPTO_OPENSSL_ERROR_H_
#define TOKENSIGN_CRYPTO_OPENSSL_ERROR_H_

#include <string_view>

#include "absl/status/status.h"

namespace tokensign::crypto {

// Status with `what` and the drained OpenSSL error queue, e.g.
// "EVP_DigestVerifyInit: error:...:bad signature" (with each error's data
// text). Clears the queue. When the tokensign provider failed on this thread
// since the last ClearErrors (RecordProviderStatus), that failure decides:
// its code (e.g. Unavailable for an HSM that is down, so callers retry) and
// its message ("C_Sign: CKR_DEVICE_REMOVED ...") instead of OpenSSL's queue.
absl::Status OpenSslError(std::string_view what,
                          absl::StatusCode code = absl::StatusCode::kInternal);

// Called by the tokensign provider when an operation fails: OpenSSL carries
// only text across EVP, so the absl::Status (code and message) is kept per
// thread for OpenSslError. Thread-safety: per-thread state only.
void RecordProviderStatus(const absl::Status& status);

// Forgets stale OpenSSL errors and provider status on this thread; call before
// an EVP operation whose failure will be reported with OpenSslError.
void ClearErrors();

}  // namespace tokensign::crypto

#endif  // TOKENSIGN_CRYPTO_OPENSSL_ERROR_H_
