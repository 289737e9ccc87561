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

#include <atomic>
#include <memory>
#include <mutex>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "hsm/hsm_types.h"
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

// `status` carrying the CK_RV of `from` (when `from` has one), so that
// RvOf(result) == RvOf(from) after a message was rewritten.
absl::Status WithRvOf(absl::Status status, const absl::Status& from);

// What recovering from a failed call takes, decided here for every CK_RV (the
// recovery engine, hsm/recovery.h, acts on it):
//   kFatal        a real answer (bad data, wrong key, PIN, unsupported ...):
//                 returned to the caller; the session stays usable.
//   kNewSession   the session is unusable: SESSION_HANDLE_INVALID,
//                 SESSION_CLOSED, USER_NOT_LOGGED_IN, and a session stuck in an
//                 operation it will not finish (OPERATION_ACTIVE,
//                 OPERATION_NOT_INITIALIZED, BUFFER_TOO_SMALL).
//   kReinitModule the module lost its state: DEVICE_ERROR, DEVICE_REMOVED,
//                 TOKEN_NOT_PRESENT, CRYPTOKI_NOT_INITIALIZED (C_Finalize +
//                 C_Initialize, then new sessions).
//   kStaleHandle  KEY_HANDLE_INVALID, OBJECT_HANDLE_INVALID: the object is gone
//                 or the session lost its login; resolve the handle again.
enum class RvClass { kFatal, kNewSession, kReinitModule, kStaleHandle };
RvClass ClassifyRv(CK_RV rv);
// kNewSession or kReinitModule: the session (or the module) must be
// re-established before it is used again.
bool IsBrokenSessionRv(CK_RV rv);
// kReinitModule.
bool NeedsModuleReinitRv(CK_RV rv);

// Where the failing calls of one module handle (one Hsm) are reported: the
// HsmErrorObserver set on that Hsm, if any. CKR_USER_ALREADY_LOGGED_IN, which
// the session pool treats as success, is not reported. Owned by the Module;
// no process-global state. Thread-safety: Set and Notify may race freely; an
// observer replaced or cleared may still finish a call already running, so
// clear it before what it captures goes away. Observers set are kept until
// the sink is destroyed (a Set per daemon start, not per call).
class P11ErrorSink {
 public:
  void Set(HsmErrorObserver observer);
  void Notify(std::string_view function, CK_RV rv) const;

 private:
  std::atomic<const HsmErrorObserver*> current_{nullptr};
  std::mutex mu_;  // guards kept_
  std::vector<std::unique_ptr<HsmErrorObserver>> kept_;
};

class P11 {
 public:
  P11() = default;
  explicit P11(CK_FUNCTION_LIST_PTR functions,
               const P11ErrorSink* errors = nullptr)
      : functions_(functions), errors_(errors) {}

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
    if (errors_ != nullptr) errors_->Notify(name, rv);
    return CkStatus(name, rv);
  }

  CK_FUNCTION_LIST_PTR functions() const { return functions_; }

 private:
  CK_FUNCTION_LIST_PTR functions_ = nullptr;
  const P11ErrorSink* errors_ = nullptr;
};

}  // namespace tokensign::hsm

// TS_P11(p11, C_Sign, session, data, len, sig, &sig_len) -> absl::Status.
#define TS_P11(p11, fn, ...) \
  (p11).Call(#fn, &CK_FUNCTION_LIST::fn __VA_OPT__(, ) __VA_ARGS__)

#endif  // TOKENSIGN_HSM_PKCS11_CALL_H_
