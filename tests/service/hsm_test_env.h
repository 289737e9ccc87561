// Opens this test program's SoftHSM token (tests/support GlobalToken) as an
// Hsm and puts the tokensign provider on it, as the daemon wires them.
// Test-only. Thread-safety: call from the test thread.
#ifndef TOKENSIGN_TESTS_SERVICE_HSM_TEST_ENV_H_
#define TOKENSIGN_TESTS_SERVICE_HSM_TEST_ENV_H_

#include <gtest/gtest.h>

#include <memory>

#include "hsm/hsm.h"
#include "hsm/provider/provider_keys.h"
#include "tests/support/softhsm_token.h"

namespace tokensign::testing {

// Fills *hsm and *provider; fails the current test if either cannot be made.
inline void OpenHsmWithProvider(
    std::shared_ptr<hsm::Hsm>* hsm,
    std::unique_ptr<hsm::provider::HsmKeyProvider>* provider) {
  auto opened = hsm::Hsm::Open(GlobalToken().config());
  ASSERT_TRUE(opened.ok()) << opened.status();
  *hsm = std::shared_ptr<hsm::Hsm>(std::move(*opened));
  auto made = hsm::provider::HsmKeyProvider::Create(*hsm);
  ASSERT_TRUE(made.ok()) << made.status();
  *provider = std::move(*made);
}

}  // namespace tokensign::testing

#endif  // TOKENSIGN_TESTS_SERVICE_HSM_TEST_ENV_H_
