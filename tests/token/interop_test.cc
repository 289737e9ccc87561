// Interop: tokens of every algorithm and both kinds, and the JWKS, verified by
// PyJWT (Debian python3-jwt) in a subprocess with audience and issuer checks
// on.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "crypto/algorithm.h"
#include "signer/token/jwk.h"
#include "signer/token/minter.h"
#include "tests/token/test_keys.h"

namespace tokensign::token {
namespace {

namespace fs = std::filesystem;
using crypto::SignAlgorithm;

class TempDir {
 public:
  TempDir() {
    std::string tmpl =
        (fs::temp_directory_path() / "tokensign-interop-XXXXXX").string();
    path_ = mkdtemp(tmpl.data()) != nullptr ? tmpl : "";
  }
  ~TempDir() {
    std::error_code ec;
    if (!path_.empty()) fs::remove_all(path_, ec);
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

void WriteFile(const std::string& path, const std::string& text) {
  std::ofstream out(path);
  out << text;
}

int RunVerifier(const std::string& dir) {
  const std::string cmd =
      std::string(TOKENSIGN_PYTHON) + " " + TOKENSIGN_PYJWT_SCRIPT + " " + dir;
  const int rc = std::system(cmd.c_str());
  return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

TEST(Interop, PyJwtVerifiesEveryAlgorithmAndKind) {
  TempDir dir;
  ASSERT_FALSE(dir.path().empty());
  IssuerPolicy policy;
  policy.iss = "https://issuer.example";
  policy.allowed_audiences = {"https://api.example", "https://tools.example"};
  policy.allowed_scopes = {"read", "write"};
  policy.any_actor = true;

  std::vector<testing::TestSigningKey> keys;
  std::vector<JwksEntry> entries;
  nlohmann::json cases = nlohmann::json::array();
  for (SignAlgorithm alg :
       {SignAlgorithm::kES256, SignAlgorithm::kES384, SignAlgorithm::kEdDSA,
        SignAlgorithm::kPS256, SignAlgorithm::kRS256}) {
    keys.push_back(testing::MakeSigningKey(alg));
    const SigningKey& key = keys.back();
    entries.push_back({key.public_key.get(), alg, key.kid});
    for (TokenKind kind :
         {TokenKind::kAccessToken, TokenKind::kTransactionToken}) {
      TokenRequest r;
      r.kind = kind;
      r.subject = "alice";
      r.client_id = "app";
      r.audience = {"https://api.example"};
      if (kind == TokenKind::kAccessToken)
        r.audience.push_back("https://tools.example");
      r.scope = {"read"};
      r.actor_chain = {{"agent-7", ""}, {"planner", "https://agents.example"}};
      if (kind == TokenKind::kTransactionToken) {
        r.txn = "txn-1";
        r.req_wl = "apigateway.example";
        r.rctx = {{"req_ip", "198.51.100.7"}};
      }
      absl::StatusOr<MintedToken> t = Mint(policy, key, r, absl::Now());
      ASSERT_TRUE(t.ok()) << t.status();
      cases.push_back({{"token", t->token},
                       {"alg", std::string(crypto::SignAlgorithmName(alg))},
                       {"kid", key.kid},
                       {"typ", TokenKindTyp(kind)},
                       {"iss", policy.iss},
                       {"aud", "https://api.example"},
                       {"sub", "alice"},
                       {"client_id", "app"},
                       {"kind", TokenKindName(kind)},
                       {"actors", {"agent-7", "planner"}}});
    }
  }
  absl::StatusOr<nlohmann::json> jwks = BuildJwks(entries);
  ASSERT_TRUE(jwks.ok()) << jwks.status();
  WriteFile(dir.path() + "/jwks.json", jwks->dump());
  WriteFile(dir.path() + "/tokens.json", cases.dump());
  EXPECT_EQ(RunVerifier(dir.path()), 0);

  // The verifier can fail: one flipped signature character must make it exit 1.
  std::string bad = cases[0]["token"];
  bad[bad.size() - 3] = bad[bad.size() - 3] == 'A' ? 'B' : 'A';
  cases[0]["token"] = bad;
  WriteFile(dir.path() + "/tokens.json", cases.dump());
  EXPECT_EQ(RunVerifier(dir.path()), 1);
}

}  // namespace
}  // namespace tokensign::token
