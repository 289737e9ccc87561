#include "signer/keyset/lifecycle.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "crypto/algorithm.h"
#include "signer/keyset/keyset_internal.h"

namespace tokensign::keyset {

namespace {

absl::StatusOr<KeyRecord*> Find(KeysetRecord& record, std::string_view kid) {
  KeyRecord* k = record.FindByKid(kid);
  if (k == nullptr) {
    return absl::NotFoundError(absl::StrCat("kid: no key \"", AbslView(kid),
                                            "\" for issuer ", record.issuer));
  }
  return k;
}

absl::Status Refuse(std::string_view kid, std::string_view why) {
  return absl::FailedPreconditionError(
      absl::StrCat("kid: key ", AbslView(kid), " ", AbslView(why)));
}

absl::Status NeedReason(std::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat(
      "reason: required with ", AbslView(what), " (it is written to the audit log)"));
}

void RetireActive(KeysetRecord& record, const LifecyclePolicy& policy,
                  int64_t now) {
  for (KeyRecord& k : record.keys) {
    if (k.state != KeyState::kActive) continue;
    k.state = KeyState::kRetired;
    k.retired_at = now;
    k.expires_at = policy.retire_window < 0 ? 0 : now + policy.retire_window;
  }
}

}  // namespace

bool Published(const KeyRecord& key, int64_t now) {
  switch (key.state) {
    case KeyState::kPending:
    case KeyState::kActive:
      return true;
    case KeyState::kRetired:
      return key.expires_at == 0 || now < key.expires_at;
    case KeyState::kWithdrawn:
    case KeyState::kDestroyed:
      return false;
  }
  return false;
}

std::vector<const KeyRecord*> PublishedKeys(const KeysetRecord& record,
                                            int64_t now) {
  std::vector<const KeyRecord*> out;
  for (const KeyRecord& k : record.keys)
    if (Published(k, now)) out.push_back(&k);
  return out;
}

std::optional<int64_t> NextPublicationChange(const KeysetRecord& record,
                                             int64_t now) {
  std::optional<int64_t> next;
  for (const KeyRecord& k : record.keys) {
    if (k.state == KeyState::kRetired && k.expires_at > now)
      next = next ? std::min(*next, k.expires_at) : k.expires_at;
  }
  return next;
}

absl::Status CheckCreate(const KeysetRecord& record,
                         const LifecyclePolicy& policy, crypto::SignAlgorithm alg,
                         int64_t now) {
  if (!policy.algorithms.empty() &&
      std::find(policy.algorithms.begin(), policy.algorithms.end(), alg) ==
          policy.algorithms.end()) {
    std::vector<std::string> allowed;
    for (crypto::SignAlgorithm a : policy.algorithms)
      allowed.emplace_back(crypto::SignAlgorithmName(a));
    return absl::InvalidArgumentError(absl::StrCat(
        "alg: ", AbslView(crypto::SignAlgorithmName(alg)), " is not allowed for issuer ",
        record.issuer, " (allowed: ", absl::StrJoin(allowed, ", "), ")"));
  }
  std::vector<const KeyRecord*> published = PublishedKeys(record, now);
  if (policy.max_published_keys > 0 &&
      static_cast<int>(published.size()) >= policy.max_published_keys) {
    std::vector<std::string> blocking;
    for (const KeyRecord* k : published) {
      std::string what = absl::StrCat(k->kid, " (", KeyStateName(k->state));
      if (k->state == KeyState::kRetired && k->expires_at != 0)
        absl::StrAppend(&what, ", leaves the JWKS at ", k->expires_at);
      absl::StrAppend(&what, ")");
      blocking.push_back(std::move(what));
    }
    return absl::FailedPreconditionError(absl::StrCat(
        "keys: issuer ", record.issuer, " already publishes ", published.size(),
        " keys (max_published_keys ", policy.max_published_keys,
        "): ", absl::StrJoin(blocking, ", "),
        "; destroy a pending or expired key, or wait for a retired one to "
        "leave the JWKS"));
  }
  return absl::OkStatus();
}

absl::Status Activate(KeysetRecord& record, std::string_view kid,
                      const LifecyclePolicy& policy, int64_t now, bool force,
                      std::string_view reason) {
  auto found = Find(record, kid);
  if (!found.ok()) return found.status();
  KeyRecord* k = *found;
  if (k->state != KeyState::kPending) {
    return Refuse(kid, absl::StrCat("is ", KeyStateName(k->state),
                                    "; only a pending key can activate"));
  }
  const int64_t published_for = now - k->created_at;
  // The issuer's first signing key: no verifier holds a token it could
  // break, so there is nothing to wait for.
  const bool first = record.Active() == nullptr;
  if (!first && published_for < policy.publish_lead) {
    if (!force) {
      return Refuse(kid, absl::StrCat(
          "has been published for ", published_for, " s; verifiers holding a "
          "cached JWKS may not know it before publish_lead (",
          policy.publish_lead, " s, at ", k->created_at + policy.publish_lead,
          "); wait, or force with a reason"));
    }
    if (reason.empty()) return NeedReason("force");
  }
  RetireActive(record, policy, now);
  k->state = KeyState::kActive;
  k->activated_at = now;
  k->activate_at = 0;
  if (policy.rotation_period > 0)
    record.next_rotation_at = now + policy.rotation_period;
  return absl::OkStatus();
}

absl::Status Retire(KeysetRecord& record, std::string_view kid,
                    const LifecyclePolicy& policy, int64_t now) {
  auto found = Find(record, kid);
  if (!found.ok()) return found.status();
  KeyRecord* k = *found;
  if (k->state != KeyState::kPending && k->state != KeyState::kActive) {
    return Refuse(kid, absl::StrCat("is ", KeyStateName(k->state),
                                    "; only pending/active can retire"));
  }
  // A pending key never signed: nothing of it needs to stay published.
  k->expires_at = k->state != KeyState::kActive ? now
                  : policy.retire_window < 0   ? 0
                                               : now + policy.retire_window;
  k->state = KeyState::kRetired;
  k->retired_at = now;
  k->activate_at = 0;
  return absl::OkStatus();
}

absl::Status EmergencyActivate(KeysetRecord& record, std::string_view fresh_kid,
                               int64_t now, std::string_view reason) {
  if (reason.empty()) return NeedReason("an emergency rotation");
  auto found = Find(record, fresh_kid);
  if (!found.ok()) return found.status();
  if ((*found)->state != KeyState::kPending)
    return Refuse(fresh_kid, "is not pending");
  for (KeyRecord& k : record.keys) {
    if (k.state != KeyState::kActive) continue;
    k.state = KeyState::kWithdrawn;
    k.withdrawn_at = now;
  }
  (*found)->state = KeyState::kActive;
  (*found)->activated_at = now;
  (*found)->activate_at = 0;
  return absl::OkStatus();
}

absl::Status Destroy(KeysetRecord& record, std::string_view kid, int64_t now,
                     bool force, std::string_view reason,
                     const LifecyclePolicy& policy) {
  auto found = Find(record, kid);
  if (!found.ok()) return found.status();
  KeyRecord* k = *found;
  switch (k->state) {
    case KeyState::kDestroyed:
      return Refuse(kid, "is already destroyed");
    case KeyState::kActive:
      return Refuse(kid, "is active and signs; rotate (or retire) it first");
    case KeyState::kRetired: {
      const int64_t leaves = k->expires_at != 0
                                 ? k->expires_at
                                 : k->retired_at +
                                       std::max<int64_t>(policy.retire_window, 0);
      if (now < leaves) {
        if (!force) {
          return Refuse(kid, absl::StrCat(
              "was retired at ", k->retired_at, "; tokens it signed may still "
              "be live until ", leaves, "; wait, or force with a reason"));
        }
        if (reason.empty()) return NeedReason("force");
      }
      break;
    }
    case KeyState::kPending:
    case KeyState::kWithdrawn:
      break;
  }
  if (k->retired_at == 0) k->retired_at = now;
  k->state = KeyState::kDestroyed;
  k->activate_at = 0;
  return absl::OkStatus();
}

DueStep NextDueStep(const KeysetRecord& record, const LifecyclePolicy& policy,
                    int64_t now) {
  DueStep step;
  const KeyRecord* planned = nullptr;
  for (const KeyRecord& k : record.keys) {
    if (k.state == KeyState::kPending && k.activate_at > 0) planned = &k;
  }
  if (planned != nullptr && planned->activate_at <= now) {
    step.kind = DueStep::Kind::kActivate;
    step.kid = planned->kid;
    return step;
  }
  if (policy.rotation_period <= 0) return step;
  const KeyRecord* active = record.Active();
  if (active == nullptr) return step;  // the first key is a custodian's call
  if (record.next_rotation_at == 0) {
    step.kind = DueStep::Kind::kSetSchedule;
    step.activate_at = std::max(active->activated_at + policy.rotation_period,
                                now + policy.publish_lead);
    return step;
  }
  if (planned == nullptr &&
      now >= record.next_rotation_at - policy.publish_lead) {
    step.kind = DueStep::Kind::kCreateScheduled;
    step.activate_at =
        std::max(record.next_rotation_at, now + policy.publish_lead);
  }
  return step;
}

}  // namespace tokensign::keyset
