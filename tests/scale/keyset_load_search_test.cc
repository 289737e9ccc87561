// A daemon's keyset load searches the token a fixed number of times, however
// many keys it holds. On SoftHSM an object search is linear in the token's
// objects, so a search per key made the load quadratic (1,000 keys: 506 s);
// Load reads every record in one search and every key in one scan.
//
// Counted, not timed: the token is reached through the fault module
// (tests/fault/fault_module.c) with a 1 ms DELAY rule on C_FindObjectsInit,
// whose stats file counts the delays, i.e. the searches. Test-only; the test
// thread.
#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
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
#include "tests/support/fault_stats.h"
#include "tests/support/softhsm_token.h"

#ifndef TOKENSIGN_FAULT_MODULE
#error "TOKENSIGN_FAULT_MODULE must name the built fault module"
#endif

namespace tokensign::keyset {
namespace {

class KeysetLoadSearchTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto& token = tokensign::testing::GlobalToken();
    const std::string control = token.dir() + "/fault.ctl";
    stats_ = token.dir() + "/fault.stats";
    {
      std::ofstream out(control);
      out << "C_FindObjectsInit DELAY always 1\n";
    }
    setenv("TOKENSIGN_FAULT_CONTROL", control.c_str(), 1);
    setenv("TOKENSIGN_FAULT_TARGET", token.module_path().c_str(), 1);
    setenv("TOKENSIGN_FAULT_STATS", stats_.c_str(), 1);
    hsm_ = Open();
    ASSERT_NE(hsm_, nullptr);
  }

  std::shared_ptr<hsm::Hsm> Open() {
    hsm::HsmConfig config = tokensign::testing::GlobalToken().config();
    config.module_path = TOKENSIGN_FAULT_MODULE;
    auto opened = hsm::Hsm::Open(config);
    EXPECT_TRUE(opened.ok()) << opened.status();
    if (!opened.ok()) return nullptr;
    return std::shared_ptr<hsm::Hsm>(std::move(*opened));
  }

  // Object searches so far (the module's "delayed" count).
  long Searches() { return tokensign::testing::FaultStats(stats_)["delayed"]; }

  // What `keys create` + `keys activate` leave for `issuer` (one active key).
  void Seed(const std::string& issuer) {
    const int64_t now = absl::ToUnixSeconds(absl::Now());
    auto info = hsm_->GenerateKey(crypto::KeyType::kEcP256,
                                  internal::KeyLabel(issuer, now));
    ASSERT_TRUE(info.ok()) << info.status();
    auto pub = crypto::ParseSpki(info->spki_der);
    ASSERT_TRUE(pub.ok()) << pub.status();
    KeyRecord key;
    key.id = info->id;
    key.kid = *token::JwkThumbprint(pub->get());
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
    ASSERT_TRUE(hsm_->AddData(KeysetObjectName(issuer),
                              SerializeKeysetRecord(rec))
                    .ok());
  }

  // Searches made by a fresh daemon's Load of `issuers` (a new Hsm, provider
  // and manager, as tokensignd at start); every issuer must get its key.
  long LoadSearches(const std::vector<std::string>& issuers) {
    std::shared_ptr<hsm::Hsm> hsm = Open();
    if (hsm == nullptr) return -1;
    auto provider = hsm::provider::HsmKeyProvider::Create(hsm);
    EXPECT_TRUE(provider.ok()) << provider.status();
    if (!provider.ok()) return -1;
    KeysetManager keys(hsm, [p = provider->get()](std::string_view id) {
      return p->PrivateKey(id);
    });
    const long before = Searches();
    EXPECT_TRUE(keys.Load(issuers).ok());
    const long searches = Searches() - before;
    for (const std::string& issuer : issuers) {
      auto active = keys.ActiveKey(issuer);
      EXPECT_TRUE(active.ok()) << issuer << ": " << active.status();
    }
    return searches;
  }

  std::string stats_;
  std::shared_ptr<hsm::Hsm> hsm_;
};

TEST_F(KeysetLoadSearchTest, LoadSearchesDoNotGrowWithTheKeys) {
  std::vector<std::string> issuers;
  for (int i = 0; i < 12; ++i) {
    issuers.push_back(absl::StrCat("search-", i));
    ASSERT_NO_FATAL_FAILURE(Seed(issuers.back()));
  }
  const long few = LoadSearches({issuers.begin(), issuers.begin() + 3});
  const long many = LoadSearches(issuers);
  std::printf("[searches] load of 3 keys: %ld, of 12 keys: %ld\n", few, many);
  ASSERT_GT(few, 0) << "the fault module counted no search";
  // Records in one search, private keys in one (public-key objects are
  // searched only for a record written before keys carried their SPKI).
  EXPECT_EQ(many, few);
  EXPECT_LE(many, 2);
}

// The orphan sweep (every 5 minutes in tokensignd, on a signing worker)
// reads the records of the issuers with keys in one search too: a search per
// issuer took minutes of CPU with 1,000 issuers.
TEST_F(KeysetLoadSearchTest, SweepSearchesDoNotGrowWithTheKeys) {
  std::vector<std::string> issuers;
  for (int i = 0; i < 12; ++i) {
    issuers.push_back(absl::StrCat("sweep-", i));
    ASSERT_NO_FATAL_FAILURE(Seed(issuers.back()));
  }
  auto sweep_searches = [&](const std::vector<std::string>& names) -> long {
    auto provider = hsm::provider::HsmKeyProvider::Create(hsm_);
    EXPECT_TRUE(provider.ok()) << provider.status();
    if (!provider.ok()) return -1;
    KeysetManager keys(hsm_, [p = provider->get()](std::string_view id) {
      return p->PrivateKey(id);
    });
    EXPECT_TRUE(keys.Load(names).ok());
    const long before = Searches();
    auto swept = keys.SweepOrphans(absl::ZeroDuration());
    EXPECT_TRUE(swept.ok()) << swept.status();
    // Every key is named by its issuer's record: nothing to sweep.
    EXPECT_EQ(swept.value_or(-1), 0);
    return Searches() - before;
  };
  const long few = sweep_searches({issuers.begin(), issuers.begin() + 3});
  const long many = sweep_searches(issuers);
  std::printf("[searches] sweep of 3 issuers: %ld, of 12: %ld\n", few, many);
  ASSERT_GT(few, 0) << "the fault module counted no search";
  EXPECT_EQ(many, few);
}

}  // namespace
}  // namespace tokensign::keyset
