// KeysetManager against a real SoftHSM token (this program's own, made by
// tokensign_test_main): lifecycle states and refusals, JWKS contents by state,
// the record persisted in the HSM, kid = RFC 7638 thumbprint, every algorithm.
#include "signer/keyset/keyset_manager.h"

#include <gtest/gtest.h>

#include <atomic>
#include <memory>
#include <set>
#include <string>

#include "crypto/algorithm.h"
#include "hsm/hsm.h"
#include "hsm/hsm_impl.h"
#include "hsm/provider/provider_keys.h"
#include "nlohmann/json.hpp"
#include "signer/keyset/keyset_record.h"
#include "signer/token/jwk.h"
#include "tests/service/hsm_test_env.h"
#include "tests/service/keyset_test_fixture.h"
#include "tests/support/softhsm_token.h"

namespace tokensign::keyset {
namespace {

TEST_F(KeysetManagerTest, EmptyKeysetHasNoActiveKeyAndEmptyJwks) {
  EXPECT_EQ(keys_->ActiveKey(issuer_).status().code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(JwksKids().empty());
  EXPECT_EQ(keys_->ActiveKey("not-loaded").status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(keys_->CreateKey("not-loaded", crypto::SignAlgorithm::kES256)
                .status()
                .code(),
            absl::StatusCode::kNotFound);
}

TEST_F(KeysetManagerTest, LifecycleStatesJwksAndRefusals) {
  LifecyclePolicy policy;
  policy.retire_window = 3600;
  keys_->SetPolicies({{issuer_, policy}});
  // Create: pending, published, not used for signing; kid = thumbprint.
  auto a = keys_->CreateKey(issuer_, crypto::SignAlgorithm::kES256);
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_EQ(a->state, KeyState::kPending);
  EXPECT_EQ(a->created_at, kStart);
  auto pub = hsm_->PublicKey(a->id);
  ASSERT_TRUE(pub.ok()) << pub.status();
  auto thumb = token::JwkThumbprint(pub->get());
  ASSERT_TRUE(thumb.ok());
  EXPECT_EQ(a->kid, *thumb);
  EXPECT_EQ(JwksKids(), std::set<std::string>{a->kid});
  EXPECT_EQ(keys_->ActiveKey(issuer_).status().code(),
            absl::StatusCode::kFailedPrecondition);

  // Activate: the signing key.
  now_ = kStart + 10;
  auto act = keys_->ActivateKey(issuer_, a->kid);
  ASSERT_TRUE(act.ok()) << act.status();
  EXPECT_EQ(act->state, KeyState::kActive);
  EXPECT_EQ(act->activated_at, kStart + 10);
  auto active = keys_->ActiveKey(issuer_);
  ASSERT_TRUE(active.ok()) << active.status();
  EXPECT_EQ((*active)->kid, a->kid);
  EXPECT_EQ(keys_->ActivateKey(issuer_, a->kid).status().code(),
            absl::StatusCode::kFailedPrecondition);  // only pending activates
  EXPECT_EQ(keys_->ActivateKey(issuer_, "no-such-kid").status().code(),
            absl::StatusCode::kNotFound);

  // A second key activated retires the first; both stay in the JWKS.
  auto b = keys_->CreateKey(issuer_, crypto::SignAlgorithm::kES256);
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_NE(b->kid, a->kid);
  now_ = kStart + 20;
  ASSERT_TRUE(keys_->ActivateKey(issuer_, b->kid).ok());
  EXPECT_EQ(StateOf(a->kid), KeyState::kRetired);
  EXPECT_EQ(StateOf(b->kid), KeyState::kActive);
  EXPECT_EQ((*keys_->ActiveKey(issuer_))->kid, b->kid);
  EXPECT_EQ(JwksKids(), (std::set<std::string>{a->kid, b->kid}));
  EXPECT_EQ(keys_->RetireKey(issuer_, a->kid).status().code(),
            absl::StatusCode::kFailedPrecondition);  // already retired

  // Destroy refusals: the active key, a retired key inside its live window.
  auto refused = keys_->DestroyKey(issuer_, b->kid, false, "");
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(refused.status().message().find("active"), std::string::npos);
  now_ = kStart + 20 + 3599;
  refused = keys_->DestroyKey(issuer_, a->kid, false, "");
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(refused.status().message().find("live"), std::string::npos);
  EXPECT_TRUE(hsm_->PublicKey(a->id).ok());  // nothing destroyed

  // After the window: destroyed in the HSM, gone from the JWKS, kept in the
  // record.
  now_ = kStart + 20 + 3600;
  auto destroyed = keys_->DestroyKey(issuer_, a->kid, false, "");
  ASSERT_TRUE(destroyed.ok()) << destroyed.status();
  EXPECT_EQ(destroyed->state, KeyState::kDestroyed);
  EXPECT_FALSE(hsm_->PublicKey(a->id).ok());
  EXPECT_EQ(StateOf(a->kid), KeyState::kDestroyed);
  EXPECT_EQ(JwksKids(), std::set<std::string>{b->kid});
  EXPECT_EQ(keys_->DestroyKey(issuer_, a->kid, true, "again").status().code(),
            absl::StatusCode::kFailedPrecondition);  // already destroyed
  EXPECT_EQ(keys_->RetireKey(issuer_, a->kid).status().code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(keys_->ActivateKey(issuer_, a->kid).status().code(),
            absl::StatusCode::kFailedPrecondition);

  // Retire the active key: no signing key left, still published.
  ASSERT_TRUE(keys_->RetireKey(issuer_, b->kid).ok());
  EXPECT_EQ(keys_->ActiveKey(issuer_).status().code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(JwksKids(), std::set<std::string>{b->kid});
}

// A pending key never signed: retired, it leaves the JWKS at once. The
// active key is never destroyed, forced or not (rotate or retire it first).
TEST_F(KeysetManagerTest, PendingKeyRetiresAtOnceAndActiveKeyIsNeverDestroyed) {
  auto p = keys_->CreateKey(issuer_, crypto::SignAlgorithm::kES256);
  ASSERT_TRUE(p.ok()) << p.status();
  auto retired = keys_->RetireKey(issuer_, p->kid);
  ASSERT_TRUE(retired.ok()) << retired.status();
  EXPECT_EQ(retired->state, KeyState::kRetired);
  EXPECT_EQ(retired->retired_at, kStart);
  EXPECT_TRUE(JwksKids().empty());

  auto a = keys_->EnsureActiveKey(issuer_, crypto::SignAlgorithm::kES256);
  ASSERT_TRUE(a.ok()) << a.status();
  auto again = keys_->EnsureActiveKey(issuer_, crypto::SignAlgorithm::kES256);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->kid, a->kid);  // idempotent: no second key
  EXPECT_EQ(keys_->Keyset(issuer_)->keys.size(), 2u);

  auto forced = keys_->DestroyKey(issuer_, a->kid, true, "compromised");
  EXPECT_EQ(forced.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(forced.status().message().find("active"), std::string::npos)
      << forced.status();
  EXPECT_TRUE(keys_->ActiveKey(issuer_).ok());
  EXPECT_EQ(JwksKids(), std::set<std::string>{a->kid});
}

TEST_F(KeysetManagerTest, RotateReturnsNewActiveAndRetiredPrevious) {
  auto first = keys_->RotateKey(issuer_, crypto::SignAlgorithm::kES256);
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_EQ(first->created.state, KeyState::kActive);
  EXPECT_FALSE(first->previous.has_value());
  now_ = kStart + 5;
  auto second = keys_->RotateKey(issuer_, crypto::SignAlgorithm::kES384);
  ASSERT_TRUE(second.ok()) << second.status();
  ASSERT_TRUE(second->previous.has_value());
  EXPECT_EQ(second->previous->kid, first->created.kid);
  EXPECT_EQ(second->previous->state, KeyState::kRetired);
  EXPECT_EQ(second->previous->retired_at, kStart + 5);
  EXPECT_EQ(second->created.alg, crypto::SignAlgorithm::kES384);
  EXPECT_EQ((*keys_->ActiveKey(issuer_))->alg, crypto::SignAlgorithm::kES384);
}

TEST_F(KeysetManagerTest, RecordPersistsInHsmAndReloadSeesSameState) {
  auto a = keys_->RotateKey(issuer_, crypto::SignAlgorithm::kES256);
  ASSERT_TRUE(a.ok()) << a.status();
  auto b = keys_->CreateKey(issuer_, crypto::SignAlgorithm::kEdDSA);
  ASSERT_TRUE(b.ok()) << b.status();
  auto before = keys_->Keyset(issuer_);
  ASSERT_TRUE(before.ok());
  std::string jwks_before = *keys_->Jwks(issuer_);

  // The record is on the token as CKO_DATA keyset/<issuer>.
  auto data = hsm_->GetData(KeysetObjectName(issuer_));
  ASSERT_TRUE(data.ok()) << data.status();
  ASSERT_TRUE(data->has_value());
  auto stored = ParseKeysetRecord(**data);
  ASSERT_TRUE(stored.ok()) << stored.status();
  EXPECT_EQ(SerializeKeysetRecord(*stored), SerializeKeysetRecord(*before));

  // A fresh manager on a freshly opened HSM session sees the same state.
  keys_.reset();
  provider_.reset();
  hsm_.reset();
  tokensign::testing::OpenHsmWithProvider(&hsm_, &provider_);
  keys_ = NewManager();
  ASSERT_TRUE(keys_->Load({issuer_}).ok());
  auto after = keys_->Keyset(issuer_);
  ASSERT_TRUE(after.ok());
  EXPECT_EQ(SerializeKeysetRecord(*after), SerializeKeysetRecord(*before));
  EXPECT_EQ(nlohmann::json::parse(*keys_->Jwks(issuer_)),
            nlohmann::json::parse(jwks_before));
  auto active = keys_->ActiveKey(issuer_);
  ASSERT_TRUE(active.ok()) << active.status();
  EXPECT_EQ((*active)->kid, a->created.kid);
  EXPECT_EQ(StateOf(b->kid), KeyState::kPending);
}

TEST_F(KeysetManagerTest, EveryAlgorithmPublishesMatchingJwk) {
  struct Case {
    crypto::SignAlgorithm alg;
    const char* name;
    const char* kty;
    const char* crv;  // "" for RSA
  };
  const Case cases[] = {
      {crypto::SignAlgorithm::kES256, "ES256", "EC", "P-256"},
      {crypto::SignAlgorithm::kES384, "ES384", "EC", "P-384"},
      {crypto::SignAlgorithm::kEdDSA, "EdDSA", "OKP", "Ed25519"},
      {crypto::SignAlgorithm::kPS256, "PS256", "RSA", ""},
      {crypto::SignAlgorithm::kRS256, "RS256", "RSA", ""},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    auto key = keys_->CreateKey(issuer_, c.alg);
    ASSERT_TRUE(key.ok()) << key.status();
    auto thumb = token::JwkThumbprint(hsm_->PublicKey(key->id)->get());
    ASSERT_TRUE(thumb.ok());
    EXPECT_EQ(key->kid, *thumb);
    auto jwks = nlohmann::json::parse(*keys_->Jwks(issuer_));
    bool found = false;
    for (const auto& jwk : jwks["keys"]) {
      if (jwk["kid"] != key->kid) continue;
      found = true;
      EXPECT_EQ(jwk["alg"], c.name);
      EXPECT_EQ(jwk["kty"], c.kty);
      if (*c.crv != '\0') {
        EXPECT_EQ(jwk["crv"], c.crv);
      }
      EXPECT_FALSE(jwk.contains("d"));  // never private material
      EXPECT_EQ(token::JwkThumbprint(jwk).value_or(""), key->kid);
    }
    EXPECT_TRUE(found);
    auto activated = keys_->ActivateKey(issuer_, key->kid);
    ASSERT_TRUE(activated.ok()) << activated.status();
    EXPECT_EQ((*keys_->ActiveKey(issuer_))->alg, c.alg);
  }
  EXPECT_EQ(JwksKids().size(), 5u);
}

// A crash between writing the new record and removing the old leaves both on
// the token; the newer generation must win whatever order the module lists
// them in, and the next write removes the stale copy.
TEST_F(KeysetManagerTest, StaleRecordLeftByACrashLosesToTheNewerGeneration) {
  auto first = keys_->RotateKey(issuer_, crypto::SignAlgorithm::kES256);
  ASSERT_TRUE(first.ok()) << first.status();
  auto old_record = keys_->Keyset(issuer_);
  ASSERT_TRUE(old_record.ok());
  now_ += 10;
  auto second = keys_->RotateKey(issuer_, crypto::SignAlgorithm::kES256);
  ASSERT_TRUE(second.ok()) << second.status();
  auto current = keys_->Keyset(issuer_);
  ASSERT_TRUE(current.ok());
  EXPECT_GT(current->generation, old_record->generation);
  // The stale copy is created last (the highest handle).
  InjectRecord(*hsm_, issuer_, SerializeKeysetRecord(*old_record));
  ASSERT_EQ(hsm_->GetAllData(KeysetObjectName(issuer_))->size(), 2u);

  keys_ = NewManager();
  ASSERT_TRUE(keys_->Load({issuer_}).ok());
  EXPECT_EQ(SerializeKeysetRecord(*keys_->Keyset(issuer_)),
            SerializeKeysetRecord(*current));
  EXPECT_EQ((*keys_->ActiveKey(issuer_))->kid, second->created.kid);

  ASSERT_TRUE(keys_->CreateKey(issuer_, crypto::SignAlgorithm::kES256).ok());
  EXPECT_EQ(hsm_->GetAllData(KeysetObjectName(issuer_))->size(), 1u);
}

// Two writers that raced leave two records of one generation: every reader
// picks the one with the smaller writer id (never fails to load), and the
// next write removes the other.
TEST_F(KeysetManagerTest, TwoRecordsOfOneGenerationResolveToTheSmallerWriter) {
  ASSERT_TRUE(keys_->CreateKey(issuer_, crypto::SignAlgorithm::kES256).ok());
  KeysetRecord base = *keys_->Keyset(issuer_);
  ASSERT_EQ(base.keys.size(), 1u);
  KeysetRecord small = base, large = base;
  small.generation = large.generation = base.generation + 1;
  small.writer = "0000000000000001";
  large.writer = "fffffffffffffffe";
  small.keys[0].created_at = 1;  // different content, same generation
  // Left by a crash an hour ago (a fresh tie is a race still settling).
  small.written_at = large.written_at = now_ - 3600;
  InjectRecord(*hsm_, issuer_, SerializeKeysetRecord(large));
  InjectRecord(*hsm_, issuer_, SerializeKeysetRecord(small));
  for (int i = 0; i < 2; ++i) {
    keys_ = NewManager();
    ASSERT_TRUE(keys_->Load({issuer_}).ok());
    EXPECT_EQ(keys_->Keyset(issuer_)->writer, small.writer);
    EXPECT_EQ(keys_->Keyset(issuer_)->keys[0].created_at, 1);
  }
  ASSERT_TRUE(keys_->CreateKey(issuer_, crypto::SignAlgorithm::kES256).ok());
  EXPECT_EQ(hsm_->GetAllData(KeysetObjectName(issuer_))->size(), 1u);
}

// A tie written moments ago is a race whose loser has not removed its copy
// yet: a writer must not build on either copy (it could drop the winner's
// change), so it answers ABORTED (retry) until the tie settles.
TEST_F(KeysetManagerTest, FreshTieOfOneGenerationMakesWritersRetry) {
  ASSERT_TRUE(keys_->CreateKey(issuer_, crypto::SignAlgorithm::kES256).ok());
  KeysetRecord base = *keys_->Keyset(issuer_);
  KeysetRecord a = base, b = base;
  a.generation = b.generation = base.generation + 1;
  a.writer = "0000000000000001";
  b.writer = "0000000000000002";
  a.written_at = b.written_at = now_;
  InjectRecord(*hsm_, issuer_, SerializeKeysetRecord(a));
  InjectRecord(*hsm_, issuer_, SerializeKeysetRecord(b));
  ASSERT_TRUE(keys_->Refresh().ok());
  auto created = keys_->CreateKey(issuer_, crypto::SignAlgorithm::kES256);
  EXPECT_EQ(created.status().code(), absl::StatusCode::kAborted)
      << created.status();
  now_ += 120;
  created = keys_->CreateKey(issuer_, crypto::SignAlgorithm::kES256);
  EXPECT_TRUE(created.ok()) << created.status();
}

// Two daemons (replicas) on one token: the one that wrote second with a stale
// copy is told to retry (ABORTED) instead of overwriting, and has reloaded.
TEST_F(KeysetManagerTest, ReplicaWithAStaleCopyIsAbortedAndReloads) {
  ASSERT_TRUE(keys_->RotateKey(issuer_, crypto::SignAlgorithm::kES256).ok());
  std::unique_ptr<KeysetManager> replica = NewManager();
  ASSERT_TRUE(replica->Load({issuer_}).ok());
  auto created = keys_->CreateKey(issuer_, crypto::SignAlgorithm::kEdDSA);
  ASSERT_TRUE(created.ok()) << created.status();

  auto stale = replica->CreateKey(issuer_, crypto::SignAlgorithm::kES384);
  EXPECT_EQ(stale.status().code(), absl::StatusCode::kAborted);
  EXPECT_NE(stale.status().message().find("retry the operation"),
            std::string::npos)
      << stale.status();
  // The replica now sees the other's key, and the retry succeeds on top of it.
  EXPECT_NE(replica->Keyset(issuer_)->FindByKid(created->kid), nullptr);
  auto retried = replica->CreateKey(issuer_, crypto::SignAlgorithm::kES384);
  ASSERT_TRUE(retried.ok()) << retried.status();
  ASSERT_TRUE(keys_->Load({issuer_}).ok());
  KeysetRecord merged = *keys_->Keyset(issuer_);
  EXPECT_NE(merged.FindByKid(created->kid), nullptr);
  EXPECT_NE(merged.FindByKid(retried->kid), nullptr);
}

// Replicas share the HSM: a key another daemon rotated in must sign and be
// published here after a refresh, and an unchanged keyset keeps its state
// (and its prepared signing contexts).
TEST_F(KeysetManagerTest, RefreshPicksUpAnotherReplicasRotation) {
  ASSERT_TRUE(keys_->RotateKey(issuer_, crypto::SignAlgorithm::kES256).ok());
  std::unique_ptr<KeysetManager> replica = NewManager();
  ASSERT_TRUE(replica->Load({issuer_}).ok());
  auto unchanged = replica->Refresh();
  ASSERT_TRUE(unchanged.ok()) << unchanged.status();
  EXPECT_EQ(*unchanged, 0);
  auto before = *replica->ActiveKey(issuer_);

  now_ += 60;
  auto rotated = keys_->RotateKey(issuer_, crypto::SignAlgorithm::kES384);
  ASSERT_TRUE(rotated.ok()) << rotated.status();
  EXPECT_EQ((*replica->ActiveKey(issuer_))->kid, before->kid);  // not yet
  auto changed = replica->Refresh();
  ASSERT_TRUE(changed.ok()) << changed.status();
  EXPECT_EQ(*changed, 1);
  auto after = *replica->ActiveKey(issuer_);
  EXPECT_EQ(after->kid, rotated->created.kid);
  EXPECT_EQ(after->alg, crypto::SignAlgorithm::kES384);
  EXPECT_EQ(nlohmann::json::parse(*replica->Jwks(issuer_)),
            nlohmann::json::parse(*keys_->Jwks(issuer_)));
  auto again = replica->Refresh();
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(*again, 0);
  EXPECT_EQ(*replica->ActiveKey(issuer_), after);  // same state object kept
}

}  // namespace
}  // namespace tokensign::keyset
