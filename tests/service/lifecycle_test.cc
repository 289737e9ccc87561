// The key lifecycle rules (signer/keyset/lifecycle.h) as a table: every
// transition from every state, allowed or refused with the rule named; the
// JWKS contents over time; the scheduler's next step.
#include "signer/keyset/lifecycle.h"

#include <gtest/gtest.h>

#include <string>

#include "absl/strings/match.h"
#include "crypto/algorithm.h"

namespace tokensign::keyset {
namespace {

constexpr int64_t kNow = 1'700'000'000;

LifecyclePolicy Policy() {
  LifecyclePolicy p;
  p.publish_lead = 400;    // jwks_max_age 300 + refresh 40 + skew 60
  p.retire_window = 4000;  // refresh + longest TTL + skew
  p.max_published_keys = 4;
  return p;
}

// A record with one key "k" in `state` next to an active key "a" (unless k
// is the active one).
KeysetRecord With(KeyState state) {
  KeysetRecord r;
  r.issuer = "iss";
  KeyRecord k;
  k.kid = "k";
  k.id = "01";
  k.state = state;
  k.created_at = kNow - 1000;
  if (state == KeyState::kRetired) {
    k.retired_at = kNow - 100;
    k.expires_at = kNow + 3900;
  }
  if (state == KeyState::kWithdrawn) k.withdrawn_at = kNow - 100;
  if (state != KeyState::kActive) {
    KeyRecord a;
    a.kid = "a";
    a.id = "02";
    a.state = KeyState::kActive;
    a.created_at = kNow - 5000;
    a.activated_at = kNow - 4000;
    r.keys.push_back(a);
  }
  r.keys.push_back(k);
  return r;
}

enum class Op { kActivate, kActivateForced, kRetire, kDestroy, kDestroyForced };

absl::Status Apply(KeysetRecord& r, Op op, int64_t now) {
  switch (op) {
    case Op::kActivate:
      return Activate(r, "k", Policy(), now, false, "");
    case Op::kActivateForced:
      return Activate(r, "k", Policy(), now, true, "incident 7");
    case Op::kRetire:
      return Retire(r, "k", Policy(), now);
    case Op::kDestroy:
      return Destroy(r, "k", now, false, "", Policy());
    case Op::kDestroyForced:
      return Destroy(r, "k", now, true, "incident 7", Policy());
  }
  return absl::InternalError("op");
}

struct Row {
  KeyState from;
  Op op;
  absl::StatusCode want;
  KeyState to;          // when allowed
  const char* rule;     // substring of the refusal
};

TEST(LifecycleTest, EveryTransitionAllowedOrRefusedByName) {
  using S = KeyState;
  using C = absl::StatusCode;
  const Row rows[] = {
      // pending (published for 1000 s >= lead 400)
      {S::kPending, Op::kActivate, C::kOk, S::kActive, ""},
      {S::kPending, Op::kRetire, C::kOk, S::kRetired, ""},
      {S::kPending, Op::kDestroy, C::kOk, S::kDestroyed, ""},
      // active
      {S::kActive, Op::kActivate, C::kFailedPrecondition, S::kActive, "only a pending key"},
      {S::kActive, Op::kRetire, C::kOk, S::kRetired, ""},
      {S::kActive, Op::kDestroy, C::kFailedPrecondition, S::kActive, "is active"},
      {S::kActive, Op::kDestroyForced, C::kFailedPrecondition, S::kActive, "is active"},
      // retired, still in the JWKS (expires at kNow + 3900)
      {S::kRetired, Op::kActivate, C::kFailedPrecondition, S::kRetired, "only a pending key"},
      {S::kRetired, Op::kRetire, C::kFailedPrecondition, S::kRetired, "only pending/active"},
      {S::kRetired, Op::kDestroy, C::kFailedPrecondition, S::kRetired, "may still be live"},
      {S::kRetired, Op::kDestroyForced, C::kOk, S::kDestroyed, ""},
      // withdrawn
      {S::kWithdrawn, Op::kActivate, C::kFailedPrecondition, S::kWithdrawn, "only a pending key"},
      {S::kWithdrawn, Op::kRetire, C::kFailedPrecondition, S::kWithdrawn, "only pending/active"},
      {S::kWithdrawn, Op::kDestroy, C::kOk, S::kDestroyed, ""},
      // destroyed
      {S::kDestroyed, Op::kActivate, C::kFailedPrecondition, S::kDestroyed, "only a pending key"},
      {S::kDestroyed, Op::kRetire, C::kFailedPrecondition, S::kDestroyed, "only pending/active"},
      {S::kDestroyed, Op::kDestroy, C::kFailedPrecondition, S::kDestroyed, "already destroyed"},
      {S::kDestroyed, Op::kDestroyForced, C::kFailedPrecondition, S::kDestroyed, "already destroyed"},
  };
  for (const Row& row : rows) {
    KeysetRecord r = With(row.from);
    absl::Status st = Apply(r, row.op, kNow);
    SCOPED_TRACE(std::string(KeyStateName(row.from)) + " op " +
                 std::to_string(static_cast<int>(row.op)) + ": " +
                 std::string(st.message()));
    EXPECT_EQ(st.code(), row.want);
    EXPECT_EQ(r.FindByKid("k")->state, row.to);
    if (!st.ok()) {
      EXPECT_TRUE(absl::StrContains(st.message(), row.rule));
      EXPECT_TRUE(absl::StrContains(st.message(), "kid: key k"));
    }
  }
}

TEST(LifecycleTest, ActivationWaitsForThePublishLeadUnlessForcedWithAReason) {
  KeysetRecord r = With(KeyState::kPending);
  r.FindByKid("k")->created_at = kNow - 399;  // lead is 400
  absl::Status st = Activate(r, "k", Policy(), kNow, false, "");
  EXPECT_EQ(st.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(absl::StrContains(st.message(), "publish_lead")) << st;
  st = Activate(r, "k", Policy(), kNow, true, "");
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(absl::StrContains(st.message(), "reason")) << st;
  ASSERT_TRUE(Activate(r, "k", Policy(), kNow, true, "incident 7").ok());
  // The previous key retired, with its JWKS expiry frozen into the record.
  const KeyRecord* a = r.FindByKid("a");
  EXPECT_EQ(a->state, KeyState::kRetired);
  EXPECT_EQ(a->expires_at, kNow + 4000);
  EXPECT_EQ(r.Active()->kid, "k");
}

TEST(LifecycleTest, TheFirstKeyNeedsNoLead) {
  KeysetRecord r;
  r.issuer = "iss";
  KeyRecord k;
  k.kid = "k";
  k.created_at = kNow;
  r.keys.push_back(k);
  EXPECT_TRUE(Activate(r, "k", Policy(), kNow, false, "").ok());
}

TEST(LifecycleTest, RetiredKeysLeaveTheJwksWhenTheirWindowEnds) {
  KeysetRecord r = With(KeyState::kRetired);
  EXPECT_EQ(PublishedKeys(r, kNow).size(), 2u);
  EXPECT_EQ(NextPublicationChange(r, kNow), kNow + 3900);
  EXPECT_EQ(PublishedKeys(r, kNow + 3900).size(), 1u);
  // Withdrawn keys are never published.
  EXPECT_EQ(PublishedKeys(With(KeyState::kWithdrawn), kNow).size(), 1u);
}

TEST(LifecycleTest, EmergencyWithdrawsTheActiveKeyAndNeedsAReason) {
  KeysetRecord r = With(KeyState::kPending);
  EXPECT_EQ(EmergencyActivate(r, "k", kNow, "").code(),
            absl::StatusCode::kInvalidArgument);
  ASSERT_TRUE(EmergencyActivate(r, "k", kNow, "key leaked").ok());
  EXPECT_EQ(r.FindByKid("a")->state, KeyState::kWithdrawn);
  EXPECT_EQ(r.FindByKid("a")->withdrawn_at, kNow);
  EXPECT_EQ(r.Active()->kid, "k");
  EXPECT_EQ(PublishedKeys(r, kNow).size(), 1u);
}

TEST(LifecycleTest, CreationIsBoundedAndAlgorithmsChecked) {
  KeysetRecord r = With(KeyState::kRetired);
  LifecyclePolicy p = Policy();
  p.max_published_keys = 2;
  p.algorithms = {crypto::SignAlgorithm::kES256};
  absl::Status st = CheckCreate(r, p, crypto::SignAlgorithm::kES256, kNow);
  EXPECT_EQ(st.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(absl::StrContains(st.message(), "max_published_keys 2")) << st;
  EXPECT_TRUE(absl::StrContains(st.message(), "k (retired")) << st;
  EXPECT_TRUE(CheckCreate(r, p, crypto::SignAlgorithm::kES256, kNow + 3900).ok());
  st = CheckCreate(r, p, crypto::SignAlgorithm::kRS256, kNow + 3900);
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(absl::StrContains(st.message(), "alg: RS256 is not allowed")) << st;
}

TEST(LifecycleTest, SchedulerStepsInOrder) {
  LifecyclePolicy p = Policy();
  p.rotation_period = 30 * 86400;
  KeysetRecord r = With(KeyState::kRetired);  // active "a" since kNow - 4000
  DueStep step = NextDueStep(r, p, kNow);
  ASSERT_EQ(step.kind, DueStep::Kind::kSetSchedule);
  EXPECT_EQ(step.activate_at, kNow - 4000 + p.rotation_period);
  r.next_rotation_at = step.activate_at;
  EXPECT_EQ(NextDueStep(r, p, r.next_rotation_at - p.publish_lead - 1).kind,
            DueStep::Kind::kNone);
  step = NextDueStep(r, p, r.next_rotation_at - p.publish_lead);
  ASSERT_EQ(step.kind, DueStep::Kind::kCreateScheduled);
  EXPECT_EQ(step.activate_at, r.next_rotation_at);
  KeyRecord next;
  next.kid = "n";
  next.created_at = r.next_rotation_at - p.publish_lead;
  next.activate_at = r.next_rotation_at;
  r.keys.push_back(next);
  EXPECT_EQ(NextDueStep(r, p, r.next_rotation_at - 1).kind,
            DueStep::Kind::kNone);  // created, waiting
  step = NextDueStep(r, p, r.next_rotation_at);
  ASSERT_EQ(step.kind, DueStep::Kind::kActivate);
  EXPECT_EQ(step.kid, "n");
  const int64_t due = r.next_rotation_at;
  ASSERT_TRUE(Activate(r, "n", p, due, false, "").ok());
  EXPECT_EQ(r.next_rotation_at, due + p.rotation_period);
}

}  // namespace
}  // namespace tokensign::keyset
