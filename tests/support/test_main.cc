// gtest main for tests that need a SoftHSM token: one fresh token per test
// process (SoftHsmToken::Create in a gtest Environment), removed at exit. Reach
// it with tokensign::testing::GlobalToken().
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "gtest/gtest.h"
#include "tests/support/softhsm_token.h"

namespace tokensign::testing {
namespace {

std::unique_ptr<SoftHsmToken>& Slot() {
  static auto* token = new std::unique_ptr<SoftHsmToken>();
  return *token;
}

class SoftHsmEnvironment : public ::testing::Environment {
 public:
  void SetUp() override {
    absl::StatusOr<std::unique_ptr<SoftHsmToken>> token =
        SoftHsmToken::Create();
    if (!token.ok()) {
      std::fprintf(stderr, "SoftHsmToken::Create: %s\n",
                   std::string(token.status().message()).c_str());
      // A second module that is not installed: skipped (CTest
      // SKIP_RETURN_CODE 77), except in CI, where a missing tool fails.
      const char* ci = std::getenv("CI");
      if (absl::IsNotFound(token.status()) &&
          !(ci != nullptr && std::string(ci) == "true")) {
        std::fprintf(stderr, "skipped: the test module is not installed\n");
        std::exit(77);
      }
      std::abort();
    }
    Slot() = std::move(*token);
  }
  void TearDown() override { Slot().reset(); }
};

}  // namespace

SoftHsmToken& GlobalToken() {
  if (Slot() == nullptr) {
    std::fprintf(stderr,
                 "GlobalToken: link tokensign_test_main (no token made)\n");
    std::abort();
  }
  return *Slot();
}

}  // namespace tokensign::testing

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  ::testing::AddGlobalTestEnvironment(
      new tokensign::testing::SoftHsmEnvironment());
  return RUN_ALL_TESTS();
}
