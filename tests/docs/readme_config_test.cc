// The README's configuration example is a config tokensignd accepts, so the documentation
// cannot drift from the parser.
#include <fstream>
#include <sstream>
#include <string>

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
  ASSERT_EQ(config->callers.size(), 2u);
  EXPECT_EQ(config->callers[0].id, "spiffe://example.org/authz-server");
  EXPECT_FALSE(config->server.insecure);
}

}  // namespace
}  // namespace tokensign::service
