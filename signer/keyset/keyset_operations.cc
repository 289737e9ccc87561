// KeysetManager's lifecycle operations: create, activate, rotate, retire,
// destroy, the scheduled steps (Tick) and the orphan sweep. Each one checks
// the rules in lifecycle.h, commits the record (Commit, in
// keyset_manager.cc) and only then touches HSM objects. See
// keyset_manager.h for the contract and thread-safety.
#include <algorithm>
#include <optional>
#include <utility>

#include "absl/strings/str_cat.h"
#include "crypto/algorithm.h"
#include "crypto/spki.h"
#include "signer/keyset/keyset_internal.h"
#include "signer/keyset/keyset_manager.h"
#include "signer/token/jwk.h"

namespace tokensign::keyset {

using internal::KeyLabel;
using internal::KeyStates;
using internal::ParseKeyLabel;

absl::StatusOr<KeyRecord> KeysetManager::CreateKeyLocked(
    const std::string& issuer, crypto::SignAlgorithm alg, int64_t activate_at) {
  auto state = State(issuer);
  if (!state.ok()) return state.status();
  crypto::KeyType type = crypto::KeyTypeFor(alg);
  int rsa_bits = type == crypto::KeyType::kRsa ? 2048 : 0;
  const int64_t now = absl::ToUnixSeconds(clock_());
  if (absl::Status st = CheckCreate((*state)->record, PolicyFor(issuer), alg, now);
      !st.ok()) {
    return st;
  }
  auto info = hsm_->GenerateKey(type, KeyLabel(issuer, now), rsa_bits);
  if (!info.ok())
    return Prefix(info.status(),
                  absl::StrCat("keyset ", AbslView(issuer), ": create key"));
  auto discard = [&](absl::Status st) {
    // Never leave a key no record names; if this fails, SweepOrphans will.
    (void)hsm_->DestroyKey(info->id);
    return st;
  };
  auto pub = crypto::ParseSpki(info->spki_der);
  if (!pub.ok()) return discard(pub.status());
  auto kid = token::JwkThumbprint(pub->get());
  if (!kid.ok()) return discard(kid.status());
  KeyRecord rec;
  rec.id = info->id;
  rec.kid = *kid;
  rec.spki = info->spki_der;
  rec.alg = alg;
  rec.state = KeyState::kPending;
  rec.created_at = now;
  rec.activate_at = activate_at;
  KeysetRecord next = (*state)->record;
  next.keys.push_back(rec);
  absl::Status st = Commit((*state)->record, std::move(next));
  if (!st.ok()) return discard(st);
  return rec;
}

absl::StatusOr<KeyRecord> KeysetManager::ActivateKeyLocked(
    const std::string& issuer, std::string_view kid, bool force,
    std::string_view reason) {
  auto state = State(issuer);
  if (!state.ok()) return state.status();
  if (auto why = (*state)->rejected.find(std::string(kid));
      why != (*state)->rejected.end()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "kid: key ", AbslView(kid), " failed its checks and cannot activate: ",
        why->second));
  }
  KeysetRecord next = (*state)->record;
  const int64_t now = absl::ToUnixSeconds(clock_());
  if (absl::Status st = Activate(next, kid, PolicyFor(issuer), now, force, reason);
      !st.ok()) {
    return st;
  }
  KeyRecord result = *next.FindByKid(kid);
  absl::Status st = Commit((*state)->record, std::move(next));
  if (!st.ok()) return st;
  return result;
}

absl::StatusOr<KeyRecord> KeysetManager::EnsureActiveKey(
    std::string_view issuer, crypto::SignAlgorithm alg) {
  std::lock_guard admin(admin_mu_);
  auto state = State(issuer);
  if (!state.ok()) return state.status();
  if ((*state)->active != nullptr) {
    return *(*state)->record.Active();
  }
  auto created = CreateKeyLocked(std::string(issuer), alg);
  if (!created.ok()) return created.status();
  return ActivateKeyLocked(std::string(issuer), created->kid, /*force=*/true,
                           "dev mode: first key");
}

absl::StatusOr<KeyRecord> KeysetManager::CreateKey(std::string_view issuer,
                                                   crypto::SignAlgorithm alg) {
  std::lock_guard admin(admin_mu_);
  return CreateKeyLocked(std::string(issuer), alg);
}

absl::StatusOr<KeyRecord> KeysetManager::ActivateKey(std::string_view issuer,
                                                     std::string_view kid,
                                                     bool force,
                                                     std::string_view reason) {
  std::lock_guard admin(admin_mu_);
  return ActivateKeyLocked(std::string(issuer), kid, force, reason);
}

absl::StatusOr<Rotation> KeysetManager::RotateKey(std::string_view issuer_view,
                                                  crypto::SignAlgorithm alg,
                                                  RotationMode mode,
                                                  std::string_view reason) {
  std::lock_guard admin(admin_mu_);
  const std::string issuer(issuer_view);
  auto state = State(issuer);
  if (!state.ok()) return state.status();
  if (mode == RotationMode::kEmergency && reason.empty()) {
    return absl::InvalidArgumentError(
        "reason: required with an emergency rotation (it is written to the "
        "audit log)");
  }
  std::optional<std::string> previous_kid;
  if (const KeyRecord* k = (*state)->record.Active(); k != nullptr)
    previous_kid = k->kid;
  const LifecyclePolicy policy = PolicyFor(issuer);
  const int64_t now = absl::ToUnixSeconds(clock_());
  const bool immediate = mode == RotationMode::kEmergency ||
                         policy.publish_lead == 0 || !previous_kid.has_value();
  auto created = CreateKeyLocked(
      issuer, alg, immediate ? 0 : now + policy.publish_lead);
  if (!created.ok()) return created.status();
  if (mode == RotationMode::kEmergency) {
    auto current = State(issuer);
    if (!current.ok()) return current.status();
    KeysetRecord next = (*current)->record;
    absl::Status st = EmergencyActivate(next, created->kid, now, reason);
    if (st.ok()) st = Commit((*current)->record, std::move(next));
    if (!st.ok()) return st;
  } else if (immediate) {
    auto active = ActivateKeyLocked(issuer, created->kid, false, "");
    if (!active.ok()) return active.status();
  }
  auto after = State(issuer);
  if (!after.ok()) return after.status();
  Rotation r;
  r.created = *(*after)->record.FindByKid(created->kid);
  if (previous_kid) {
    if (const KeyRecord* k = (*after)->record.FindByKid(*previous_kid))
      r.previous = *k;
  }
  return r;
}

absl::StatusOr<KeyRecord> KeysetManager::RetireKey(std::string_view issuer,
                                                   std::string_view kid) {
  std::lock_guard admin(admin_mu_);
  auto state = State(issuer);
  if (!state.ok()) return state.status();
  KeysetRecord next = (*state)->record;
  absl::Status st = Retire(next, kid, PolicyFor(std::string(issuer)),
                           absl::ToUnixSeconds(clock_()));
  if (!st.ok()) return st;
  KeyRecord result = *next.FindByKid(kid);
  st = Commit((*state)->record, std::move(next));
  if (!st.ok()) return st;
  return result;
}

absl::StatusOr<KeyRecord> KeysetManager::DestroyKey(std::string_view issuer,
                                                    std::string_view kid,
                                                    bool force,
                                                    std::string_view reason) {
  std::lock_guard admin(admin_mu_);
  auto state = State(issuer);
  if (!state.ok()) return state.status();
  KeysetRecord next = (*state)->record;
  absl::Status st = Destroy(next, kid, absl::ToUnixSeconds(clock_()), force,
                            reason, PolicyFor(std::string(issuer)));
  if (!st.ok()) return st;
  KeyRecord result = *next.FindByKid(kid);
  // The record first: if another replica changed the keyset meanwhile, the
  // write loses and nothing is destroyed.
  st = Commit((*state)->record, std::move(next));
  if (!st.ok()) return st;
  st = hsm_->DestroyKey(result.id);
  if (!st.ok() && !absl::IsNotFound(st)) {
    // Recorded as destroyed (no replica uses or publishes it); the objects
    // are removed by SweepOrphans.
    Report({KeysetEvent::Kind::kRejected, std::string(issuer), 0, 0, result.id,
            absl::StrCat("key ", result.kid,
                         " recorded as destroyed but its HSM objects remain "
                         "(", st.message(), "); the orphan sweep retries")});
  }
  return result;
}

absl::StatusOr<int> KeysetManager::SweepOrphans(absl::Duration grace) {
  int swept = 0;
  absl::Status first_error;
  {
    std::lock_guard admin(admin_mu_);
    std::vector<std::string> issuers;
    {
      std::shared_lock lock(mu_);
      for (const auto& [name, _] : issuers_) issuers.push_back(name);
    }
    auto keys = hsm_->ListKeys();
    if (!keys.ok()) return keys.status();
    const int64_t now = absl::ToUnixSeconds(clock_());
    // The records of the issuers that have keys, fresh from the token (never
    // this daemon's possibly stale copy), in ONE object search: a search per
    // issuer is linear in the token's objects, so N issuers cost N^2 (1,000
    // issuers: minutes of CPU on SoftHSM, on a signing worker).
    std::vector<std::string> with_keys;
    for (const hsm::KeyInfo& key : *keys) {
      auto label = ParseKeyLabel(key.label);
      if (label && std::find(issuers.begin(), issuers.end(), label->first) !=
                       issuers.end()) {
        with_keys.push_back(label->first);
      }
    }
    std::sort(with_keys.begin(), with_keys.end());
    with_keys.erase(std::unique(with_keys.begin(), with_keys.end()),
                    with_keys.end());
    std::map<std::string, std::optional<KeysetRecord>> records;  // by issuer
    if (!with_keys.empty()) {
      auto read = records_.ReadEvery(with_keys);
      for (const std::string& issuer : with_keys) {
        const absl::Status st =
            read.ok() ? read->at(issuer).current.status() : read.status();
        if (!st.ok()) {
          if (first_error.ok()) first_error = st;
          records[issuer] = std::nullopt;
        } else {
          records[issuer] = *std::move(read->at(issuer).current);
        }
      }
    }
    for (const hsm::KeyInfo& key : *keys) {
      auto label = ParseKeyLabel(key.label);
      if (!label || std::find(issuers.begin(), issuers.end(), label->first) ==
                        issuers.end()) {
        continue;  // not an issuer key of this daemon
      }
      const std::string& issuer = label->first;
      const std::optional<KeysetRecord>& rec = records[issuer];
      if (!rec) continue;
      const KeyRecord* named = nullptr;
      for (const KeyRecord& k : rec->keys)
        if (k.id == key.id) named = &k;
      std::string why;
      if (named != nullptr && named->state == KeyState::kDestroyed) {
        why = absl::StrCat("recorded as destroyed (kid ", named->kid, ")");
      } else if (named == nullptr && now - label->second >=
                                         absl::ToInt64Seconds(grace)) {
        why = absl::StrCat("named by no record of generation ",
                           rec->generation, ", created at ", label->second);
      } else {
        continue;
      }
      absl::Status st = hsm_->DestroyKey(key.id);
      if (!st.ok() && !absl::IsNotFound(st)) {
        if (first_error.ok()) first_error = st;
        continue;
      }
      ++swept;
      Report({KeysetEvent::Kind::kSwept, issuer, rec->generation,
              rec->generation, key.id,
              absl::StrCat("destroyed HSM key ", key.id, " (", key.label,
                           "): ", why)});
    }
  }
  Flush();
  if (!first_error.ok()) return first_error;
  return swept;
}

absl::StatusOr<bool> KeysetManager::TickIssuer(const std::string& issuer) {
  auto state = State(issuer);
  if (!state.ok()) return state.status();
  const LifecyclePolicy policy = PolicyFor(issuer);
  const int64_t now = absl::ToUnixSeconds(clock_());
  const KeysetRecord& record = (*state)->record;
  DueStep step = NextDueStep(record, policy, now);
  const int64_t generation = record.generation;
  auto report = [&](std::string detail, std::string_view kid = "") {
    Report({KeysetEvent::Kind::kScheduled, issuer, generation, generation + 1,
            std::string(kid), std::move(detail)});
  };
  switch (step.kind) {
    case DueStep::Kind::kNone:
      return false;
    case DueStep::Kind::kActivate: {
      auto key = ActivateKeyLocked(issuer, step.kid, false, "");
      if (!key.ok()) return key.status();
      report(absl::StrCat("planned activation of key ", key->kid,
                          " (published since ", key->created_at, ")"),
             key->kid);
      return true;
    }
    case DueStep::Kind::kSetSchedule: {
      KeysetRecord next = record;
      next.next_rotation_at = step.activate_at;
      if (absl::Status st = Commit(record, std::move(next)); !st.ok())
        return st;
      report(absl::StrCat("rotation scheduled: next key active at ",
                          step.activate_at, " (every ",
                          policy.rotation_period, " s)"));
      return true;
    }
    case DueStep::Kind::kCreateScheduled: {
      const KeyRecord* active = record.Active();
      crypto::SignAlgorithm alg = !policy.algorithms.empty()
                                   ? policy.algorithms.front()
                                   : active->alg;
      auto created = CreateKeyLocked(issuer, alg, step.activate_at);
      if (!created.ok()) {
        if (absl::IsFailedPrecondition(created.status()) ||
            absl::IsInvalidArgument(created.status())) {
          // E.g. max_published_keys: retried on every tick, reported once
          // per distinct reason.
          Report({KeysetEvent::Kind::kRejected, issuer, generation, generation,
                  "", absl::StrCat("scheduled rotation blocked: ",
                                   created.status().message())},
                 "schedule");
        }
        return created.status();
      }
      report(absl::StrCat("scheduled rotation: created pending key ",
                          created->kid, ", active at ", step.activate_at),
             created->kid);
      return true;
    }
  }
  return false;
}

absl::StatusOr<int> KeysetManager::Tick() {
  int steps = 0;
  absl::Status first_error;
  {
    std::lock_guard admin(admin_mu_);
    std::vector<std::pair<std::string, StatePtr>> current;
    {
      std::shared_lock lock(mu_);
      current.assign(issuers_.begin(), issuers_.end());
    }
    const int64_t now = absl::ToUnixSeconds(clock_());
    for (const auto& [issuer, state] : current) {
      // A retired key left the JWKS: rebuild without it.
      if (state->next_change != 0 && now >= state->next_change) {
        bool changed = false;
        absl::Status st = ReloadIssuer(issuer, state, &changed);
        if (!st.ok() && first_error.ok()) first_error = st;
      }
      auto stepped = TickIssuer(issuer);
      if (!stepped.ok()) {
        // Aborted: another replica made the step (this one reloaded).
        if (!absl::IsAborted(stepped.status()) && first_error.ok())
          first_error = stepped.status();
        continue;
      }
      if (*stepped) ++steps;
    }
  }
  Flush();
  if (!first_error.ok()) return first_error;
  return steps;
}

}  // namespace tokensign::keyset
