// The strict policy of the project's one JSON string writer
// (signer/text/json_string.h), with the claims' error message.
#include "signer/token/json_text.h"

#include "absl/strings/str_cat.h"
#include "signer/text/json_string.h"

namespace tokensign::token {

bool IsPlainJsonString(std::string_view v) {
  return text::IsPlainJsonString(v);
}

absl::Status AppendJsonString(std::string_view v, std::string* out) {
  absl::Status s = text::AppendJsonString(v, out);
  if (s.ok()) return s;
  return absl::InvalidArgumentError(
      absl::StrCat("claims: cannot serialize a string: ", s.message()));
}

}  // namespace tokensign::token
