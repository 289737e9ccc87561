// The README's configuration example is a config tokensignd accepts, so the documentation
// cannot drift from the parser.
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "signer/service/config.h"

namespace tokensign::service {
namespace {

std::string ReadmeTomlBlock() {
  std::ifstream in(TOKENSIGN_README_PATH);
  std::stringstream text;
  text << in.rdbuf();
  const std::string readme = text.str();
  const std::string open = "```toml\n";
  size_t begin = readme.find(open);
  if (begin == std::string::npos) return "";
  begin += open.size();
  size_t end = readme.find("```", begin);
  return readme.substr(begin, end - begin);
}

TEST(ReadmeConfigTest, ExampleParsesWithTheDocumentedValues) {
  std::string toml = ReadmeTomlBlock();
  ASSERT_FALSE(toml.empty()) << "README.md has no ```toml block";
  auto config = ParseConfig(toml, "README.md");
  ASSERT_TRUE(config.ok()) << config.status();
  ASSERT_EQ(config->issuers.count("corp"), 1u);
  const IssuerConfig& corp = config->issuers.at("corp");
  EXPECT_EQ(corp.policy.iss, "https://corp.example");
  EXPECT_EQ(corp.policy.max_chain_depth, 4);
  ASSERT_EQ(corp.policy.allowed_actors.size(), 1u);
  EXPECT_EQ(corp.policy.allowed_actors[0].sub, "agent-7");
  // Extra claims fail closed: the example lists the one it allows.
  EXPECT_EQ(corp.policy.allowed_extra_claims, std::vector<std::string>{"tenant"});
  EXPECT_FALSE(corp.policy.any_extra_claims);
  ASSERT_EQ(config->callers.size(), 2u);
  EXPECT_EQ(config->callers[0].id, "spiffe://example.org/authz-server");
  EXPECT_FALSE(config->server.insecure);
}

// The comment on the example's extra_claims line says what [] and ["*"] mean; both
// spellings parse as the README says.
TEST(ReadmeConfigTest, ExtraClaimsCommentMatchesTheParser) {
  std::string toml = ReadmeTomlBlock();
  const size_t line = toml.find("extra_claims = [\"tenant\"]");
  ASSERT_NE(line, std::string::npos);
  const std::string comment = toml.substr(line, toml.find('\n', line) - line);
  EXPECT_NE(comment.find("absent/[] = none"), std::string::npos) << comment;
  EXPECT_NE(comment.find("[\"*\"] = any non-reserved"), std::string::npos) << comment;
  for (const char* list : {"[]", "[\"*\"]"}) {
    std::string text = toml;
    text.replace(line, std::string("extra_claims = [\"tenant\"]").size(),
                 std::string("extra_claims = ") + list);
    auto config = ParseConfig(text, "README.md");
    ASSERT_TRUE(config.ok()) << config.status();
    const auto& p = config->issuers.at("corp").policy;
    EXPECT_TRUE(p.allowed_extra_claims.empty()) << list;
    EXPECT_EQ(p.any_extra_claims, std::string(list) == "[\"*\"]") << list;
  }
}

}  // namespace
}  // namespace tokensign::service
