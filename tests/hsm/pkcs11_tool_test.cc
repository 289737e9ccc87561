// Outside cross-check: OpenSC's pkcs11-tool --list-objects sees the keys
// tokensign made, with the expected labels, ids, usage and access flags.
// (pkcs11-tool takes the PIN only on argv; acceptable for a throw-away test
// token.)
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "crypto/algorithm.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "hsm/hsm.h"
#include "tests/support/softhsm_token.h"

namespace tokensign::hsm {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

struct ToolObject {
  std::string header;                         // "Private Key Object; EC"
  std::map<std::string, std::string> fields;  // "label" -> "...", "ID" -> hex
};

std::vector<ToolObject> ParseObjects(const std::string& output) {
  std::vector<ToolObject> objects;
  std::istringstream in(output);
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    if (line[0] != ' ') {
      objects.push_back(ToolObject{line, {}});
      continue;
    }
    if (objects.empty()) continue;
    size_t colon = line.find(':');
    if (colon == std::string::npos) continue;
    std::string key = line.substr(0, colon);
    key.erase(0, key.find_first_not_of(' '));
    std::string value = line.substr(colon + 1);
    value.erase(0, value.find_first_not_of(' '));
    objects.back().fields[key] = value;
  }
  return objects;
}

TEST(Pkcs11ToolTest, ListObjectsShowsKeysWithFlags) {
  const auto& token = tokensign::testing::GlobalToken();
  auto hsm = Hsm::Open(token.config());
  ASSERT_TRUE(hsm.ok()) << hsm.status();
  auto ec = (*hsm)->GenerateKey(crypto::KeyType::kEcP256, "tool-ec");
  auto rsa = (*hsm)->GenerateKey(crypto::KeyType::kRsa, "tool-rsa", 2048);
  ASSERT_TRUE(ec.ok() && rsa.ok());
  hsm->reset();  // let the tool see a quiet token

  auto run = tokensign::testing::RunCommand(
      {"pkcs11-tool", "--module", token.module_path(), "--token-label",
       token.label(), "--login", "--pin", token.pin(), "--list-objects"});
  ASSERT_TRUE(run.ok()) << run.status();
  ASSERT_EQ(run->exit_code, 0) << run->output;
  std::vector<ToolObject> objects = ParseObjects(run->output);

  for (const KeyInfo& key : {*ec, *rsa}) {
    SCOPED_TRACE(key.label);
    const ToolObject* priv = nullptr;
    const ToolObject* pub = nullptr;
    for (const ToolObject& obj : objects) {
      auto id = obj.fields.find("ID");
      if (id == obj.fields.end() || id->second != key.id) continue;
      if (obj.header.rfind("Private Key Object", 0) == 0) priv = &obj;
      if (obj.header.rfind("Public Key Object", 0) == 0) pub = &obj;
    }
    ASSERT_NE(priv, nullptr) << run->output;
    ASSERT_NE(pub, nullptr) << run->output;
    EXPECT_THAT(priv->header,
                HasSubstr(key.type == crypto::KeyType::kRsa ? "RSA" : "EC"));
    EXPECT_EQ(priv->fields.at("label"), key.label);
    EXPECT_EQ(pub->fields.at("label"), key.label);
    const std::string& usage = priv->fields.at("Usage");
    EXPECT_THAT(usage, HasSubstr("sign"));
    EXPECT_THAT(usage, Not(HasSubstr("decrypt")));
    EXPECT_THAT(usage, Not(HasSubstr("unwrap")));
    EXPECT_THAT(usage, Not(HasSubstr("derive")));
    const std::string& access = priv->fields.at("Access");
    EXPECT_THAT(access, HasSubstr("always sensitive"));
    EXPECT_THAT(access, HasSubstr("never extractable"));
    EXPECT_THAT(access, Not(HasSubstr(", extractable")));
  }
}

}  // namespace
}  // namespace tokensign::hsm
