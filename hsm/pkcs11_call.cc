#include "hsm/pkcs11_call.h"

#include <cstdint>
#include <optional>
#include <string>

#include "absl/strings/cord.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_format.h"

namespace tokensign::hsm {
namespace {

constexpr char kRvPayloadUrl[] = "tokensign.hsm/ck_rv";

struct RvName {
  CK_RV rv;
  std::string_view name;
};

#define TS_CKR(name) \
  RvName { name, #name }
constexpr RvName kRvNames[] = {
    TS_CKR(CKR_OK),
    TS_CKR(CKR_CANCEL),
    TS_CKR(CKR_HOST_MEMORY),
    TS_CKR(CKR_SLOT_ID_INVALID),
    TS_CKR(CKR_GENERAL_ERROR),
    TS_CKR(CKR_FUNCTION_FAILED),
    TS_CKR(CKR_ARGUMENTS_BAD),
    TS_CKR(CKR_NO_EVENT),
    TS_CKR(CKR_NEED_TO_CREATE_THREADS),
    TS_CKR(CKR_CANT_LOCK),
    TS_CKR(CKR_ATTRIBUTE_READ_ONLY),
    TS_CKR(CKR_ATTRIBUTE_SENSITIVE),
    TS_CKR(CKR_ATTRIBUTE_TYPE_INVALID),
    TS_CKR(CKR_ATTRIBUTE_VALUE_INVALID),
    TS_CKR(CKR_ACTION_PROHIBITED),
    TS_CKR(CKR_DATA_INVALID),
    TS_CKR(CKR_DATA_LEN_RANGE),
    TS_CKR(CKR_DEVICE_ERROR),
    TS_CKR(CKR_DEVICE_MEMORY),
    TS_CKR(CKR_DEVICE_REMOVED),
    TS_CKR(CKR_ENCRYPTED_DATA_INVALID),
    TS_CKR(CKR_ENCRYPTED_DATA_LEN_RANGE),
    TS_CKR(CKR_FUNCTION_CANCELED),
    TS_CKR(CKR_FUNCTION_NOT_PARALLEL),
    TS_CKR(CKR_FUNCTION_NOT_SUPPORTED),
    TS_CKR(CKR_KEY_HANDLE_INVALID),
    TS_CKR(CKR_KEY_SIZE_RANGE),
    TS_CKR(CKR_KEY_TYPE_INCONSISTENT),
    TS_CKR(CKR_KEY_NOT_NEEDED),
    TS_CKR(CKR_KEY_CHANGED),
    TS_CKR(CKR_KEY_NEEDED),
    TS_CKR(CKR_KEY_INDIGESTIBLE),
    TS_CKR(CKR_KEY_FUNCTION_NOT_PERMITTED),
    TS_CKR(CKR_KEY_NOT_WRAPPABLE),
    TS_CKR(CKR_KEY_UNEXTRACTABLE),
    TS_CKR(CKR_MECHANISM_INVALID),
    TS_CKR(CKR_MECHANISM_PARAM_INVALID),
    TS_CKR(CKR_OBJECT_HANDLE_INVALID),
    TS_CKR(CKR_OPERATION_ACTIVE),
    TS_CKR(CKR_OPERATION_NOT_INITIALIZED),
    TS_CKR(CKR_PIN_INCORRECT),
    TS_CKR(CKR_PIN_INVALID),
    TS_CKR(CKR_PIN_LEN_RANGE),
    TS_CKR(CKR_PIN_EXPIRED),
    TS_CKR(CKR_PIN_LOCKED),
    TS_CKR(CKR_SESSION_CLOSED),
    TS_CKR(CKR_SESSION_COUNT),
    TS_CKR(CKR_SESSION_HANDLE_INVALID),
    TS_CKR(CKR_SESSION_PARALLEL_NOT_SUPPORTED),
    TS_CKR(CKR_SESSION_READ_ONLY),
    TS_CKR(CKR_SESSION_EXISTS),
    TS_CKR(CKR_SESSION_READ_ONLY_EXISTS),
    TS_CKR(CKR_SESSION_READ_WRITE_SO_EXISTS),
    TS_CKR(CKR_SIGNATURE_INVALID),
    TS_CKR(CKR_SIGNATURE_LEN_RANGE),
    TS_CKR(CKR_TEMPLATE_INCOMPLETE),
    TS_CKR(CKR_TEMPLATE_INCONSISTENT),
    TS_CKR(CKR_TOKEN_NOT_PRESENT),
    TS_CKR(CKR_TOKEN_NOT_RECOGNIZED),
    TS_CKR(CKR_TOKEN_WRITE_PROTECTED),
    TS_CKR(CKR_UNWRAPPING_KEY_HANDLE_INVALID),
    TS_CKR(CKR_UNWRAPPING_KEY_SIZE_RANGE),
    TS_CKR(CKR_UNWRAPPING_KEY_TYPE_INCONSISTENT),
    TS_CKR(CKR_USER_ALREADY_LOGGED_IN),
    TS_CKR(CKR_USER_NOT_LOGGED_IN),
    TS_CKR(CKR_USER_PIN_NOT_INITIALIZED),
    TS_CKR(CKR_USER_TYPE_INVALID),
    TS_CKR(CKR_USER_ANOTHER_ALREADY_LOGGED_IN),
    TS_CKR(CKR_USER_TOO_MANY_TYPES),
    TS_CKR(CKR_WRAPPED_KEY_INVALID),
    TS_CKR(CKR_WRAPPED_KEY_LEN_RANGE),
    TS_CKR(CKR_WRAPPING_KEY_HANDLE_INVALID),
    TS_CKR(CKR_WRAPPING_KEY_SIZE_RANGE),
    TS_CKR(CKR_WRAPPING_KEY_TYPE_INCONSISTENT),
    TS_CKR(CKR_RANDOM_SEED_NOT_SUPPORTED),
    TS_CKR(CKR_RANDOM_NO_RNG),
    TS_CKR(CKR_DOMAIN_PARAMS_INVALID),
    TS_CKR(CKR_CURVE_NOT_SUPPORTED),
    TS_CKR(CKR_BUFFER_TOO_SMALL),
    TS_CKR(CKR_SAVED_STATE_INVALID),
    TS_CKR(CKR_INFORMATION_SENSITIVE),
    TS_CKR(CKR_STATE_UNSAVEABLE),
    TS_CKR(CKR_CRYPTOKI_NOT_INITIALIZED),
    TS_CKR(CKR_CRYPTOKI_ALREADY_INITIALIZED),
    TS_CKR(CKR_MUTEX_BAD),
    TS_CKR(CKR_MUTEX_NOT_LOCKED),
    TS_CKR(CKR_NEW_PIN_MODE),
    TS_CKR(CKR_NEXT_OTP),
    TS_CKR(CKR_EXCEEDED_MAX_ITERATIONS),
    TS_CKR(CKR_FIPS_SELF_TEST_FAILED),
    TS_CKR(CKR_LIBRARY_LOAD_FAILED),
    TS_CKR(CKR_PIN_TOO_WEAK),
    TS_CKR(CKR_PUBLIC_KEY_INVALID),
    TS_CKR(CKR_FUNCTION_REJECTED),
};
#undef TS_CKR

absl::StatusCode CodeFor(CK_RV rv) {
  switch (rv) {
    case CKR_KEY_HANDLE_INVALID:
    case CKR_OBJECT_HANDLE_INVALID:
    case CKR_SLOT_ID_INVALID:
      return absl::StatusCode::kNotFound;
    case CKR_SESSION_HANDLE_INVALID:
    case CKR_SESSION_CLOSED:
    case CKR_DEVICE_ERROR:
    case CKR_DEVICE_REMOVED:
    case CKR_DEVICE_MEMORY:
    case CKR_TOKEN_NOT_PRESENT:
    case CKR_CRYPTOKI_NOT_INITIALIZED:
    case CKR_SESSION_COUNT:
      return absl::StatusCode::kUnavailable;
    case CKR_PIN_INCORRECT:
    case CKR_PIN_INVALID:
    case CKR_PIN_LEN_RANGE:
    case CKR_PIN_EXPIRED:
    case CKR_PIN_LOCKED:
    case CKR_USER_NOT_LOGGED_IN:
    case CKR_USER_PIN_NOT_INITIALIZED:
    case CKR_KEY_FUNCTION_NOT_PERMITTED:
      return absl::StatusCode::kPermissionDenied;
    case CKR_ARGUMENTS_BAD:
    case CKR_ATTRIBUTE_VALUE_INVALID:
    case CKR_ATTRIBUTE_TYPE_INVALID:
    case CKR_DATA_INVALID:
    case CKR_DATA_LEN_RANGE:
    case CKR_KEY_TYPE_INCONSISTENT:
    case CKR_KEY_SIZE_RANGE:
    case CKR_TEMPLATE_INCOMPLETE:
    case CKR_TEMPLATE_INCONSISTENT:
    case CKR_MECHANISM_PARAM_INVALID:
    case CKR_DOMAIN_PARAMS_INVALID:
      return absl::StatusCode::kInvalidArgument;
    case CKR_MECHANISM_INVALID:
    case CKR_FUNCTION_NOT_SUPPORTED:
    case CKR_CURVE_NOT_SUPPORTED:
      return absl::StatusCode::kUnimplemented;
    default:
      return absl::StatusCode::kInternal;
  }
}

}  // namespace

std::string_view CkrName(CK_RV rv) {
  for (const RvName& entry : kRvNames) {
    if (entry.rv == rv) return entry.name;
  }
  if (rv >= CKR_VENDOR_DEFINED) return "CKR_VENDOR_DEFINED";
  return "CKR_UNKNOWN";
}

void P11ErrorSink::Set(HsmErrorObserver observer) {
  if (!observer) {
    current_.store(nullptr, std::memory_order_release);
    return;
  }
  auto kept = std::make_unique<HsmErrorObserver>(std::move(observer));
  std::lock_guard<std::mutex> lock(mu_);
  current_.store(kept.get(), std::memory_order_release);
  kept_.push_back(std::move(kept));
}

void P11ErrorSink::Notify(std::string_view function, CK_RV rv) const {
  if (rv == CKR_USER_ALREADY_LOGGED_IN) return;
  const HsmErrorObserver* observer = current_.load(std::memory_order_acquire);
  if (observer != nullptr) (*observer)(function, rv);
}

absl::Status CkStatus(std::string_view function, CK_RV rv) {
  if (rv == CKR_OK) return absl::OkStatus();
  absl::Status status(
      CodeFor(rv), absl::StrFormat("%s: %s (0x%x)", function, CkrName(rv), rv));
  status.SetPayload(kRvPayloadUrl, absl::Cord(std::to_string(rv)));
  return status;
}

CK_RV RvOf(const absl::Status& status) {
  if (status.ok()) return CKR_OK;
  auto payload = status.GetPayload(kRvPayloadUrl);
  if (!payload.has_value()) return CKR_GENERAL_ERROR;
  uint64_t rv = 0;
  if (!absl::SimpleAtoi(std::string(*payload), &rv)) return CKR_GENERAL_ERROR;
  return static_cast<CK_RV>(rv);
}

absl::Status WithRvOf(absl::Status status, const absl::Status& from) {
  if (auto payload = from.GetPayload(kRvPayloadUrl); payload.has_value()) {
    status.SetPayload(kRvPayloadUrl, *payload);
  }
  return status;
}

RvClass ClassifyRv(CK_RV rv) {
  switch (rv) {
    case CKR_SESSION_HANDLE_INVALID:
    case CKR_SESSION_CLOSED:
    case CKR_USER_NOT_LOGGED_IN:
    // The session holds a signing operation it will not finish (a C_Sign that
    // failed without ending it, or kept it active for a larger buffer): every
    // later C_SignInit on it fails until it is closed and re-opened.
    case CKR_OPERATION_ACTIVE:
    case CKR_OPERATION_NOT_INITIALIZED:
    case CKR_BUFFER_TOO_SMALL:
      return RvClass::kNewSession;
    case CKR_DEVICE_ERROR:
    case CKR_DEVICE_REMOVED:
    case CKR_TOKEN_NOT_PRESENT:
    case CKR_CRYPTOKI_NOT_INITIALIZED:
      return RvClass::kReinitModule;
    case CKR_KEY_HANDLE_INVALID:
    case CKR_OBJECT_HANDLE_INVALID:
      return RvClass::kStaleHandle;
    default:
      return RvClass::kFatal;
  }
}

bool IsBrokenSessionRv(CK_RV rv) {
  RvClass c = ClassifyRv(rv);
  return c == RvClass::kNewSession || c == RvClass::kReinitModule;
}

bool NeedsModuleReinitRv(CK_RV rv) {
  return ClassifyRv(rv) == RvClass::kReinitModule;
}

}  // namespace tokensign::hsm
