// KeysetManager driving the lifecycle on a real SoftHSM token: a planned
// rotation activates by itself after the publish lead (Tick), an emergency
// rotation withdraws the old key at once, a scheduled rotation happens once
// even when two replicas tick at the same moment, retired keys leave the JWKS.
#include <string>

#include "absl/strings/match.h"
#include "crypto/algorithm.h"
#include "tests/service/keyset_test_fixture.h"

namespace tokensign::keyset {
namespace {

class KeysetRotationTest : public KeysetManagerTest {
 protected:
  void SetUp() override {
    KeysetManagerTest::SetUp();
    policy_.publish_lead = 100;
    policy_.retire_window = 1000;
    policy_.max_published_keys = 4;
    keys_->SetPolicies({{issuer_, policy_}});
    auto first = keys_->RotateKey(issuer_, crypto::SignAlgorithm::kES256);
    ASSERT_TRUE(first.ok()) << first.status();
    ASSERT_EQ(first->created.state, KeyState::kActive);  // first key: at once
    first_ = first->created;
  }
  LifecyclePolicy policy_;
  KeyRecord first_;
};

TEST_F(KeysetRotationTest, PlannedRotationActivatesAfterThePublishLead) {
  auto rotated = keys_->RotateKey(issuer_, crypto::SignAlgorithm::kES256);
  ASSERT_TRUE(rotated.ok()) << rotated.status();
  const KeyRecord next = rotated->created;
  EXPECT_EQ(next.state, KeyState::kPending);
  EXPECT_EQ(next.activate_at, kStart + 100);
  EXPECT_EQ(rotated->previous->state, KeyState::kActive);
  EXPECT_EQ(JwksKids(), (std::set<std::string>{first_.kid, next.kid}));
  // Activating by hand before the lead is refused naming the rule.
  auto early = keys_->ActivateKey(issuer_, next.kid);
  EXPECT_EQ(early.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(absl::StrContains(early.status().message(), "publish_lead"));
  now_ = kStart + 99;
  EXPECT_EQ(*keys_->Tick(), 0);
  EXPECT_EQ((*keys_->ActiveKey(issuer_))->kid, first_.kid);
  now_ = kStart + 100;
  EXPECT_EQ(*keys_->Tick(), 1);
  EXPECT_EQ((*keys_->ActiveKey(issuer_))->kid, next.kid);
  EXPECT_EQ(StateOf(first_.kid), KeyState::kRetired);
  // The retired key stays published for the retire window, then leaves.
  now_ = kStart + 100 + 999;
  ASSERT_TRUE(keys_->Tick().ok());
  EXPECT_TRUE(JwksKids().count(first_.kid));
  now_ = kStart + 100 + 1000;
  ASSERT_TRUE(keys_->Tick().ok());
  EXPECT_EQ(JwksKids(), std::set<std::string>{next.kid});
  // Then it may be destroyed without force.
  EXPECT_TRUE(keys_->DestroyKey(issuer_, first_.kid, false, "").ok());
}

TEST_F(KeysetRotationTest, EmergencyRotationWithdrawsTheOldKeyAtOnce) {
  auto no_reason = keys_->RotateKey(issuer_, crypto::SignAlgorithm::kES256,
                                    RotationMode::kEmergency, "");
  EXPECT_EQ(no_reason.status().code(), absl::StatusCode::kInvalidArgument);
  auto rotated = keys_->RotateKey(issuer_, crypto::SignAlgorithm::kES256,
                                  RotationMode::kEmergency, "key leaked");
  ASSERT_TRUE(rotated.ok()) << rotated.status();
  EXPECT_EQ(rotated->created.state, KeyState::kActive);
  EXPECT_EQ(rotated->previous->state, KeyState::kWithdrawn);
  EXPECT_EQ((*keys_->ActiveKey(issuer_))->kid, rotated->created.kid);
  EXPECT_EQ(JwksKids(), std::set<std::string>{rotated->created.kid});
  EXPECT_EQ(keys_->VerificationKeyFor(issuer_, first_.kid).status().code(),
            absl::StatusCode::kNotFound);
  // A replica that refreshes drops it too.
  std::unique_ptr<KeysetManager> replica = NewManager();
  ASSERT_TRUE(replica->Load({issuer_}).ok());
  EXPECT_EQ((*replica->ActiveKey(issuer_))->kid, rotated->created.kid);
  // Withdrawn keys may be destroyed at once.
  EXPECT_TRUE(keys_->DestroyKey(issuer_, first_.kid, false, "").ok());
}

TEST_F(KeysetRotationTest, ScheduledRotationHappensOnceAcrossReplicas) {
  policy_.rotation_period = 3600;
  keys_->SetPolicies({{issuer_, policy_}});
  std::unique_ptr<KeysetManager> replica = NewManager();
  replica->SetPolicies({{issuer_, policy_}});
  ASSERT_TRUE(replica->Load({issuer_}).ok());
  // Both tick at the same moment, many times over the period.
  int64_t rotations = 0;
  std::string active = first_.kid;
  for (int64_t t = kStart; t <= kStart + 3 * 3600 + 200; t += 50) {
    now_ = t;
    (void)keys_->Tick();
    (void)replica->Tick();
    (void)keys_->Refresh();
    (void)replica->Refresh();
    const std::string now_active = (*keys_->ActiveKey(issuer_))->kid;
    if (now_active != active) {
      ++rotations;
      active = now_active;
      EXPECT_EQ((*replica->ActiveKey(issuer_))->kid, now_active);
    }
  }
  EXPECT_EQ(rotations, 3);
  // One key per rotation, never two: the loser of each race destroyed its own.
  const KeysetRecord rec = *keys_->Keyset(issuer_);
  int live = 0;
  for (const KeyRecord& k : rec.keys)
    if (k.state != KeyState::kDestroyed) ++live;
  EXPECT_EQ(live, 4);
  ASSERT_TRUE(keys_->SweepOrphans(absl::ZeroDuration()).ok());
  int in_hsm = 0;
  auto listed = hsm_->ListKeys();
  ASSERT_TRUE(listed.ok()) << listed.status();
  for (const hsm::KeyInfo& k : *listed)
    if (absl::StartsWith(k.label, "tokensign:" + issuer_ + ":")) ++in_hsm;
  EXPECT_EQ(in_hsm, live);
}

TEST_F(KeysetRotationTest, ScheduledCreateBlockedByTheBoundIsReportedOnce) {
  policy_.rotation_period = 3600;
  policy_.max_published_keys = 2;
  keys_->SetPolicies({{issuer_, policy_}});
  std::vector<KeysetEvent> events;
  keys_->SetObserver([&](const KeysetEvent& e) { events.push_back(e); });
  ASSERT_TRUE(keys_->CreateKey(issuer_, crypto::SignAlgorithm::kES256).ok());
  ASSERT_TRUE(keys_->Tick().ok());  // sets the schedule
  now_ = kStart + 3600;
  for (int i = 0; i < 3; ++i) EXPECT_FALSE(keys_->Tick().ok());
  int blocked = 0;
  for (const KeysetEvent& e : events)
    if (e.kind == KeysetEvent::Kind::kRejected &&
        absl::StrContains(e.detail, "scheduled rotation blocked"))
      ++blocked;
  EXPECT_EQ(blocked, 1);
}

}  // namespace
}  // namespace tokensign::keyset
