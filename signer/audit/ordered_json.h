// The audit log's nlohmann::ordered_json text for records built as a DOM
// (genesis, repair, checkpoint lines): members keep their insertion order and
// invalid UTF-8 becomes U+FFFD, never an exception while writing the log.
// Shared by audit_format.cc and checkpoint.cc. Thread-safety: pure functions.
#ifndef TOKENSIGN_SIGNER_AUDIT_ORDERED_JSON_H_
#define TOKENSIGN_SIGNER_AUDIT_ORDERED_JSON_H_

#include <string>

#include "nlohmann/json.hpp"

namespace tokensign::audit {

using OJson = nlohmann::ordered_json;

// Compact text (indent -1, ensure_ascii false, invalid UTF-8 replaced).
inline std::string Dump(const OJson& j) {
  return j.dump(-1, ' ', false, OJson::error_handler_t::replace);
}

// The members of an object without the surrounding braces.
inline std::string Members(const OJson& j) {
  std::string s = Dump(j);
  return s.substr(1, s.size() - 2);
}

}  // namespace tokensign::audit

#endif  // TOKENSIGN_SIGNER_AUDIT_ORDERED_JSON_H_
