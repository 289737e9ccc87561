// What a daemon start asks the token, counted through the fault module
// (tests/fault/fault_module.c: a 1 ms DELAY rule on one function, whose stats
// file counts the delays, i.e. the calls) — counted, not timed. On SoftHSM
// an object search stats and locks every object's file and an attribute read
// re-reads its object's, so a 1,000-issuer start spent a third of its CPU in
// calls these tests keep from coming back (issue 16, README "Scale with
// keys"):
//   - the audit key is found through the key-handle cache the keyset scan
//     filled (no search; FindKey twice made four), and is still checked
//     (attributes, kid, a test signature that must verify);
//   - ScanData reads a record in two C_GetAttributeValue calls (six before),
//     and still counts a public look-alike instead of returning it;
//   - a checked key is pinned itself (one SPKI parse per key, not two);
//   - a keyset load whose records carry their keys' SPKI does not search the
//     public-key objects (two searches, not three); one with a record from
//     before the SPKI was recorded still reads them;
//   - at start one ScanData serves the keyset load and the audit key's record
//     (tokensignd: Daemon::Start), so the keys' scan is the only other search.
// Test-only; the test thread.
#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "crypto/spki.h"
#include "hsm/hsm.h"
#include "hsm/provider/provider_keys.h"
#include "nlohmann/json.hpp"
#include "signer/keyset/key_check.h"
#include "signer/keyset/keyset_manager.h"
#include "signer/keyset/keyset_record.h"
#include "signer/service/audit_hsm.h"
#include "signer/token/jwk.h"
#include "tests/scale/scale_seed.h"
#include "tests/support/fault_rules.h"
#include "tests/support/fault_stats.h"
#include "tests/support/planter.h"
#include "tests/support/softhsm_token.h"

#ifndef TOKENSIGN_FAULT_MODULE
#error "TOKENSIGN_FAULT_MODULE must name the built fault module"
#endif

namespace tokensign::service {
namespace {

using ::tokensign::testing::SeedIssuerKey;
using ::tokensign::testing::WriteFaultRules;

class StartCallsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto& token = tokensign::testing::GlobalToken();
    control_ = token.dir() + "/fault.ctl";
    stats_ = token.dir() + "/fault.stats";
    Count("C_FindObjectsInit");
    setenv("TOKENSIGN_FAULT_CONTROL", control_.c_str(), 1);
    setenv("TOKENSIGN_FAULT_TARGET", token.module_path().c_str(), 1);
    setenv("TOKENSIGN_FAULT_STATS", stats_.c_str(), 1);
    hsm_ = Open();
    ASSERT_NE(hsm_, nullptr);
    // One counted call, so that the stats file holds this module instance's
    // count (the module writes it only when a rule fires; a module loaded
    // again by this Open counts from 0 again).
    ASSERT_TRUE(hsm_->CountPublicData("calls-baseline").ok());
  }

  // Counts the calls of `function` from now on (written atomically; the
  // module re-reads the file when it changes).
  void Count(const std::string& function) {
    WriteFaultRules(control_, function + " DELAY always 1\n");
  }

  // Calls of the counted function so far (the module's "delayed" count).
  long Calls() { return tokensign::testing::FaultStats(stats_)["delayed"]; }

  std::shared_ptr<hsm::Hsm> Open() {
    hsm::HsmConfig config = tokensign::testing::GlobalToken().config();
    config.module_path = TOKENSIGN_FAULT_MODULE;
    auto opened = hsm::Hsm::Open(config);
    EXPECT_TRUE(opened.ok()) << opened.status();
    if (!opened.ok()) return nullptr;
    return std::shared_ptr<hsm::Hsm>(std::move(*opened));
  }

  static keyset::PrivateKeyLoader LoaderFor(
      const std::shared_ptr<hsm::provider::HsmKeyProvider>& provider) {
    return [provider](std::string_view id) { return provider->PrivateKey(id); };
  }

  std::shared_ptr<hsm::provider::HsmKeyProvider> ProviderFor(
      std::shared_ptr<hsm::Hsm> hsm) {
    auto provider = hsm::provider::HsmKeyProvider::Create(std::move(hsm));
    EXPECT_TRUE(provider.ok()) << provider.status();
    if (!provider.ok()) return nullptr;
    return std::shared_ptr<hsm::provider::HsmKeyProvider>(std::move(*provider));
  }

  std::string control_;
  std::string stats_;
  std::shared_ptr<hsm::Hsm> hsm_;
};

// What `keys create` + `keys activate` leave for `issuer` (one active key);
// `with_spki` false: a record as written before keys carried their SPKI.
void SeedIssuer(hsm::Hsm& hsm, const std::string& issuer, bool with_spki) {
  absl::StatusOr<keyset::KeyRecord> key = SeedIssuerKey(hsm, issuer, with_spki);
  ASSERT_TRUE(key.ok()) << key.status();
}

// At start the keyset scan has just read and checked every key on the token;
// the audit key is taken from it. Before, LoadAuditKey called FindKey and the
// check FindKey again: two searches each (private, then public objects), ~0.1 s
// of CPU apiece at 3,000 objects. What is left is the search for the record.
TEST_F(StartCallsTest, AuditKeyAfterTheKeyScanSearchesOnlyForItsRecord) {
  const std::string instance = "calls-audit";
  std::string kid;
  {  // First start: the key is generated and recorded.
    auto first = LoadAuditKey(*hsm_, LoaderFor(ProviderFor(hsm_)), instance,
                              crypto::SignAlgorithm::kES256);
    ASSERT_TRUE(first.ok()) << first.status();
    kid = first->current->kid;
  }
  // A restart: a new Hsm and provider, the keyset scan, then the audit key.
  std::shared_ptr<hsm::Hsm> hsm = Open();
  ASSERT_NE(hsm, nullptr);
  auto provider = ProviderFor(hsm);
  ASSERT_NE(provider, nullptr);
  ASSERT_TRUE(hsm->ScanKeys().ok());
  const long before = Calls();
  auto again = LoadAuditKey(*hsm, LoaderFor(provider), instance,
                            crypto::SignAlgorithm::kES256);
  const long searches = Calls() - before;
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(again->current->kid, kid);  // the same key, not a new one
  std::printf("[calls] audit key after the key scan: %ld searches\n", searches);
  EXPECT_EQ(searches, 1) << "only the audit key record's search";
}

// At daemon start the records are read once (ScanData("")) for the keysets
// and the audit key: the keyset load then searches only the private keys, the
// audit key nothing at all.
TEST_F(StartCallsTest, StartReadsRecordsOnceForKeysetsAndAuditKey) {
  const std::string instance = "calls-once";
  std::string kid;
  {
    auto first = LoadAuditKey(*hsm_, LoaderFor(ProviderFor(hsm_)), instance,
                              crypto::SignAlgorithm::kES256);
    ASSERT_TRUE(first.ok()) << first.status();
    kid = first->current->kid;
  }
  ASSERT_NO_FATAL_FAILURE(SeedIssuer(*hsm_, "calls-once-a", true));
  ASSERT_NO_FATAL_FAILURE(SeedIssuer(*hsm_, "calls-once-b", true));
  std::shared_ptr<hsm::Hsm> hsm = Open();
  ASSERT_NE(hsm, nullptr);
  auto provider = ProviderFor(hsm);
  ASSERT_NE(provider, nullptr);
  keyset::KeysetManager keys(hsm, LoaderFor(provider));
  const long before = Calls();
  auto records = hsm->ScanData("");
  ASSERT_TRUE(records.ok()) << records.status();
  const long after_scan = Calls();
  ASSERT_TRUE(keys.Load({"calls-once-a", "calls-once-b"}, &*records).ok());
  const long after_load = Calls();
  auto audit = LoadAuditKey(*hsm, LoaderFor(provider), instance,
                            crypto::SignAlgorithm::kES256, &*records);
  const long after_audit = Calls();
  ASSERT_TRUE(audit.ok()) << audit.status();
  EXPECT_EQ(audit->current->kid, kid);
  EXPECT_TRUE(keys.ActiveKey("calls-once-a").ok());
  EXPECT_TRUE(keys.ActiveKey("calls-once-b").ok());
  std::printf("[calls] start: records %ld, keyset load %ld, audit key %ld "
              "searches\n", after_scan - before, after_load - after_scan,
              after_audit - after_load);
  EXPECT_EQ(after_scan - before, 1);
  EXPECT_EQ(after_load - after_scan, 1);  // the private keys
  EXPECT_EQ(after_audit - after_load, 0);
}

// The audit key taken from the scan is still proven before it signs: a record
// naming a key in the HSM with another key's public half (its kid matching
// that public half) fails the test signature and refuses the start.
TEST_F(StartCallsTest, AuditKeyFromTheScanWhoseSignatureFailsIsRefused) {
  const std::string instance = "calls-mismatch";
  auto held = hsm_->GenerateKey(crypto::KeyType::kEcP256, "calls-held");
  ASSERT_TRUE(held.ok()) << held.status();
  auto other = hsm_->GenerateKey(crypto::KeyType::kEcP256, "calls-other");
  ASSERT_TRUE(other.ok()) << other.status();
  auto other_pub = crypto::ParseSpki(other->spki_der);
  ASSERT_TRUE(other_pub.ok());
  auto other_kid = token::JwkThumbprint(other_pub->get());
  ASSERT_TRUE(other_kid.ok());
  nlohmann::json record = {
      {"version", 1},
      {"keys",
       {{{"id", held->id},
         {"kid", *other_kid},
         {"alg", "ES256"},
         {"spki", absl::WebSafeBase64Escape(other->spki_der)},
         {"created_at", 1}}}}};
  ASSERT_TRUE(
      hsm_->PutData(AuditKeysRecordName(instance), record.dump()).ok());

  std::shared_ptr<hsm::Hsm> hsm = Open();
  ASSERT_NE(hsm, nullptr);
  auto provider = ProviderFor(hsm);
  ASSERT_NE(provider, nullptr);
  auto scan = hsm->ScanKeys();
  ASSERT_TRUE(scan.ok()) << scan.status();
  ASSERT_TRUE(scan->Find(held->id).ok());  // the scan holds the key
  auto refused = LoadAuditKey(*hsm, LoaderFor(provider), instance,
                              crypto::SignAlgorithm::kES256);
  ASSERT_FALSE(refused.ok());
  EXPECT_TRUE(absl::IsFailedPrecondition(refused.status())) << refused.status();
  EXPECT_TRUE(absl::StrContains(refused.status().message(),
                                "does not match the public key"))
      << refused.status();
}

// A recorded audit key that is gone from the HSM (not in the scan, not found
// by a search) is replaced by a new one, as before.
TEST_F(StartCallsTest, AuditKeyGoneFromTheHsmIsReplaced) {
  const std::string instance = "calls-gone";
  auto first = LoadAuditKey(*hsm_, LoaderFor(ProviderFor(hsm_)), instance,
                            crypto::SignAlgorithm::kES256);
  ASSERT_TRUE(first.ok()) << first.status();
  auto record = nlohmann::json::parse(
      hsm_->GetData(AuditKeysRecordName(instance)).value().value());
  const std::string id = record["keys"][0]["id"].get<std::string>();
  ASSERT_TRUE(hsm_->DestroyKey(id).ok());

  std::shared_ptr<hsm::Hsm> hsm = Open();
  ASSERT_NE(hsm, nullptr);
  auto provider = ProviderFor(hsm);
  ASSERT_TRUE(hsm->ScanKeys().ok());
  auto next = LoadAuditKey(*hsm, LoaderFor(provider), instance,
                           crypto::SignAlgorithm::kES256);
  ASSERT_TRUE(next.ok()) << next.status();
  EXPECT_NE(next->current->kid, first->current->kid);
  auto jwks = nlohmann::json::parse(next->jwks_json);
  EXPECT_EQ(jwks["keys"].size(), 2u);  // the old public key stays listed
}

// ScanData (every keyset record of a start in one search) reads each record
// in two C_GetAttributeValue calls: flags and lengths, then label and value.
// It made six (label twice, CKA_PRIVATE, CKA_TOKEN, value twice): 6,000 calls
// for 1,000 issuers, each re-reading the object's file in SoftHSM.
TEST_F(StartCallsTest, ScanDataReadsARecordInTwoAttributeCalls) {
  auto scan_calls = [&](const std::string& prefix, int records) -> long {
    for (int i = 0; i < records; ++i) {
      EXPECT_TRUE(hsm_->AddData(absl::StrCat(prefix, i),
                                absl::StrCat("value of ", prefix, i))
                      .ok());
    }
    Count("C_GetAttributeValue");
    const long before = Calls();
    auto scan = hsm_->ScanData(prefix);
    const long calls = Calls() - before;
    Count("C_FindObjectsInit");
    EXPECT_TRUE(scan.ok()) << scan.status();
    if (!scan.ok()) return -1;
    EXPECT_EQ(scan->values.size(), static_cast<size_t>(records));
    for (int i = 0; i < records; ++i) {
      const std::string name = absl::StrCat(prefix, i);
      EXPECT_EQ(scan->values[name],
                std::vector<std::string>{absl::StrCat("value of ", name)});
    }
    return calls;
  };
  // The scan reads every tokensign data object on the token (whatever else
  // this program stored too): the difference is what 12 more records cost.
  const long few = scan_calls("calls-few:", 4);
  const long many = scan_calls("calls-many:", 12);
  std::printf("[calls] ScanData: %ld attribute calls, then %ld with 12 more "
              "records\n", few, many);
  ASSERT_GT(few, 0) << "the fault module counted no call";
  EXPECT_EQ(many - few, 2 * 12);
}

// A public look-alike (created without the PIN) is counted, never returned,
// and a record with an empty value reads back empty.
TEST_F(StartCallsTest, ScanDataCountsPublicLookalikesAndReadsEmptyValues) {
  auto planter = tokensign::testing::Planter::Open(
      TOKENSIGN_FAULT_MODULE, tokensign::testing::GlobalToken().config().token_label);
  ASSERT_TRUE(planter.ok()) << planter.status();
  ASSERT_TRUE((*planter)->PlantData("calls-look:a", "planted").ok());
  ASSERT_TRUE(hsm_->AddData("calls-look:a", "real").ok());
  ASSERT_TRUE(hsm_->AddData("calls-look:empty", "").ok());
  auto scan = hsm_->ScanData("calls-look:");
  ASSERT_TRUE(scan.ok()) << scan.status();
  EXPECT_EQ(scan->values["calls-look:a"], std::vector<std::string>{"real"});
  EXPECT_EQ(scan->public_counts["calls-look:a"], 1);
  EXPECT_EQ(scan->values["calls-look:empty"], std::vector<std::string>{""});
}

// VerifyRecordedKey pins the key it checked: PublicKey (and so the provider)
// answers that very EVP_PKEY. It used to parse the record's SPKI a second
// time to pin it (an OpenSSL 3 decoder set-up per key, ~9% of a 1,000-key
// start's CPU).
TEST_F(StartCallsTest, CheckedKeyIsPinnedItself) {
  auto info = hsm_->GenerateKey(crypto::KeyType::kEcP256, "calls-pin");
  ASSERT_TRUE(info.ok()) << info.status();
  auto pub = crypto::ParseSpki(info->spki_der);
  ASSERT_TRUE(pub.ok());
  keyset::KeyRecord key;
  key.id = info->id;
  key.kid = token::JwkThumbprint(pub->get()).value();
  key.spki = info->spki_der;
  key.alg = crypto::SignAlgorithm::kES256;
  auto verified =
      keyset::VerifyRecordedKey(*hsm_, LoaderFor(ProviderFor(hsm_)), key);
  ASSERT_TRUE(verified.ok()) << verified.status();
  EXPECT_EQ(verified->spki, info->spki_der);
  auto pinned = hsm_->PublicKey(info->id);
  ASSERT_TRUE(pinned.ok()) << pinned.status();
  EXPECT_EQ(pinned->get(), verified->public_key.get());
}

TEST_F(StartCallsTest, KeysetLoadReadsPublicKeyObjectsOnlyForRecordsWithoutSpki) {
  const std::vector<std::string> issuers = {"calls-a", "calls-b", "calls-c"};
  for (const std::string& issuer : issuers) {
    ASSERT_NO_FATAL_FAILURE(SeedIssuer(*hsm_, issuer, /*with_spki=*/true));
  }
  ASSERT_NO_FATAL_FAILURE(SeedIssuer(*hsm_, "calls-old", /*with_spki=*/false));
  // A fresh daemon's Load (new Hsm, provider, manager); every issuer signs.
  auto load_searches = [&](const std::vector<std::string>& names) -> long {
    std::shared_ptr<hsm::Hsm> hsm = Open();
    if (hsm == nullptr) return -1;
    auto provider = ProviderFor(hsm);
    if (provider == nullptr) return -1;
    keyset::KeysetManager keys(hsm, LoaderFor(provider));
    const long before = Calls();
    EXPECT_TRUE(keys.Load(names).ok());
    const long searches = Calls() - before;
    for (const std::string& issuer : names) {
      auto active = keys.ActiveKey(issuer);
      EXPECT_TRUE(active.ok()) << issuer << ": " << active.status();
    }
    return searches;
  };
  const long with_spki = load_searches(issuers);
  const long with_old = load_searches({"calls-a", "calls-old"});
  std::printf("[calls] keyset load: %ld searches, %ld with a record without "
              "spki\n", with_spki, with_old);
  // Records, private keys; the public keys only for the old record.
  EXPECT_EQ(with_spki, 2);
  EXPECT_EQ(with_old, 3);
}

// After a scan without the public objects, PublicKey of a key nobody pinned
// still answers from the token's public object (it searches for it).
TEST_F(StartCallsTest, PublicKeyAfterAScanWithoutPublicObjectsFindsIt) {
  auto info = hsm_->GenerateKey(crypto::KeyType::kEcP256, "calls-unpinned");
  ASSERT_TRUE(info.ok()) << info.status();
  std::shared_ptr<hsm::Hsm> hsm = Open();
  ASSERT_NE(hsm, nullptr);
  ASSERT_TRUE(hsm->ScanKeys(/*with_public_keys=*/false).ok());
  auto pub = hsm->PublicKey(info->id);
  ASSERT_TRUE(pub.ok()) << pub.status();
  EXPECT_EQ(crypto::SpkiDer(pub->get()).value(), info->spki_der);
}

}  // namespace
}  // namespace tokensign::service
