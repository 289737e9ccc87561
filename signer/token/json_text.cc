#include "signer/token/json_text.h"

#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"

namespace tokensign::token {

bool IsPlainJsonString(std::string_view v) {
  for (char c : v) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u >= 0x7f || c == '"' || c == '\\') return false;
  }
  return true;
}

absl::Status AppendJsonString(std::string_view v, std::string* out) {
  if (IsPlainJsonString(v)) {
    out->push_back('"');
    out->append(v);
    out->push_back('"');
    return absl::OkStatus();
  }
  try {
    out->append(nlohmann::json(std::string(v)).dump());
  } catch (const nlohmann::json::exception& e) {
    return absl::InvalidArgumentError(
        absl::StrCat("claims: cannot serialize a string: ", e.what()));
  }
  return absl::OkStatus();
}

}  // namespace tokensign::token
