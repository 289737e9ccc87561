// The one JSON string writer of the project: JWS headers and claims
// (signer/token/json_text.h) and audit lines (signer/audit/line_writer.h)
// both write strings through it. Output is byte-identical to nlohmann's
// dump() (indent -1, ensure_ascii false); plain printable ASCII is copied
// without nlohmann. Two policies for what is not plain:
//   AppendJsonString        strict: a string that is not UTF-8 is an error
//                           (a token never carries replaced text);
//   AppendLogSafeJsonString for logs: invalid UTF-8 becomes U+FFFD, and C1
//                           controls and the code points text::
//                           UnsafeCharacterClass names are written as \u
//                           escapes (the same JSON value, never raw in a
//                           line).
// Header-only, like unicode.h, so that signer/token and signer/audit share it
// without depending on each other. Thread-safety: pure functions.
#ifndef TOKENSIGN_SIGNER_TEXT_JSON_STRING_H_
#define TOKENSIGN_SIGNER_TEXT_JSON_STRING_H_

#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "nlohmann/json.hpp"
#include "signer/text/unicode.h"

namespace tokensign::text {

// True when `v` can stand between quotes as is: printable ASCII without '"'
// or '\' (nearly every kid, identity, audience and scope).
inline bool IsPlainJsonString(std::string_view v) {
  for (char c : v) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u >= 0x7f || c == '"' || c == '\\') return false;
  }
  return true;
}

namespace json_string_internal {

inline void AppendQuoted(std::string_view v, std::string* out) {
  out->push_back('"');
  out->append(v);
  out->push_back('"');
}

// \uXXXX (lowercase hex, as nlohmann writes control characters).
inline void AppendU16Escape(char32_t unit, std::string* out) {
  static constexpr char kHex[] = "0123456789abcdef";
  const char esc[6] = {'\\',
                       'u',
                       kHex[(unit >> 12) & 15],
                       kHex[(unit >> 8) & 15],
                       kHex[(unit >> 4) & 15],
                       kHex[unit & 15]};
  out->append(esc, sizeof(esc));
}

}  // namespace json_string_internal

// Appends `v` as a quoted JSON string. InvalidArgument (nlohmann's message)
// when `v` is not UTF-8; nothing is appended then.
inline absl::Status AppendJsonString(std::string_view v, std::string* out) {
  if (IsPlainJsonString(v)) {
    json_string_internal::AppendQuoted(v, out);
    return absl::OkStatus();
  }
  try {
    out->append(nlohmann::json(std::string(v)).dump());
  } catch (const nlohmann::json::exception& e) {
    return absl::InvalidArgumentError(e.what());
  }
  return absl::OkStatus();
}

// Appends `v` as a quoted JSON string for a log line (see above); never fails.
inline void AppendLogSafeJsonString(std::string_view v, std::string* out) {
  if (IsPlainJsonString(v)) {
    json_string_internal::AppendQuoted(v, out);
    return;
  }
  const std::string json =
      nlohmann::ordered_json(std::string(v))
          .dump(-1, ' ', false,
                nlohmann::ordered_json::error_handler_t::replace);
  // nlohmann writes every non-ASCII code point raw; C1 controls and what
  // UnsafeCharacterClass names are written as \u escapes instead, so no log
  // line carries a bidi override, a zero-width character or a line separator
  // raw.
  size_t i = 0;
  while (i < json.size()) {
    const size_t at = i;
    const char32_t cp = NextCodePoint(json, &i);  // valid: replaced
    const bool c1 = cp >= 0x80 && cp <= 0x9F;
    if (!c1 && UnsafeCharacterClass(cp) == nullptr) {
      out->append(json, at, i - at);
      continue;
    }
    if (cp <= 0xFFFF) {
      json_string_internal::AppendU16Escape(cp, out);
    } else {  // a UTF-16 surrogate pair, as JSON spells it
      json_string_internal::AppendU16Escape(0xD800 + ((cp - 0x10000) >> 10),
                                            out);
      json_string_internal::AppendU16Escape(0xDC00 + ((cp - 0x10000) & 0x3FF),
                                            out);
    }
  }
}

}  // namespace tokensign::text

#endif  // TOKENSIGN_SIGNER_TEXT_JSON_STRING_H_
