// Scale with keys: many issuers, one active key each, in one SoftHSM token.
//
// Checks that a fresh KeysetManager (what a daemon does at start) loads every
// issuer's keyset and that each issuer signs with its own key, and prints the
// figures issue 16 asks for: how long the load takes for N keys, and the
// C_Sign rate of one issuer's key in the N-key token against a key of the
// same type in a second token holding only it, measured in short windows
// alternating between the two (order swapped every round): every round's
// ratio and their median, so a shared machine's load, which moves between
// windows, does not decide the figure (printed, not asserted).
//
// N is TOKENSIGN_SCALE_KEYS (default 64, which CI runs), the rounds
// TOKENSIGN_SCALE_ROUNDS (default 4) of TOKENSIGN_SCALE_WINDOW_MS (default
// 250) each; README "Scale with keys" gives the 1,000-key command.
// Test-only; the test thread.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "hsm/hsm.h"
#include "hsm/provider/provider_keys.h"
#include "signer/keyset/keyset_manager.h"
#include "signer/keyset/keyset_record.h"
#include "tests/scale/scale_seed.h"
#include "tests/service/hsm_test_env.h"

namespace tokensign::keyset {
namespace {

using Clock = std::chrono::steady_clock;

double Seconds(Clock::time_point since) {
  return std::chrono::duration<double>(Clock::now() - since).count();
}

int EnvInt(const char* name, int fallback) {
  const char* env = std::getenv(name);
  int n = env != nullptr ? std::atoi(env) : 0;
  return n > 0 ? n : fallback;
}

double Median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const size_t m = v.size() / 2;
  return v.size() % 2 == 1 ? v[m] : (v[m - 1] + v[m]) / 2;
}

// The label of a second token in the test's SoftHSM directory, made before
// the first Hsm::Open of the process (SoftHSM lists its tokens then).
const std::string& SoloTokenLabel() {
  static const std::string* label = [] {
    auto made = tokensign::testing::GlobalToken().AddToken();
    return new std::string(made.ok() ? *made : "");
  }();
  return *label;
}

class KeysetScaleTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_FALSE(SoloTokenLabel().empty());
    tokensign::testing::OpenHsmWithProvider(&hsm_, &provider_);
    hsm::HsmConfig solo = tokensign::testing::GlobalToken().config();
    solo.token_label = SoloTokenLabel();
    auto opened = hsm::Hsm::Open(solo);
    ASSERT_TRUE(opened.ok()) << opened.status();
    solo_hsm_ = std::shared_ptr<hsm::Hsm>(std::move(*opened));
  }

  std::unique_ptr<KeysetManager> NewManager() {
    return std::make_unique<KeysetManager>(
        hsm_, [p = provider_.get()](std::string_view id) {
          return p->PrivateKey(id);
        });
  }

  // The active key of `issuer` in `keys`, which must also verify (published).
  static std::optional<KeyRecord> ActiveSigningKey(KeysetManager& keys,
                                                   const std::string& issuer) {
    auto rec = keys.Keyset(issuer);
    EXPECT_TRUE(rec.ok()) << issuer << ": " << rec.status();
    if (!rec.ok()) return std::nullopt;
    for (const KeyRecord& k : rec->keys) {
      if (k.state != KeyState::kActive) continue;
      auto verifier = keys.VerificationKeyFor(issuer, k.kid);
      EXPECT_TRUE(verifier.ok()) << verifier.status();
      return k;
    }
    ADD_FAILURE() << issuer << ": no active key";
    return std::nullopt;
  }

  // C_Sign calls per second (through the Hsm facade: cached handle, session
  // pool) with `key` on `hsm`, for `window`.
  static double SignRate(hsm::Hsm& hsm, const KeyRecord& key,
                         std::chrono::milliseconds window) {
    int count = 0;
    const auto start = Clock::now();
    const auto end = start + window;
    while (Clock::now() < end) {
      std::string input = absl::StrCat("header.payload-", count);
      auto sig = hsm.Sign(key.id, key.alg, input);
      EXPECT_TRUE(sig.ok()) << sig.status();
      if (!sig.ok()) return 0;
      ++count;
    }
    return count / Seconds(start);
  }

  // A key + record as a custodian leaves them, written directly (scale_seed.h).
  void Seed(const std::string& issuer) {
    auto seeded = tokensign::testing::SeedIssuerKey(*hsm_, issuer);
    ASSERT_TRUE(seeded.ok()) << issuer << ": " << seeded.status();
  }

  std::shared_ptr<hsm::Hsm> hsm_;
  std::unique_ptr<hsm::provider::HsmKeyProvider> provider_;
  std::shared_ptr<hsm::Hsm> solo_hsm_;  // a second token: one key only
};

TEST_F(KeysetScaleTest, ManyIssuersLoadAndSignWithTheirOwnKeys) {
  const int n = EnvInt("TOKENSIGN_SCALE_KEYS", 64);
  const int rounds = EnvInt("TOKENSIGN_SCALE_ROUNDS", 4);
  const auto window =
      std::chrono::milliseconds(EnvInt("TOKENSIGN_SCALE_WINDOW_MS", 250));
  std::vector<std::string> issuers;
  for (int i = 0; i < n; ++i) issuers.push_back(absl::StrCat("scale-", i));

  auto keys = NewManager();
  ASSERT_TRUE(keys->Load(issuers).ok());
  ASSERT_TRUE(keys->EnsureActiveKey(issuers[0], crypto::SignAlgorithm::kES256).ok());

  auto created = Clock::now();
  for (int i = 1; i < n; ++i) {
    if (i < 8) {  // a few through the manager, as a custodian makes them
      auto made = keys->EnsureActiveKey(issuers[i], crypto::SignAlgorithm::kES256);
      ASSERT_TRUE(made.ok()) << issuers[i] << ": " << made.status();
    } else {
      ASSERT_NO_FATAL_FAILURE(Seed(issuers[i]));
    }
  }
  const double create_s = Seconds(created);

  // A fresh manager reads every record and checks every key, as a daemon
  // starting on this token does.
  auto fresh = NewManager();
  auto loading = Clock::now();
  ASSERT_TRUE(fresh->Load(issuers).ok());
  const double load_s = Seconds(loading);
  auto refreshing = Clock::now();
  auto changed = fresh->Refresh();
  const double refresh_s = Seconds(refreshing);
  ASSERT_TRUE(changed.ok()) << changed.status();
  EXPECT_EQ(*changed, 0);

  for (int i = 0; i < n; ++i) {
    auto active = fresh->ActiveKey(issuers[i]);
    ASSERT_TRUE(active.ok()) << issuers[i] << ": " << active.status();
    auto jwks = fresh->Jwks(issuers[i]);
    ASSERT_TRUE(jwks.ok());
    EXPECT_NE(jwks->find((*active)->kid), std::string::npos) << issuers[i];
    for (int j : {i - 1, i + 1}) {  // no issuer publishes a neighbour's key
      if (j < 0 || j >= n) continue;
      auto other = fresh->ActiveKey(issuers[j]);
      ASSERT_TRUE(other.ok());
      EXPECT_EQ(jwks->find((*other)->kid), std::string::npos) << issuers[i];
    }
  }

  // The same key type in a token that holds only it.
  auto solo_key = tokensign::testing::SeedIssuerKey(*solo_hsm_, "solo");
  ASSERT_TRUE(solo_key.ok()) << solo_key.status();
  const std::optional<KeyRecord> many_key = ActiveSigningKey(*fresh, issuers[0]);
  ASSERT_TRUE(many_key.has_value());

  SignRate(*solo_hsm_, *solo_key, window);  // warm up
  SignRate(*hsm_, *many_key, window);
  std::vector<double> ratios;
  for (int r = 0; r < rounds; ++r) {
    double one = 0, many = 0;
    if (r % 2 == 0) {
      one = SignRate(*solo_hsm_, *solo_key, window);
      many = SignRate(*hsm_, *many_key, window);
    } else {
      many = SignRate(*hsm_, *many_key, window);
      one = SignRate(*solo_hsm_, *solo_key, window);
    }
    ratios.push_back(one > 0 ? many / one : 0.0);
    std::printf("[scale] round %d: sign_1key=%.0f/s sign_%dkeys=%.0f/s "
                "ratio=%.2f\n",
                r + 1, one, n, many, ratios.back());
  }
  std::printf(
      "[scale] keys=%d create_all=%.2fs load=%.3fs refresh=%.3fs "
      "sign_ratio_median=%.2f (%d rounds x 2 x %lld ms)\n",
      n, create_s, load_s, refresh_s, Median(ratios), rounds,
      static_cast<long long>(window.count()));
}

}  // namespace
}  // namespace tokensign::keyset
