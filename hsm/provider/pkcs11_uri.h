// RFC 7512 `pkcs11:` URIs naming one key on a token, as the tokensign provider's store
// loader and the operator CLI accept them.
//
// Contract: ParsePkcs11Uri() accepts `pkcs11:` + path attributes separated by ';' +
// optionally '?' + query attributes separated by '&'. Path attributes: token, serial,
// manufacturer, model, object, id, type. Query attributes: pin-source, pin-value,
// module-path. Values are percent-decoded (%XX, two hex digits); `id` is the raw CKA_ID
// bytes and is returned as lowercase hex. The URI must name the key by `object` and/or
// `id`. Errors (kInvalidArgument) name the attribute and the rule: unknown attribute,
// duplicate attribute, bad percent escape, empty value, attribute in the wrong component,
// unsupported type. pin-source is `file:<path>`, `file://<path>`, a bare absolute path,
// or tokensign's extension `env:<VARIABLE>`.
//
// Thread-safety: pure functions on values.
#ifndef TOKENSIGN_HSM_PROVIDER_PKCS11_URI_H_
#define TOKENSIGN_HSM_PROVIDER_PKCS11_URI_H_

#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace tokensign::hsm::provider {

enum class UriObjectType { kAny, kPrivate, kPublic };

struct Pkcs11Uri {
  std::string token;         // CK_TOKEN_INFO label
  std::string serial;        // CK_TOKEN_INFO serialNumber
  std::string manufacturer;  // accepted, informational
  std::string model;         // accepted, informational
  std::string object;        // CKA_LABEL
  std::string id_hex;        // CKA_ID as lowercase hex ("" if absent)
  UriObjectType type = UriObjectType::kAny;
  std::string pin_file;      // from pin-source=file:...
  std::string pin_env;       // from pin-source=env:...
  std::string pin_value;     // from pin-value (discouraged: ends up in argv)
  std::string module_path;   // from module-path (only the configured module: see below)
};

absl::StatusOr<Pkcs11Uri> ParsePkcs11Uri(std::string_view uri);

// A URI comes from a command line or a file someone else may write; letting its
// module-path choose the library to dlopen would run their code in every program using
// the provider. So the module comes only from openssl.cnf or the environment, and a
// URI's module-path must name that same module (the same path, or a path resolving to
// the same file); otherwise kPermissionDenied naming module-path and both paths.
absl::Status CheckUriModulePath(const Pkcs11Uri& uri, std::string_view configured_module);

// Percent-decodes `in`; `what` names the attribute in errors.
absl::StatusOr<std::string> PercentDecode(std::string_view in, std::string_view what);

// Formats a URI for a key (percent-encodes everything outside RFC 3986 unreserved).
std::string FormatPkcs11Uri(std::string_view token, std::string_view object,
                            std::string_view id_hex, UriObjectType type);

}  // namespace tokensign::hsm::provider

#endif  // TOKENSIGN_HSM_PROVIDER_PKCS11_URI_H_
