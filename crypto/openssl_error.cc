#include "crypto/openssl_error.h"

#include <openssl/err.h>

#include <string>
#include <utility>

#include "absl/strings/str_cat.h"

namespace tokensign::crypto {
namespace {

thread_local absl::Status provider_status;  // OK = none recorded

}  // namespace

void RecordProviderStatus(const absl::Status& status) {
  provider_status = status;
}

void ClearErrors() {
  ERR_clear_error();
  provider_status = absl::OkStatus();
}

absl::Status OpenSslError(std::string_view what, absl::StatusCode code) {
  if (!provider_status.ok()) {
    absl::Status from_provider = std::move(provider_status);
    provider_status = absl::OkStatus();
    ERR_clear_error();
    return absl::Status(from_provider.code(),
                        absl::StrCat(absl::string_view(what.data(), what.size()),
                                     ": ", from_provider.message()));
  }
  std::string message(what);
  bool first = true;
  unsigned long err;  // NOLINT(runtime/int): OpenSSL's type.
  const char* data = nullptr;
  int flags = 0;
  while ((err = ERR_get_error_all(nullptr, nullptr, nullptr, &data, &flags)) !=
         0) {
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
  if (first) message += ": (no OpenSSL error queued)";
  return absl::Status(code, message);
}

}  // namespace tokensign::crypto
