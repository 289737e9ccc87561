// The one string_view bridge for Debian 12's abseil, which is built with its
// own absl::string_view (ABSL_USES_STD_STRING_VIEW off): absl::StrCat and
// friends do not accept std::string_view. AbslView converts one explicitly;
// Cat is absl::StrCat that also takes std::string_view; Prefix puts context
// before a Status message. In namespace tokensign so every layer (hsm/,
// signer/, tools/) finds them unqualified. Thread-safety: pure functions.
#ifndef TOKENSIGN_CRYPTO_STR_CAT_H_
#define TOKENSIGN_CRYPTO_STR_CAT_H_

#include <string>
#include <string_view>
#include <type_traits>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace tokensign {

inline absl::string_view AbslView(std::string_view s) {
  return absl::string_view(s.data(), s.size());
}

namespace str_cat_internal {
template <typename T>
decltype(auto) ToAlphaNum(const T& value) {
  if constexpr (std::is_same_v<T, std::string_view>) {
    return AbslView(value);
  } else {
    return (value);
  }
}
}  // namespace str_cat_internal

template <typename... Args>
std::string Cat(const Args&... args) {
  return absl::StrCat(str_cat_internal::ToAlphaNum(args)...);
}

// `st` with "what: " before its message (same code).
inline absl::Status Prefix(const absl::Status& st, std::string_view what) {
  return absl::Status(st.code(), Cat(what, ": ", st.message()));
}

// ASCII lower-casing of a std::string_view.
inline std::string AsciiLower(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

}  // namespace tokensign

#endif  // TOKENSIGN_CRYPTO_STR_CAT_H_
