// The one JSON string writer (signer/text/json_string.h) that token and audit
// share: both policies write nlohmann's dump() bytes for valid text, the
// strict one refuses text that is not UTF-8 (appending nothing), the log-safe
// one replaces it with U+FFFD and escapes what must not stand raw in a line.
#include "signer/text/json_string.h"

#include <gtest/gtest.h>

#include <string>

#include "absl/strings/escaping.h"
#include "nlohmann/json.hpp"

namespace tokensign::text {
namespace {

TEST(JsonStringTest, BothPoliciesWriteNlohmannsBytesForValidText) {
  const std::string cases[] = {
      "",           "kid-1",          "say \"hi\"", "back\\slash",
      "tab\tnl\n",  "\x01\x1f\x7f",   "caf\u00E9",  "\U0001F600 emoji",
      "</script>",  "spiffe://a/b c",
  };
  for (const std::string& in : cases) {
    const std::string want = nlohmann::json(in).dump();
    std::string strict, log_safe;
    ASSERT_TRUE(AppendJsonString(in, &strict).ok()) << absl::CEscape(in);
    AppendLogSafeJsonString(in, &log_safe);
    EXPECT_EQ(strict, want) << absl::CEscape(in);
    EXPECT_EQ(log_safe, want) << absl::CEscape(in);
  }
  EXPECT_TRUE(IsPlainJsonString("spiffe://a/b c"));
  EXPECT_TRUE(IsPlainJsonString(""));
  EXPECT_FALSE(IsPlainJsonString("say \"hi\""));
  EXPECT_FALSE(IsPlainJsonString("caf\u00E9"));
  EXPECT_FALSE(IsPlainJsonString("\x7f"));
}

TEST(JsonStringTest, StrictRefusesInvalidUtf8AndAppendsNothing) {
  std::string out = "prefix";
  absl::Status s = AppendJsonString("bad \xff byte", &out);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("UTF-8"), std::string::npos) << s;
  EXPECT_EQ(out, "prefix");
}

TEST(JsonStringTest, LogSafeReplacesInvalidUtf8AndEscapesUnsafeCodePoints) {
  std::string out;
  AppendLogSafeJsonString("bad \xff byte", &out);
  EXPECT_EQ(out, "\"bad \xEF\xBF\xBD byte\"");
  out.clear();
  AppendLogSafeJsonString("alice\u202Eecila", &out);
  EXPECT_EQ(out, R"("alice\u202eecila")");
  // The strict writer leaves such text raw: a token carries what was asked
  // (identities with them are refused earlier, by policy).
  out.clear();
  ASSERT_TRUE(AppendJsonString("alice\u202Eecila", &out).ok());
  EXPECT_EQ(out, "\"alice\u202Eecila\"");
}

}  // namespace
}  // namespace tokensign::text
