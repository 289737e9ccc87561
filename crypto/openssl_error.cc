#include "crypto/openssl_error.h"

#include <openssl/err.h>

#include <cstring>
#include <optional>
#include <string>

#include "crypto/str_cat.h"

namespace tokensign::crypto {
namespace {

// A raised Status is one ERR_LIB_USER error with reason kReasonBase + code and
// data "tokensign: <message>".
constexpr int kReasonBase = 0x7a00;
constexpr int kMaxCode = static_cast<int>(absl::StatusCode::kUnauthenticated);
constexpr char kDataPrefix[] = "tokensign: ";

// The Status raised by RaiseStatusError that `err`/`data` carry, if any.
std::optional<absl::Status> RaisedStatus(unsigned long err,  // NOLINT
                                         const char* data, int flags) {
  const int reason = ERR_GET_REASON(err);
  if (ERR_GET_LIB(err) != ERR_LIB_USER || reason <= kReasonBase ||
      reason > kReasonBase + kMaxCode || (flags & ERR_TXT_STRING) == 0 ||
      data == nullptr ||
      std::strncmp(data, kDataPrefix, sizeof(kDataPrefix) - 1) != 0) {
    return std::nullopt;
  }
  return absl::Status(static_cast<absl::StatusCode>(reason - kReasonBase),
                      data + sizeof(kDataPrefix) - 1);
}

}  // namespace

void RaiseStatusError(const absl::Status& status) {
  const int code = static_cast<int>(status.code());
  ERR_raise_data(ERR_LIB_USER, kReasonBase + (code > 0 ? code : 2),
                 "%s%s", kDataPrefix, std::string(status.message()).c_str());
}

void ClearErrors() { ERR_clear_error(); }

absl::Status OpenSslError(std::string_view what, absl::StatusCode code) {
  std::string message(what);
  std::optional<absl::Status> raised;
  bool first = true;
  unsigned long err;  // NOLINT(runtime/int): OpenSSL's type.
  const char* data = nullptr;
  int flags = 0;
  while ((err = ERR_get_error_all(nullptr, nullptr, nullptr, &data, &flags)) !=
         0) {
    if (!raised.has_value()) raised = RaisedStatus(err, data, flags);
    char buf[256];
    ERR_error_string_n(err, buf, sizeof(buf));
    message += first ? ": " : "; ";
    message += buf;
    if ((flags & ERR_TXT_STRING) != 0 && data != nullptr && *data != '\0') {
      message += " (";
      message += data;
      message += ")";
    }
    first = false;
  }
  if (raised.has_value()) {
    return absl::Status(raised->code(),
                        Cat(what, ": ", raised->message()));
  }
  if (first) message += ": (no OpenSSL error queued)";
  return absl::Status(code, message);
}

}  // namespace tokensign::crypto
