#include "signer/token/policy_fields.h"

#include <algorithm>
#include <cstdint>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "signer/text/unicode.h"
#include "signer/token/policy.h"

namespace tokensign::token::policy_fields {

// A value as it appears in messages: quoted, cut at 64 bytes.
std::string Quote(absl::string_view v) {
  if (v.size() <= 64) return absl::StrCat("\"", v, "\"");
  return absl::StrCat("\"", v.substr(0, 64), "...\" (", v.size(), " bytes)");
}

bool ValidUtf8(absl::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    size_t n = 0;
    uint32_t cp = 0;
    if (c < 0x80) {
      ++i;
      continue;
    } else if ((c & 0xE0) == 0xC0) {
      n = 1;
      cp = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
      n = 2;
      cp = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
      n = 3;
      cp = c & 0x07;
    } else {
      return false;
    }
    for (size_t k = 1; k <= n; ++k) {
      if (i + k >= s.size()) return false;
      const auto cc = static_cast<unsigned char>(s[i + k]);
      if ((cc & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (cc & 0x3F);
    }
    if ((n == 1 && cp < 0x80) || (n == 2 && cp < 0x800) ||
        (n == 3 && cp < 0x10000) || cp > 0x10FFFF ||
        (cp >= 0xD800 && cp <= 0xDFFF)) {
      return false;
    }
    i += n + 1;
  }
  return true;
}

// Non-empty (when required), bounded, valid UTF-8, no control, format,
// separator or noncharacter code points.
absl::Status CheckString(absl::string_view field, absl::string_view v,
                         bool required, absl::string_view what) {
  if (v.empty()) {
    if (!required) return absl::OkStatus();
    return absl::InvalidArgumentError(
        absl::StrCat(field, ": empty; ", what, " is required"));
  }
  if (v.size() > kMaxStringBytes) {
    return absl::InvalidArgumentError(absl::StrCat(
        field, ": ", v.size(), " bytes exceeds max ", kMaxStringBytes));
  }
  if (!ValidUtf8(v)) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, ": not valid UTF-8; use UTF-8 text"));
  }
  // C0 (NUL truncates in C consumers), DEL, and C1 (U+0080..U+009F): none
  // belongs in an identifier and all confuse logs. Format characters (Cf:
  // bidi overrides, zero-width characters), U+2028 / U+2029 and
  // noncharacters render as nothing or reorder what surrounds them, so two
  // different identities would look alike to whoever reads them.
  const std::string_view chars(v.data(), v.size());
  for (size_t i = 0; i < chars.size();) {
    const size_t at = i;
    const char32_t cp = text::NextCodePoint(chars, &i);  // UTF-8: checked
    if (cp < 0x20 || (cp >= 0x7F && cp <= 0x9F)) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "%s: contains control character U+%04X at byte %d; control "
          "characters (U+0000..U+001F, U+007F..U+009F) are not allowed",
          field, static_cast<uint32_t>(cp), at));
    }
    if (const char* what = text::UnsafeCharacterClass(cp); what != nullptr) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "%s: U+%04X (%s) not allowed (at byte %d); identifiers may not "
          "contain format characters (Unicode Cf), line or paragraph "
          "separators (U+2028, U+2029) or noncharacters (U+FDD0..U+FDEF, "
          "U+nFFFE, U+nFFFF)",
          field, static_cast<uint32_t>(cp), what, at));
    }
  }
  return absl::OkStatus();
}

// A name as it appears in a field: printable ASCII except the quote and the
// backslash as is, every other byte as \xNN; cut at 64 bytes.
std::string Escaped(absl::string_view v) {
  std::string out;
  for (size_t i = 0; i < v.size() && i < 64; ++i) {
    const auto c = static_cast<unsigned char>(v[i]);
    if (c < 0x20 || c > 0x7E || c == '"' || c == '\\') {
      absl::StrAppend(&out, absl::StrFormat("\\x%02x", c));
    } else {
      out.push_back(static_cast<char>(c));
    }
  }
  if (v.size() > 64) absl::StrAppend(&out, "...");
  return out;
}

bool Contains(const std::vector<std::string>& list, absl::string_view v) {
  return std::find(list.begin(), list.end(), v) != list.end();
}

std::string AllowedList(const std::vector<std::string>& list) {
  if (list.empty()) return "none configured";
  return absl::StrJoin(list, ", ");
}

// RFC 6749 scope-token: 1*( %x21 / %x23-5B / %x5D-7E ).
absl::Status CheckScopeToken(const std::string& field, absl::string_view s) {
  if (s.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, ": empty; a scope is one non-empty word"));
  }
  if (s.size() > kMaxScopeBytes) {
    return absl::InvalidArgumentError(absl::StrCat(
        field, ": ", s.size(), " bytes exceeds max ", kMaxScopeBytes));
  }
  for (char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    if (c == ' ' || c == '\t' || c == '\n' || c == '\r') {
      return absl::InvalidArgumentError(absl::StrCat(
          field, ": ", Quote(s),
          " contains whitespace; give each scope as its own item"));
    }
    if (c < 0x21 || c > 0x7E || c == '"' || c == '\\') {
      return absl::InvalidArgumentError(
          absl::StrFormat("%s: contains character 0x%02x; a scope token is "
                          "printable ASCII without \" or \\",
                          field, c));
    }
  }
  return absl::OkStatus();
}

// Serialized size of a JSON value, or an error naming `field` (e.g. invalid
// UTF-8).
absl::StatusOr<size_t> JsonSize(absl::string_view field,
                                const nlohmann::json& v) {
  try {
    return v.dump().size();
  } catch (const nlohmann::json::exception&) {
    return absl::InvalidArgumentError(absl::StrCat(
        field, ": cannot be serialized (invalid UTF-8?); use UTF-8 JSON"));
  }
}

absl::Status CheckContext(absl::string_view field, const nlohmann::json& v,
                          TokenKind kind) {
  if (v.is_null()) return absl::OkStatus();
  if (kind != TokenKind::kTransactionToken) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, ": only allowed in transaction tokens; this is an ",
                     TokenKindName(kind)));
  }
  if (!v.is_object()) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, ": must be a JSON object; got ", v.type_name()));
  }
  absl::StatusOr<size_t> size = JsonSize(field, v);
  if (!size.ok()) return size.status();
  if (*size > kMaxContextBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, ": ", *size, " bytes serialized exceeds max ",
                     kMaxContextBytes));
  }
  return absl::OkStatus();
}

}  // namespace tokensign::token::policy_fields
