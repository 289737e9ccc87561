// THE PKCS#11 choke point. Every C_* call in tokensign goes through P11::Call
// (normally via the TS_P11 macro), which maps a CK_RV to an absl::Status whose
// message names the function and the CKR_ constant, e.g. "C_Sign:
// CKR_KEY_HANDLE_INVALID (0x82)". The raw CK_RV travels in the Status payload
// so callers can classify it (RvOf, IsBrokenSession). No other file
// dereferences the function list (the benchmark's raw ceiling aside).
//
// Thread-safety: P11 is an immutable pointer holder; safe from any thread (the
// module is initialized with CKF_OS_LOCKING_OK).
#ifndef TOKENSIGN_HSM_PKCS11_CALL_H_
#define TOKENSIGN_HSM_PKCS11_CALL_H_

#include <functional>
#include <string_view>

#include "absl/status/status.h"
#include "hsm/pkcs11.h"

namespace tokensign::hsm {

// "CKR_SESSION_CLOSED", or "CKR_VENDOR_DEFINED+0x.." / "CKR_UNKNOWN" style for
// others.
std::string_view CkrName(CK_RV rv);

// OK for CKR_OK; otherwise a Status "<fn>: <CKR_NAME> (0x..)" with a code
// chosen from rv (kNotFound for handle/object errors, kUnavailable for
// device/session loss, kPermissionDenied for PIN errors, kInvalidArgument for
// bad data, kUnimplemented for unsupported mechanisms, kInternal otherwise) and
// the CK_RV as payload.
absl::Status CkStatus(std::string_view function, CK_RV rv);

// The CK_RV carried by a Status made by CkStatus; CKR_OK for OK;
// CKR_GENERAL_ERROR for a Status not made by CkStatus.
CK_RV RvOf(const absl::Status& status);

// True for the return values after which a session (or the whole module) must
// be re-established: SESSION_HANDLE_INVALID, SESSION_CLOSED, DEVICE_ERROR,
// DEVICE_REMOVED, TOKEN_NOT_PRESENT, USER_NOT_LOGGED_IN,
// CRYPTOKI_NOT_INITIALIZED, and a session stuck in an operation it will not
// finish: OPERATION_ACTIVE, OPERATION_NOT_INITIALIZED, BUFFER_TOO_SMALL.
bool IsBrokenSessionRv(CK_RV rv);
// True when recovery needs C_Finalize + C_Initialize, not just a new session.
bool NeedsModuleReinitRv(CK_RV rv);

// Told of every PKCS#11 call that fails (for metrics such as
// tokensign_hsm_errors_total{function}), except CKR_USER_ALREADY_LOGGED_IN
// which the session pool treats as success. Set it once before the first call
// and clear it (nullptr) before `observer` goes away; it runs on the calling
// thread and must be thread-safe and quick.
using P11ErrorObserver = std::function<void(std::string_view function, CK_RV rv)>;
void SetP11ErrorObserver(const P11ErrorObserver* observer);
void NotifyP11Error(std::string_view function, CK_RV rv);

class P11 {
 public:
  P11() = default;
  explicit P11(CK_FUNCTION_LIST_PTR functions) : functions_(functions) {}

  template <typename Fn, typename... Args>
  absl::Status Call(std::string_view name, Fn CK_FUNCTION_LIST::*member,
                    Args... args) const {
    if (functions_ == nullptr) {
      return absl::FailedPreconditionError(std::string(name) +
                                           ": PKCS#11 module not loaded");
    }
    Fn fn = functions_->*member;
    if (fn == nullptr) {
      return absl::UnimplementedError(std::string(name) +
                                      ": not provided by the PKCS#11 module");
    }
    CK_RV rv = fn(args...);
    if (rv == CKR_OK) return absl::OkStatus();
    NotifyP11Error(name, rv);
    return CkStatus(name, rv);
  }

  CK_FUNCTION_LIST_PTR functions() const { return functions_; }

 private:
  CK_FUNCTION_LIST_PTR functions_ = nullptr;
};

}  // namespace tokensign::hsm

// TS_P11(p11, C_Sign, session, data, len, sig, &sig_len) -> absl::Status.
#define TS_P11(p11, fn, ...) \
  (p11).Call(#fn, &CK_FUNCTION_LIST::fn __VA_OPT__(, ) __VA_ARGS__)

#endif  // TOKENSIGN_HSM_PKCS11_CALL_H_
