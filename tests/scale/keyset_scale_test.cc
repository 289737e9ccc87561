// Scale with keys: many issuers, one active key each, in one SoftHSM token.
//
// Checks that a fresh KeysetManager (what a daemon does at start) loads every
// issuer's keyset and that each issuer signs with its own key, and prints the
// figures issue 16 asks for: how long the load takes for N keys, and the
// signing rate of one issuer's key with N keys in the token against the same
// key with 1 key in the token (measured in this run, so a ratio, not a
// wall-clock threshold).
//
// N is TOKENSIGN_SCALE_KEYS (default 64, which CI runs; README "Reliability"
// gives the 1,000-key command). Test-only; the test thread.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "crypto/spki.h"
#include "hsm/hsm.h"
#include "hsm/provider/provider_keys.h"
#include "signer/keyset/keyset_internal.h"
#include "signer/keyset/keyset_manager.h"
#include "signer/keyset/keyset_record.h"
#include "signer/token/jwk.h"
#include "tests/service/hsm_test_env.h"

namespace tokensign::keyset {
namespace {

using Clock = std::chrono::steady_clock;

double Seconds(Clock::time_point since) {
  return std::chrono::duration<double>(Clock::now() - since).count();
}

int KeyCount() {
  const char* env = std::getenv("TOKENSIGN_SCALE_KEYS");
  int n = env != nullptr ? std::atoi(env) : 0;
  return n > 0 ? n : 64;
}

class KeysetScaleTest : public ::testing::Test {
 protected:
  void SetUp() override {
    tokensign::testing::OpenHsmWithProvider(&hsm_, &provider_);
  }

  std::unique_ptr<KeysetManager> NewManager() {
    return std::make_unique<KeysetManager>(
        hsm_, [p = provider_.get()](std::string_view id) {
          return p->PrivateKey(id);
        });
  }

  // C_Sign calls per second (through the Hsm facade: cached handle, session
  // pool) with the active key of `issuer`, which must also verify (published).
  double SignRate(KeysetManager& keys, const std::string& issuer, int count) {
    auto rec = keys.Keyset(issuer);
    EXPECT_TRUE(rec.ok()) << rec.status();
    const KeyRecord* active = nullptr;
    for (const KeyRecord& k : rec->keys)
      if (k.state == KeyState::kActive) active = &k;
    EXPECT_NE(active, nullptr) << issuer;
    if (active == nullptr) return 0;
    auto verifier = keys.VerificationKeyFor(issuer, active->kid);
    EXPECT_TRUE(verifier.ok()) << verifier.status();
    auto start = Clock::now();
    for (int i = 0; i < count; ++i) {
      std::string input = absl::StrCat("header.payload-", i);
      auto sig = hsm_->Sign(active->id, active->alg, input);
      EXPECT_TRUE(sig.ok()) << sig.status();
      if (!sig.ok()) return 0;
    }
    return count / Seconds(start);
  }

  // What a custodian's `keys create` + `keys activate` leave on the token
  // (a key generated in the HSM, a private record naming it active), made
  // directly: CreateKey + ActivateKey read the record back around every
  // write, and those searches grow with the token, so making 1,000 keys
  // that way takes most of an hour on SoftHSM's file store.
  void Seed(const std::string& issuer) {
    const int64_t now = absl::ToUnixSeconds(absl::Now());
    auto info = hsm_->GenerateKey(crypto::KeyType::kEcP256,
                                  internal::KeyLabel(issuer, now));
    ASSERT_TRUE(info.ok()) << info.status();
    auto pub = crypto::ParseSpki(info->spki_der);
    ASSERT_TRUE(pub.ok()) << pub.status();
    auto kid = token::JwkThumbprint(pub->get());
    ASSERT_TRUE(kid.ok()) << kid.status();
    KeyRecord key;
    key.id = info->id;
    key.kid = *kid;
    key.spki = info->spki_der;
    key.alg = crypto::SignAlgorithm::kES256;
    key.state = KeyState::kActive;
    key.created_at = key.activated_at = now;
    KeysetRecord rec;
    rec.issuer = issuer;
    rec.generation = 1;
    rec.writer = RandomWriterId();
    rec.written_at = now;
    rec.keys.push_back(key);
    ASSERT_TRUE(
        hsm_->AddData(KeysetObjectName(issuer), SerializeKeysetRecord(rec)).ok());
  }

  std::shared_ptr<hsm::Hsm> hsm_;
  std::unique_ptr<hsm::provider::HsmKeyProvider> provider_;
};

TEST_F(KeysetScaleTest, ManyIssuersLoadAndSignWithTheirOwnKeys) {
  const int n = KeyCount();
  std::vector<std::string> issuers;
  for (int i = 0; i < n; ++i) issuers.push_back(absl::StrCat("scale-", i));

  auto keys = NewManager();
  ASSERT_TRUE(keys->Load(issuers).ok());
  ASSERT_TRUE(keys->EnsureActiveKey(issuers[0], crypto::SignAlgorithm::kES256).ok());
  constexpr int kSigns = 1500;
  SignRate(*keys, issuers[0], 1000);  // warm up
  const double one_key_rate = SignRate(*keys, issuers[0], kSigns);

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

  const double many_keys_rate = SignRate(*fresh, issuers[0], kSigns);
  std::printf(
      "[scale] keys=%d create_all=%.2fs load=%.3fs refresh=%.3fs "
      "sign_1key=%.0f/s sign_%dkeys=%.0f/s ratio=%.2f\n",
      n, create_s, load_s, refresh_s, one_key_rate, n, many_keys_rate,
      one_key_rate > 0 ? many_keys_rate / one_key_rate : 0.0);
}

}  // namespace
}  // namespace tokensign::keyset
