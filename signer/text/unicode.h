// Code points that have no place in an identifier or, raw, in an audit line:
// format characters (Unicode general category Cf: bidi overrides and
// isolates, zero-width characters, the BOM, tag characters...), the line and
// paragraph separators U+2028 / U+2029, and the 66 noncharacters. They render
// as nothing or reorder the text around them, so "alice\u202Eecila" and
// "alice" look alike in a log, a terminal or a UI.
//
// Header-only so that signer/token (which rejects them in identities) and
// signer/audit (which writes them escaped) share one table without depending
// on each other. Thread-safety: pure functions.
#ifndef TOKENSIGN_SIGNER_TEXT_UNICODE_H_
#define TOKENSIGN_SIGNER_TEXT_UNICODE_H_

#include <cstddef>
#include <string_view>

namespace tokensign::text {

struct CodePointRange {
  char32_t first;
  char32_t last;  // inclusive
};

// General category Cf, Unicode 15.1, sorted. tests/token/unicode_test.cc
// compares it with Python's unicodedata.
inline constexpr CodePointRange kFormatCharacters[] = {
    {0x00AD, 0x00AD},   {0x0600, 0x0605},   {0x061C, 0x061C},
    {0x06DD, 0x06DD},   {0x070F, 0x070F},   {0x0890, 0x0891},
    {0x08E2, 0x08E2},   {0x180E, 0x180E},   {0x200B, 0x200F},
    {0x202A, 0x202E},   {0x2060, 0x2064},   {0x2066, 0x206F},
    {0xFEFF, 0xFEFF},   {0xFFF9, 0xFFFB},   {0x110BD, 0x110BD},
    {0x110CD, 0x110CD}, {0x13430, 0x1343F}, {0x1BCA0, 0x1BCA3},
    {0x1D173, 0x1D17A}, {0xE0001, 0xE0001}, {0xE0020, 0xE007F},
};

constexpr bool IsFormatCharacter(char32_t cp) {
  if (cp < 0xAD) return false;  // the common case: ASCII and Latin-1
  for (const CodePointRange& r : kFormatCharacters) {
    if (cp < r.first) return false;
    if (cp <= r.last) return true;
  }
  return false;
}

// U+FDD0..U+FDEF and the last two code points of every plane.
constexpr bool IsNoncharacter(char32_t cp) {
  return (cp >= 0xFDD0 && cp <= 0xFDEF) ||
         ((cp & 0xFFFE) == 0xFFFE && cp <= 0x10FFFF);
}

constexpr bool IsLineOrParagraphSeparator(char32_t cp) {
  return cp == 0x2028 || cp == 0x2029;
}

// "format character", "line or paragraph separator" or "noncharacter" for a
// code point that identifiers may not contain; nullptr for any other.
constexpr const char* UnsafeCharacterClass(char32_t cp) {
  if (cp < 0xAD) return nullptr;
  if (IsFormatCharacter(cp)) return "format character";
  if (IsLineOrParagraphSeparator(cp)) return "line or paragraph separator";
  if (IsNoncharacter(cp)) return "noncharacter";
  return nullptr;
}

// The code point of the UTF-8 sequence at s[*i]; advances *i past it. For
// input that is not well-formed there, returns U+FFFD and advances one byte.
inline char32_t NextCodePoint(std::string_view s, size_t* i) {
  const auto c = static_cast<unsigned char>(s[*i]);
  size_t n = 0;
  char32_t cp = 0;
  char32_t min = 0;
  if (c < 0x80) {
    ++*i;
    return c;
  } else if ((c & 0xE0) == 0xC0) {
    n = 1, cp = c & 0x1F, min = 0x80;
  } else if ((c & 0xF0) == 0xE0) {
    n = 2, cp = c & 0x0F, min = 0x800;
  } else if ((c & 0xF8) == 0xF0) {
    n = 3, cp = c & 0x07, min = 0x10000;
  } else {
    ++*i;
    return 0xFFFD;
  }
  if (*i + n >= s.size()) {  // truncated sequence
    ++*i;
    return 0xFFFD;
  }
  for (size_t k = 1; k <= n; ++k) {
    const auto cc = static_cast<unsigned char>(s[*i + k]);
    if ((cc & 0xC0) != 0x80) {
      ++*i;
      return 0xFFFD;
    }
    cp = (cp << 6) | (cc & 0x3F);
  }
  if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) {
    ++*i;
    return 0xFFFD;
  }
  *i += n + 1;
  return cp;
}

}  // namespace tokensign::text

#endif  // TOKENSIGN_SIGNER_TEXT_UNICODE_H_
