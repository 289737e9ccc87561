#include "hsm/openssl_util.h"

#include <openssl/err.h>

#include <string>

namespace tokensign::hsm {

absl::Status OpenSslError(std::string_view what, absl::StatusCode code) {
  std::string message(what);
  bool first = true;
  unsigned long err;  // NOLINT(runtime/int): OpenSSL's type.
  while ((err = ERR_get_error()) != 0) {
    char buf[256];
    ERR_error_string_n(err, buf, sizeof(buf));
    message += first ? ": " : "; ";
    message += buf;
    first = false;
  }
  if (first) message += ": (no OpenSSL error queued)";
  return absl::Status(code, message);
}

}  // namespace tokensign::hsm
