// What KeysetManager trusts on the HSM, tried as an attacker would: objects
// planted without the PIN (public look-alikes of records and keys), public-key
// objects deleted or swapped, records whose keys do not check out, a key that
// disappeared, two replicas committing at once, keys no record names.
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include <algorithm>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "crypto/algorithm.h"
#include "crypto/spki.h"
#include "crypto/ssl_ptr.h"
#include "signer/token/jwk.h"
#include "signer/token/jws.h"
#include "tests/service/keyset_test_fixture.h"
#include "tests/support/p11_objects.h"
#include "tests/support/planter.h"

namespace tokensign::keyset {
namespace {

using ::tokensign::testing::GlobalToken;
using ::tokensign::testing::Planter;

std::string RandomBytes(size_t n) {
  std::string out(n, '\0');
  RAND_bytes(reinterpret_cast<unsigned char*>(out.data()), static_cast<int>(n));
  return out;
}

std::string Hex(const std::string& bytes) {
  return absl::BytesToHexString(bytes);
}

crypto::UniquePkey NewP256() {
  return crypto::UniquePkey(EVP_EC_gen("P-256"));
}

class KeysetTrustTest : public KeysetManagerTest {
 protected:
  void SetUp() override {
    KeysetManagerTest::SetUp();
    keys_->SetObserver([this](const KeysetEvent& e) { events_.push_back(e); });
    auto planter = Planter::Open(GlobalToken().module_path(), GlobalToken().label());
    ASSERT_TRUE(planter.ok()) << planter.status();
    planter_ = *std::move(planter);
  }

  int Count(KeysetEvent::Kind kind) {
    return static_cast<int>(std::count_if(
        events_.begin(), events_.end(),
        [kind](const KeysetEvent& e) { return e.kind == kind; }));
  }

  // A record the attacker would like the daemon to adopt: their own key,
  // active, under a higher generation.
  std::string ForgedRecord(const std::string& id_bytes, EVP_PKEY* key) {
    KeysetRecord forged = *keys_->Keyset(issuer_);
    forged.generation += 100;
    forged.writer = "0000000000000000";
    for (KeyRecord& k : forged.keys) {
      if (k.state == KeyState::kActive) k.state = KeyState::kRetired;
    }
    KeyRecord planted;
    planted.id = Hex(id_bytes);
    planted.kid = *token::JwkThumbprint(key);
    planted.spki = *crypto::SpkiDer(key);
    planted.state = KeyState::kActive;
    forged.keys.push_back(planted);
    return SerializeKeysetRecord(forged);
  }

  std::vector<KeysetEvent> events_;
  std::unique_ptr<Planter> planter_;
};

// Issue 11 item 1, as the attacker did it: a public EC key and a public
// keyset record with a higher generation that makes it active.
TEST_F(KeysetTrustTest, KeyAndRecordPlantedWithoutThePinAreNeverUsed) {
  auto rotated = keys_->RotateKey(issuer_, crypto::SignAlgorithm::kES256);
  ASSERT_TRUE(rotated.ok()) << rotated.status();
  const std::string own_kid = rotated->created.kid;
  crypto::UniquePkey evil = NewP256();
  const std::string evil_id = RandomBytes(16);
  ASSERT_TRUE(planter_->PlantEcKey(evil_id, "tokensign:" + issuer_ + ":1",
                                   evil.get()).ok());
  ASSERT_TRUE(planter_->PlantData(KeysetObjectName(issuer_),
                                  ForgedRecord(evil_id, evil.get())).ok());
  const std::string evil_kid = *token::JwkThumbprint(evil.get());

  // The HSM layer never returns the public look-alikes.
  EXPECT_EQ(hsm_->GetAllData(KeysetObjectName(issuer_))->size(), 1u);
  EXPECT_EQ(*hsm_->CountPublicData(KeysetObjectName(issuer_)), 1);
  EXPECT_EQ(hsm_->FindKey(Hex(evil_id)).status().code(),
            absl::StatusCode::kNotFound);

  for (int round = 0; round < 3; ++round) {
    auto refreshed = keys_->Refresh();
    ASSERT_TRUE(refreshed.ok()) << refreshed.status();
    EXPECT_EQ(*refreshed, 0);
    EXPECT_EQ((*keys_->ActiveKey(issuer_))->kid, own_kid);
    EXPECT_FALSE(JwksKids().count(evil_kid));
  }
  // A restart (fresh load) is not fooled either.
  keys_ = NewManager();
  ASSERT_TRUE(keys_->Load({issuer_}).ok());
  EXPECT_EQ((*keys_->ActiveKey(issuer_))->kid, own_kid);
  EXPECT_FALSE(JwksKids().count(evil_kid));
  // Reported once, not on every refresh.
  EXPECT_EQ(Count(KeysetEvent::Kind::kRejected), 1);
  ASSERT_FALSE(events_.empty());
  EXPECT_TRUE(absl::StrContains(events_[0].detail, "without the PIN"))
      << events_[0].detail;
}

// A public look-alike of the active private key (same CKA_ID) neither
// replaces it nor makes it ambiguous.
TEST_F(KeysetTrustTest, PublicLookalikeOfTheActiveKeyIsIgnored) {
  auto rotated = keys_->RotateKey(issuer_, crypto::SignAlgorithm::kES256);
  ASSERT_TRUE(rotated.ok()) << rotated.status();
  const std::string id_bytes = absl::HexStringToBytes(rotated->created.id);
  crypto::UniquePkey evil = NewP256();
  ASSERT_TRUE(planter_->PlantEcKey(id_bytes, "evil", evil.get()).ok());
  keys_ = NewManager();
  ASSERT_TRUE(keys_->Load({issuer_}).ok());
  auto active = keys_->ActiveKey(issuer_);
  ASSERT_TRUE(active.ok()) << active.status();
  auto sig = (*active)->signer->Sign("message");
  ASSERT_TRUE(sig.ok()) << sig.status();
  EXPECT_TRUE((*active)->signer->Verify("message", *sig).ok());
  EXPECT_EQ((*active)->kid, rotated->created.kid);
}

// The active key's JwsSigner signs through the HSM facade and returns the JOSE
// form as it is (ES256: raw r||s of exactly 64 bytes, no DER round trip), which
// an independent one-shot OpenSSL verify accepts over exactly the signed bytes.
TEST_F(KeysetTrustTest, ActiveKeySignsJoseFormThroughTheHsm) {
  auto rotated = keys_->RotateKey(issuer_, crypto::SignAlgorithm::kES256);
  ASSERT_TRUE(rotated.ok()) << rotated.status();
  auto active = keys_->ActiveKey(issuer_);
  ASSERT_TRUE(active.ok()) << active.status();
  ASSERT_NE((*active)->signer, nullptr);
  EXPECT_EQ((*active)->signer->alg(), crypto::SignAlgorithm::kES256);
  const std::string input = "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9";
  auto sig = (*active)->signer->Sign(input);
  ASSERT_TRUE(sig.ok()) << sig.status();
  EXPECT_EQ(sig->size(), 64u);
  EXPECT_TRUE(token::VerifyRaw((*active)->public_key.get(),
                               crypto::SignAlgorithm::kES256, input, *sig)
                  .ok());
  EXPECT_EQ(token::VerifyRaw((*active)->public_key.get(),
                             crypto::SignAlgorithm::kES256, input + "x", *sig)
                .code(),
            absl::StatusCode::kUnauthenticated);
  EXPECT_EQ((*active)->signer->Verify(input + "x", *sig).code(),
            absl::StatusCode::kUnauthenticated);
  EXPECT_EQ((*active)->signer->Verify(input, sig->substr(1)).code(),
            absl::StatusCode::kInvalidArgument);
}

// The public-key objects are public: deleting them must not stop signing or
// publishing (the record keeps the public key), and for a record written
// before it kept one, a swapped public object is caught by the test signature.
TEST_F(KeysetTrustTest, PublicKeyObjectsAreNotTrusted) {
  auto rotated = keys_->RotateKey(issuer_, crypto::SignAlgorithm::kES256);
  ASSERT_TRUE(rotated.ok()) << rotated.status();
  const KeyRecord active = rotated->created;
  ASSERT_FALSE(active.spki.empty());
  const std::string id_bytes = absl::HexStringToBytes(active.id);
  ASSERT_EQ(*planter_->DestroyPublicKeys(id_bytes), 1);

  keys_ = NewManager();
  ASSERT_TRUE(keys_->Load({issuer_}).ok());
  ASSERT_TRUE(keys_->ActiveKey(issuer_).ok()) << keys_->ActiveKey(issuer_).status();
  EXPECT_TRUE(JwksKids().count(active.kid));

  // A record without spki (as written by earlier versions), and the attacker
  // has put their own public key under the key's CKA_ID.
  KeysetRecord legacy = *keys_->Keyset(issuer_);
  legacy.generation += 1;
  for (KeyRecord& k : legacy.keys) k.spki.clear();
  InjectRecord(*hsm_, issuer_, SerializeKeysetRecord(legacy));
  // (Its private half is public too, so it is never a candidate key.)
  crypto::UniquePkey other = NewP256();
  ASSERT_TRUE(planter_->PlantEcKey(id_bytes, "swapped", other.get()).ok());
  // A daemon that has not pinned the key yet (a restart) reads the public
  // object and must catch the swap.
  std::shared_ptr<hsm::Hsm> fresh_hsm;
  std::unique_ptr<hsm::provider::HsmKeyProvider> fresh_provider;
  tokensign::testing::OpenHsmWithProvider(&fresh_hsm, &fresh_provider);
  KeysetManager fresh(
      fresh_hsm,
      [p = fresh_provider.get()](std::string_view id) { return p->PrivateKey(id); },
      [this] { return absl::FromUnixSeconds(now_.load()); });
  ASSERT_TRUE(fresh.Load({issuer_}).ok());
  auto refused = fresh.ActiveKey(issuer_);
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(absl::StrContains(refused.status().message(), "kid does not match"))
      << refused.status();
}

// A record (written with the PIN, e.g. by a buggy tool) whose public key is
// not the key's: not adopted while the last good keyset works, reported once.
TEST_F(KeysetTrustTest, RecordWhoseKeysFailChecksIsNotAdopted) {
  auto rotated = keys_->RotateKey(issuer_, crypto::SignAlgorithm::kES256);
  ASSERT_TRUE(rotated.ok()) << rotated.status();
  KeysetRecord bad = *keys_->Keyset(issuer_);
  bad.generation += 1;
  crypto::UniquePkey other = NewP256();
  for (KeyRecord& k : bad.keys) {
    k.spki = *crypto::SpkiDer(other.get());
    k.kid = *token::JwkThumbprint(other.get());
  }
  InjectRecord(*hsm_, issuer_, SerializeKeysetRecord(bad));
  for (int i = 0; i < 2; ++i) {
    auto refreshed = keys_->Refresh();
    EXPECT_EQ(refreshed.status().code(), absl::StatusCode::kFailedPrecondition);
    EXPECT_EQ((*keys_->ActiveKey(issuer_))->kid, rotated->created.kid);
    EXPECT_FALSE(JwksKids().count(bad.keys[0].kid));
  }
  ASSERT_EQ(Count(KeysetEvent::Kind::kRejected), 1);
  EXPECT_TRUE(absl::StrContains(events_.back().detail, "did not verify"))
      << events_.back().detail;
}

// A key imported with the PIN (not generated in the HSM: not local, not
// always sensitive) is refused when resolved, naming the attribute.
TEST_F(KeysetTrustTest, ImportedKeyIsRefusedNamingTheAttribute) {
  // The Planter's session shares this process's login (hsm_ logged in), so
  // it can import a private key like a PIN holder would.
  hsm::HsmImpl& impl = hsm_->impl();
  CK_FUNCTION_LIST_PTR f = impl.RawFunctionList();
  CK_SESSION_HANDLE session = CK_INVALID_HANDLE;
  ASSERT_EQ(f->C_OpenSession(impl.slot(), CKF_SERIAL_SESSION | CKF_RW_SESSION,
                             nullptr, nullptr, &session),
            CKR_OK);
  const std::string id = RandomBytes(16);
  ASSERT_NE(tokensign::testing::ImportP256PrivateKey(f, session, id),
            CK_INVALID_HANDLE);
  f->C_CloseSession(session);
  auto found = hsm_->FindKey(Hex(id));
  EXPECT_EQ(found.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(absl::StrContains(found.status().message(), "CKA_ALWAYS_SENSITIVE") ||
              absl::StrContains(found.status().message(), "CKA_LOCAL"))
      << found.status();
  EXPECT_EQ(hsm_->Sign(Hex(id), crypto::SignAlgorithm::kES256, "x").status().code(),
            absl::StatusCode::kFailedPrecondition);
}

// A record naming an active key that is gone makes that issuer unable to sign
// with a reason; the daemon still loads and other issuers sign.
TEST_F(KeysetTrustTest, MissingActiveKeyStopsOnlyItsIssuer) {
  const std::string other = issuer_ + "-other";
  ASSERT_TRUE(keys_->Load({issuer_, other}).ok());
  auto mine = keys_->RotateKey(issuer_, crypto::SignAlgorithm::kES256);
  auto theirs = keys_->RotateKey(other, crypto::SignAlgorithm::kES256);
  ASSERT_TRUE(mine.ok() && theirs.ok());
  ASSERT_TRUE(hsm_->DestroyKey(mine->created.id).ok());  // behind its back
  keys_ = NewManager();
  ASSERT_TRUE(keys_->Load({issuer_, other}).ok());
  auto refused = keys_->ActiveKey(issuer_);
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(absl::StrContains(refused.status().message(), "missing from the HSM"))
      << refused.status();
  EXPECT_TRUE(keys_->ActiveKey(other).ok());
}

// Issue 11 item 2: a replica whose copy is stale must not destroy a key the
// other replica has just activated.
TEST_F(KeysetTrustTest, StaleReplicaCannotDestroyAKeyItDoesNotKnowIsActive) {
  ASSERT_TRUE(keys_->RotateKey(issuer_, crypto::SignAlgorithm::kES256).ok());
  auto pending = keys_->CreateKey(issuer_, crypto::SignAlgorithm::kES256);
  ASSERT_TRUE(pending.ok()) << pending.status();
  std::unique_ptr<KeysetManager> stale = NewManager();
  ASSERT_TRUE(stale->Load({issuer_}).ok());  // sees it pending
  ASSERT_TRUE(keys_->ActivateKey(issuer_, pending->kid).ok());
  auto destroyed = stale->DestroyKey(issuer_, pending->kid, /*force=*/false, "");
  EXPECT_EQ(destroyed.status().code(), absl::StatusCode::kAborted)
      << destroyed.status();
  EXPECT_TRUE(hsm_->FindKey(pending->id).ok());  // still in the HSM
  EXPECT_EQ((*keys_->ActiveKey(issuer_))->kid, pending->kid);
  // The stale replica reloaded: now it knows the key is active and refuses.
  auto again = stale->DestroyKey(issuer_, pending->kid, false, "");
  EXPECT_EQ(again.status().code(), absl::StatusCode::kFailedPrecondition);
  // A destroy that wins records first, then removes the key.
  auto retired = keys_->RotateKey(issuer_, crypto::SignAlgorithm::kES256);
  ASSERT_TRUE(retired.ok());
  auto gone = keys_->DestroyKey(issuer_, pending->kid, true, "test");
  ASSERT_TRUE(gone.ok()) << gone.status();
  EXPECT_EQ(hsm_->FindKey(pending->id).status().code(), absl::StatusCode::kNotFound);
}

// Two replicas commit at the same time, many times: a write answered OK is
// never lost, a write answered ABORTED leaves nothing behind (its key is
// destroyed), and exactly one record remains.
TEST_F(KeysetTrustTest, RacingCommitsNeverLoseAnAcknowledgedWrite) {
  std::unique_ptr<KeysetManager> other = NewManager();
  ASSERT_TRUE(other->Load({issuer_}).ok());
  std::vector<std::string> ok_a, ok_b;
  int aborted = 0;
  std::mutex mu;
  auto run = [&](KeysetManager* m, std::vector<std::string>* oks) {
    for (int i = 0; i < 6; ++i) {
      auto created = m->CreateKey(issuer_, crypto::SignAlgorithm::kES256);
      std::lock_guard lock(mu);
      if (created.ok()) {
        oks->push_back(created->id);
      } else {
        // Mostly ABORTED: the other replica's write won. SoftHSM 2.6.1 also
        // fails object creation now and then (CKR_GENERAL_ERROR) while this
        // process's other thread uses the token; a write reported as failed,
        // for whatever reason, must leave nothing behind either.
        ++aborted;
        (void)m->Refresh();
      }
    }
  };
  std::thread a(run, keys_.get(), &ok_a);
  std::thread b(run, other.get(), &ok_b);
  a.join();
  b.join();
  keys_ = NewManager();
  ASSERT_TRUE(keys_->Load({issuer_}).ok());
  KeysetRecord final_record = *keys_->Keyset(issuer_);
  std::set<std::string> recorded;
  for (const KeyRecord& k : final_record.keys) recorded.insert(k.id);
  std::set<std::string> acknowledged(ok_a.begin(), ok_a.end());
  acknowledged.insert(ok_b.begin(), ok_b.end());
  EXPECT_EQ(recorded, acknowledged) << aborted << " aborted";
  // HSM keys of this issuer = the recorded ones (losers destroyed theirs).
  std::set<std::string> in_hsm;
  auto listed = hsm_->ListKeys();
  ASSERT_TRUE(listed.ok()) << listed.status();
  for (const hsm::KeyInfo& k : *listed) {
    if (absl::StartsWith(k.label, "tokensign:" + issuer_ + ":")) in_hsm.insert(k.id);
  }
  for (const std::string& id : acknowledged) EXPECT_TRUE(in_hsm.count(id)) << id;
  // Anything else is named by no record: the orphan sweep removes it.
  ASSERT_TRUE(keys_->SweepOrphans(absl::ZeroDuration()).ok());
  in_hsm.clear();
  listed = hsm_->ListKeys();
  ASSERT_TRUE(listed.ok()) << listed.status();
  for (const hsm::KeyInfo& k : *listed) {
    if (absl::StartsWith(k.label, "tokensign:" + issuer_ + ":")) in_hsm.insert(k.id);
  }
  EXPECT_EQ(in_hsm, acknowledged);
  EXPECT_EQ(hsm_->GetAllData(KeysetObjectName(issuer_))->size(), 1u);
}

// Keys no record names (a crash between generating and recording) are swept
// after the grace period; recorded keys and young orphans are left alone.
TEST_F(KeysetTrustTest, OrphanKeysAreSweptAfterTheGracePeriod) {
  auto rotated = keys_->RotateKey(issuer_, crypto::SignAlgorithm::kES256);
  ASSERT_TRUE(rotated.ok());
  auto old_orphan = hsm_->GenerateKey(crypto::KeyType::kEcP256,
                                      "tokensign:" + issuer_ + ":" +
                                          std::to_string(kStart - 3600), 0);
  auto young_orphan = hsm_->GenerateKey(
      crypto::KeyType::kEcP256, "tokensign:" + issuer_ + ":" + std::to_string(kStart), 0);
  auto foreign = hsm_->GenerateKey(crypto::KeyType::kEcP256,
                                   "tokensign:not-loaded:1", 0);
  ASSERT_TRUE(old_orphan.ok() && young_orphan.ok() && foreign.ok());
  auto swept = keys_->SweepOrphans(absl::Minutes(10));
  ASSERT_TRUE(swept.ok()) << swept.status();
  EXPECT_EQ(*swept, 1);
  EXPECT_EQ(hsm_->FindKey(old_orphan->id).status().code(), absl::StatusCode::kNotFound);
  EXPECT_TRUE(hsm_->FindKey(young_orphan->id).ok());
  EXPECT_TRUE(hsm_->FindKey(foreign->id).ok());
  EXPECT_TRUE(hsm_->FindKey(rotated->created.id).ok());
  EXPECT_EQ(Count(KeysetEvent::Kind::kSwept), 1);
  (void)hsm_->DestroyKey(young_orphan->id);
  (void)hsm_->DestroyKey(foreign->id);
}

}  // namespace
}  // namespace tokensign::keyset
