// Reading a string member of untrusted JSON (subject tokens, JWKs, records
// read back from the HSM or a file) without exceptions: nlohmann's
// value(name, default) throws type_error when the member is there with
// another type ({"kid": 7}), and an exception escaping a request handler
// ends the daemon. Header-only, like json_string.h. Thread-safety: pure.
#ifndef TOKENSIGN_SIGNER_TEXT_JSON_MEMBER_H_
#define TOKENSIGN_SIGNER_TEXT_JSON_MEMBER_H_

#include <string>

#include "nlohmann/json.hpp"

namespace tokensign::text {

// True when `j` is an object whose member `name` is there and not a string.
inline bool HasNonStringMember(const nlohmann::json& j, const char* name) {
  if (!j.is_object()) return false;
  auto it = j.find(name);
  return it != j.end() && !it->is_string();
}

// j[name] when `j` is an object whose member `name` is a string; otherwise
// "" (absent, or a number, object, null ... there). Never throws.
inline std::string StringMemberOrEmpty(const nlohmann::json& j,
                                       const char* name) {
  if (!j.is_object()) return "";
  auto it = j.find(name);
  return it != j.end() && it->is_string() ? it->get<std::string>() : "";
}

}  // namespace tokensign::text

#endif  // TOKENSIGN_SIGNER_TEXT_JSON_MEMBER_H_
