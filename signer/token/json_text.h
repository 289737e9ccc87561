// Writing JSON text without a DOM, for the hot path (JWS header, claims):
// the strict policy of signer/text/json_string.h, the writer token and audit
// share. Thread-safety: pure functions.
#ifndef TOKENSIGN_SIGNER_TOKEN_JSON_TEXT_H_
#define TOKENSIGN_SIGNER_TOKEN_JSON_TEXT_H_

#include <string>
#include <string_view>

#include "absl/status/status.h"

namespace tokensign::token {

// True when `v` can stand between quotes as is: printable ASCII without '"'
// or '\' (nearly every kid, identity, audience and scope).
bool IsPlainJsonString(std::string_view v);

// Appends `v` as a quoted JSON string, byte-identical to nlohmann's dump():
// plain strings are copied, anything else goes through nlohmann's escaper.
// InvalidArgument when `v` is not UTF-8.
absl::Status AppendJsonString(std::string_view v, std::string* out);

}  // namespace tokensign::token

#endif  // TOKENSIGN_SIGNER_TOKEN_JSON_TEXT_H_
