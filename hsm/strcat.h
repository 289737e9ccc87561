// Debian 12's abseil is built with its own absl::string_view
// (ABSL_USES_STD_STRING_VIEW off), so absl::StrCat and friends do not accept
// std::string_view. tokensign::hsm::Cat is absl::StrCat that also takes
// std::string_view; AbslView converts one explicitly. Thread-safety: pure
// functions.
#ifndef TOKENSIGN_HSM_STRCAT_H_
#define TOKENSIGN_HSM_STRCAT_H_

#include <string>
#include <string_view>
#include <type_traits>

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace tokensign::hsm {

inline absl::string_view AbslView(std::string_view s) {
  return absl::string_view(s.data(), s.size());
}

namespace internal {
template <typename T>
decltype(auto) ToAlphaNum(const T& value) {
  if constexpr (std::is_same_v<T, std::string_view>) {
    return AbslView(value);
  } else {
    return (value);
  }
}
}  // namespace internal

template <typename... Args>
std::string Cat(const Args&... args) {
  return absl::StrCat(internal::ToAlphaNum(args)...);
}

// ASCII lower-casing of a std::string_view.
inline std::string AsciiLower(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

}  // namespace tokensign::hsm

#endif  // TOKENSIGN_HSM_STRCAT_H_
