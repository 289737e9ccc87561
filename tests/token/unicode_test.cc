// The code points identities may not contain (signer/text/unicode.h): the Cf
// table is sorted and matches Python's unicodedata (the Unicode version Python
// knows; code points Cf only in a later version must be unassigned there), and
// the separators, noncharacters and the UTF-8 decoder behave at their edges.
#include "signer/text/unicode.h"

#include <gtest/gtest.h>

#include <stdlib.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <sstream>
#include <string>

namespace tokensign::text {
namespace {

std::string U(char32_t cp) {
  char buf[16];
  snprintf(buf, sizeof(buf), "U+%04X", static_cast<unsigned>(cp));
  return buf;
}

TEST(FormatCharacters, TableIsSortedAndDisjoint) {
  char32_t prev_last = 0;
  bool first = true;
  for (const CodePointRange& r : kFormatCharacters) {
    EXPECT_LE(r.first, r.last);
    if (!first) {
      EXPECT_GT(r.first, prev_last + 1) << U(r.first);
    }
    prev_last = r.last;
    first = false;
  }
}

TEST(FormatCharacters, EdgesOfEveryRange) {
  for (const CodePointRange& r : kFormatCharacters) {
    EXPECT_TRUE(IsFormatCharacter(r.first)) << U(r.first);
    EXPECT_TRUE(IsFormatCharacter(r.last)) << U(r.last);
    EXPECT_FALSE(IsFormatCharacter(r.first - 1)) << U(r.first - 1);
    EXPECT_FALSE(IsFormatCharacter(r.last + 1)) << U(r.last + 1);
  }
  // The ones the security review used.
  EXPECT_STREQ(UnsafeCharacterClass(0x202E), "format character");
  EXPECT_STREQ(UnsafeCharacterClass(0x200B), "format character");
  EXPECT_STREQ(UnsafeCharacterClass(0x2028), "line or paragraph separator");
  EXPECT_STREQ(UnsafeCharacterClass(0x2029), "line or paragraph separator");
  EXPECT_STREQ(UnsafeCharacterClass(0xFFFF), "noncharacter");
  for (char32_t cp : {U'a', U'\u00A0', U'\u00E9', U'\uFFFD', U'\U0001F600',
                      U'\u0301', U'\u3042'}) {
    EXPECT_EQ(UnsafeCharacterClass(cp), nullptr) << U(cp);
  }
}

TEST(Noncharacters, AllSixtySix) {
  int n = 0;
  for (char32_t cp = 0; cp <= 0x10FFFF; ++cp) n += IsNoncharacter(cp) ? 1 : 0;
  EXPECT_EQ(n, 66);
  EXPECT_TRUE(IsNoncharacter(0xFDD0));
  EXPECT_TRUE(IsNoncharacter(0xFDEF));
  EXPECT_FALSE(IsNoncharacter(0xFDCF));
  EXPECT_FALSE(IsNoncharacter(0xFDF0));
  EXPECT_TRUE(IsNoncharacter(0x1FFFE));
  EXPECT_TRUE(IsNoncharacter(0x10FFFF));
  EXPECT_FALSE(IsNoncharacter(0x10FFFD));
}

TEST(NextCodePoint, DecodesAndRejectsMalformed) {
  size_t i = 0;
  auto next = [&i](std::string_view t) {
    return static_cast<uint32_t>(NextCodePoint(t, &i));
  };
  const std::string s = "a\xc3\xa9\xe2\x80\xae\xf0\x9f\x98\x80";
  EXPECT_EQ(next(s), 0x61u);
  EXPECT_EQ(next(s), 0xE9u);
  EXPECT_EQ(next(s), 0x202Eu);
  EXPECT_EQ(next(s), 0x1F600u);
  EXPECT_EQ(i, s.size());
  // Overlong, surrogate, truncated, invalid lead byte, above U+10FFFF.
  for (const std::string bad :
       {"\xc0\xaf", "\xed\xa0\x80", "\xe2\x80", "\xff", "\xf4\x90\x80\x80"}) {
    i = 0;
    EXPECT_EQ(next(bad), 0xFFFDu);
    EXPECT_EQ(i, 1u);
  }
}

#ifdef TOKENSIGN_PYTHON
// Cf ranges and the Unicode version of Python's unicodedata; also the code
// points of our table that Python does not call Cf, with their category.
TEST(FormatCharacters, MatchPythonUnicodedata) {
  std::ostringstream ours;
  for (const CodePointRange& r : kFormatCharacters) {
    ours << static_cast<unsigned long>(r.first) << "-"
         << static_cast<unsigned long>(r.last) << " ";
  }
  const std::string script =
      "import sys, unicodedata as u\n"
      "ours = set()\n"
      "for r in sys.argv[1].split():\n"
      "  a, b = map(int, r.split('-'))\n"
      "  ours.update(range(a, b + 1))\n"
      "print(u.unidata_version)\n"
      "for c in range(0x110000):\n"
      "  cat = u.category(chr(c))\n"
      "  if (cat == 'Cf') != (c in ours):\n"
      "    print('%X %s' % (c, cat))\n";
  // Pass the script through a file: no shell quoting of its contents.
  char path[] = "/tmp/tokensign_unicode_XXXXXX";
  int fd = mkstemp(path);
  ASSERT_GE(fd, 0);
  FILE* f = fdopen(fd, "w");
  fputs(script.c_str(), f);
  fclose(f);
  const std::string run = std::string(TOKENSIGN_PYTHON) + " " + path + " '" +
                          ours.str() + "' 2>&1";
  FILE* p = popen(run.c_str(), "r");
  ASSERT_NE(p, nullptr);
  std::string out;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof(buf), p)) > 0) out.append(buf, n);
  const int rc = pclose(p);
  unlink(path);
  ASSERT_EQ(rc, 0) << out;
  std::istringstream lines(out);
  std::string version;
  std::getline(lines, version);
  int major = 0, minor = 0;
  ASSERT_EQ(sscanf(version.c_str(), "%d.%d", &major, &minor), 2) << out;
  if (major > 15 || (major == 15 && minor > 1)) {
    GTEST_SKIP() << "Python knows Unicode " << version
                 << ", newer than the table's 15.1: re-check the Cf table";
  }
  std::string line;
  while (std::getline(lines, line)) {
    // Only code points that became Cf after Python's version may differ, and
    // Python must then call them unassigned.
    EXPECT_NE(line.find(" Cn"), std::string::npos)
        << "Unicode " << version << " disagrees with the table at U+" << line;
  }
}
#endif

}  // namespace
}  // namespace tokensign::text
