#include "signer/keyset/keyset_manager.h"

#include <algorithm>
#include <optional>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "signer/token/jwk.h"

namespace tokensign::keyset {
namespace {

// Debian's abseil has its own string_view; StrCat needs it.
absl::string_view S(std::string_view s) {
  return absl::string_view(s.data(), s.size());
}

absl::Status Prefix(const absl::Status& st, std::string_view what) {
  return absl::Status(st.code(), absl::StrCat(S(what), ": ", st.message()));
}

// "kid1=active kid2=retired" for logs and the audit.
std::string KeyStates(const KeysetRecord& record) {
  std::vector<std::string> parts;
  for (const KeyRecord& k : record.keys)
    parts.push_back(absl::StrCat(k.kid, "=", KeyStateName(k.state)));
  return parts.empty() ? "no keys" : absl::StrJoin(parts, " ");
}

// The label CreateKey gives an issuer's keys: "tokensign:<issuer>:<unix s>".
std::string KeyLabel(std::string_view issuer, int64_t created) {
  return absl::StrCat("tokensign:", S(issuer), ":", created);
}

// Issuer and creation time from such a label, or nullopt.
std::optional<std::pair<std::string, int64_t>> ParseKeyLabel(
    std::string_view label) {
  constexpr std::string_view kPrefix = "tokensign:";
  if (label.substr(0, kPrefix.size()) != kPrefix) return std::nullopt;
  size_t colon = label.rfind(':');
  if (colon <= kPrefix.size()) return std::nullopt;
  int64_t created = 0;
  if (!absl::SimpleAtoi(S(label.substr(colon + 1)), &created))
    return std::nullopt;
  return std::pair{std::string(label.substr(kPrefix.size(),
                                            colon - kPrefix.size())),
                   created};
}

}  // namespace

KeysetManager::KeysetManager(std::shared_ptr<hsm::Hsm> hsm,
                             PrivateKeyLoader private_keys, Clock clock)
    : hsm_(hsm),
      records_(hsm),
      private_keys_(std::move(private_keys)),
      clock_(std::move(clock)) {}

void KeysetManager::SetObserver(KeysetObserver observer) {
  {
    std::lock_guard lock(events_mu_);
    observer_ = std::move(observer);
  }
  Flush();
}

void KeysetManager::Report(KeysetEvent event, std::string_view topic) {
  std::lock_guard lock(events_mu_);
  const std::string key = absl::StrCat(event.issuer, "/", S(topic));
  if (event.kind == KeysetEvent::Kind::kRejected) {
    std::string& last = last_rejection_[key];
    if (last == event.detail) return;  // already reported
    last = event.detail;
  } else if (event.kind == KeysetEvent::Kind::kChanged) {
    last_rejection_.erase(absl::StrCat(event.issuer, "/record"));
  }
  pending_events_.push_back(std::move(event));
}

void KeysetManager::Flush() {
  std::vector<KeysetEvent> events;
  KeysetObserver observer;
  {
    std::lock_guard lock(events_mu_);
    if (!observer_) return;
    events.swap(pending_events_);
    observer = observer_;
  }
  for (const KeysetEvent& e : events) observer(e);
}

absl::StatusOr<KeysetManager::StatePtr> KeysetManager::BuildState(
    KeysetRecord record) const {
  auto state = std::make_shared<IssuerState>();
  std::vector<token::JwksEntry> entries;
  const int64_t now = absl::ToUnixSeconds(clock_());
  for (const KeyRecord& k : record.keys) {
    // Withdrawn, destroyed and expired keys are neither published nor used.
    if (!Published(k, now)) continue;
    auto verified = VerifyRecordedKey(*hsm_, private_keys_, k);
    if (!verified.ok()) {
      // An HSM that is down says nothing about the key: fail the whole build
      // so the caller keeps what it has and tries again.
      if (absl::IsUnavailable(verified.status())) {
        return Prefix(verified.status(),
                      absl::StrCat("keyset ", record.issuer, " key ", k.kid));
      }
      std::string why(verified.status().message());
      state->rejected[k.kid] = why;
      if (k.state == KeyState::kActive) {
        state->unavailable =
            absl::StrCat("active key ", k.kid, " is not usable: ", why);
      }
      continue;
    }
    state->public_keys[k.kid] = verified->public_key;
    state->proven_spki[k.id] = verified->spki;
    entries.push_back({verified->public_key.get(), k.alg, k.kid});
    if (k.state == KeyState::kActive) {
      auto signing = std::make_shared<token::SigningKey>();
      signing->private_key = verified->private_key;
      signing->public_key = verified->public_key;
      signing->alg = k.alg;
      signing->kid = k.kid;
      signing->ops = verified->ops;
      state->active = std::move(signing);
    }
  }
  auto jwks = token::BuildJwks(entries);
  if (!jwks.ok())
    return Prefix(jwks.status(),
                  absl::StrCat("keyset ", record.issuer, " jwks"));
  state->jwks_json = jwks->dump();
  state->next_change = NextPublicationChange(record, now).value_or(0);
  state->record = std::move(record);
  return StatePtr(std::move(state));
}

KeysetManager::StatePtr KeysetManager::UnavailableState(
    std::string_view issuer, const absl::Status& why) const {
  auto state = std::make_shared<IssuerState>();
  state->record.issuer = std::string(issuer);
  state->unavailable = std::string(why.message());
  state->jwks_json = R"({"keys":[]})";
  return state;
}

void KeysetManager::Swap(const std::string& issuer, StatePtr state) {
  std::unique_lock lock(mu_);
  issuers_[issuer] = std::move(state);
}

absl::Status KeysetManager::ReloadIssuer(const std::string& issuer,
                                         StatePtr current, bool* changed) {
  *changed = false;
  const int64_t old_generation =
      current != nullptr ? current->record.generation : 0;
  auto rejected = [&](std::string detail, int64_t new_generation,
                      std::string_view topic = "record") {
    Report({KeysetEvent::Kind::kRejected, issuer, old_generation,
            new_generation, "", std::move(detail)},
           topic);
  };
  auto lookalikes = records_.PublicLookalikes(issuer);
  if (!lookalikes.ok()) return lookalikes.status();
  if (*lookalikes > 0) {
    rejected(absl::StrCat(*lookalikes, " public object(s) named ",
                          KeysetObjectName(issuer),
                          " ignored: records are private HSM objects; these "
                          "were created without the PIN"),
             old_generation, "lookalike");
  }
  auto rec = records_.Read(issuer);
  if (!rec.ok()) {
    if (absl::IsUnavailable(rec.status())) return rec.status();
    rejected(std::string(rec.status().message()), old_generation);
    if (current == nullptr) {
      Swap(issuer, UnavailableState(issuer, rec.status()));
      return absl::OkStatus();
    }
    return rec.status();  // keep the last good keyset
  }
  const bool expired = current != nullptr && current->next_change != 0 &&
                       absl::ToUnixSeconds(clock_()) >= current->next_change;
  if (current != nullptr && !expired &&
      SerializeKeysetRecord(*rec) == SerializeKeysetRecord(current->record)) {
    return absl::OkStatus();  // unchanged
  }
  const int64_t new_generation = rec->generation;
  auto built = BuildState(*std::move(rec));
  if (!built.ok()) return built.status();
  StatePtr next = *std::move(built);
  std::string problems;
  for (const auto& [kid, why] : next->rejected)
    absl::StrAppend(&problems, problems.empty() ? "" : "; ", "key ", kid, ": ",
                    why);
  if (current != nullptr && !next->clean()) {
    // Keep a working keyset rather than adopt one whose keys fail checks;
    // replace a keyset that was already broken unless that loses signing.
    const bool loses_signing =
        next->active == nullptr && current->active != nullptr;
    if (current->clean() || loses_signing) {
      rejected(absl::StrCat("generation ", new_generation, " not adopted: ",
                            problems),
               new_generation);
      return absl::FailedPreconditionError(absl::StrCat(
          "keyset ", issuer, ": generation ", new_generation,
          " not adopted, keeping generation ", old_generation, ": ", problems));
    }
  }
  if (!next->clean()) rejected(problems, new_generation);
  if (current != nullptr) {
    Report({KeysetEvent::Kind::kChanged, issuer, old_generation,
            new_generation, "",
            absl::StrCat(KeyStates(current->record), " -> ",
                         KeyStates(next->record))});
  }
  Swap(issuer, std::move(next));
  *changed = true;
  return absl::OkStatus();
}

absl::Status KeysetManager::Load(const std::vector<std::string>& issuers) {
  {
    std::lock_guard admin(admin_mu_);
    // Issuers already loaded keep serving while they are re-read (a SIGHUP
    // never leaves a moment without them); the others are dropped at the end.
    for (const std::string& issuer : issuers) {
      StatePtr current;
      {
        std::shared_lock lock(mu_);
        if (auto it = issuers_.find(issuer); it != issuers_.end())
          current = it->second;
      }
      bool changed = false;
      absl::Status st = ReloadIssuer(issuer, current, &changed);
      if (!st.ok() && current == nullptr) {
        // First load and the HSM could not be read: the issuer exists but
        // cannot sign until a refresh succeeds.
        Swap(issuer, UnavailableState(issuer, st));
      }
    }
    std::unique_lock lock(mu_);
    for (auto it = issuers_.begin(); it != issuers_.end();) {
      if (std::find(issuers.begin(), issuers.end(), it->first) == issuers.end())
        it = issuers_.erase(it);
      else
        ++it;
    }
  }
  Flush();
  return absl::OkStatus();
}

absl::StatusOr<int> KeysetManager::Refresh() {
  int changed_count = 0;
  absl::Status first_error;
  {
    std::lock_guard admin(admin_mu_);
    std::vector<std::pair<std::string, StatePtr>> current;
    {
      std::shared_lock lock(mu_);
      current.assign(issuers_.begin(), issuers_.end());
    }
    for (const auto& [issuer, state] : current) {
      // A state that never loaded (HSM unreadable at start) counts as none.
      StatePtr base = state;
      if (base->record.generation == 0 && base->record.keys.empty() &&
          !base->unavailable.empty()) {
        base = nullptr;
      }
      bool changed = false;
      absl::Status st = ReloadIssuer(issuer, base, &changed);
      if (!st.ok() && first_error.ok()) first_error = st;
      if (changed) ++changed_count;
    }
  }
  Flush();
  if (!first_error.ok()) return first_error;
  return changed_count;
}

absl::StatusOr<KeysetManager::StatePtr> KeysetManager::State(
    std::string_view issuer) const {
  std::shared_lock lock(mu_);
  auto it = issuers_.find(issuer);
  if (it == issuers_.end()) {
    return absl::NotFoundError(
        absl::StrCat("issuer: unknown issuer \"", S(issuer), "\""));
  }
  return it->second;
}

absl::StatusOr<std::shared_ptr<const token::SigningKey>>
KeysetManager::ActiveKey(std::string_view issuer) const {
  auto state = State(issuer);
  if (!state.ok()) return state.status();
  if ((*state)->active == nullptr) {
    if (!(*state)->unavailable.empty()) {
      return absl::FailedPreconditionError(absl::StrCat(
          "issuer ", S(issuer), ": ", (*state)->unavailable));
    }
    return absl::FailedPreconditionError(
        absl::StrCat("issuer ", S(issuer), ": no active key in its keyset"));
  }
  return (*state)->active;
}

absl::StatusOr<KeysetManager::VerificationKey>
KeysetManager::VerificationKeyFor(std::string_view issuer,
                                  std::string_view kid) const {
  auto state = State(issuer);
  if (!state.ok()) return state.status();
  auto it = (*state)->public_keys.find(std::string(kid));
  const KeyRecord* rec = (*state)->record.FindByKid(kid);
  if (it == (*state)->public_keys.end() || rec == nullptr) {
    return absl::NotFoundError(absl::StrCat(
        "kid: \"", S(kid), "\" is not a published key of issuer ", S(issuer)));
  }
  return VerificationKey{it->second, rec->alg, rec->state};
}

absl::StatusOr<std::string> KeysetManager::Jwks(std::string_view issuer) const {
  auto state = State(issuer);
  if (!state.ok()) return state.status();
  return (*state)->jwks_json;
}

absl::StatusOr<KeysetRecord> KeysetManager::Keyset(
    std::string_view issuer) const {
  auto state = State(issuer);
  if (!state.ok()) return state.status();
  return (*state)->record;
}

std::map<std::string, int64_t> KeysetManager::ActiveKeyAges() const {
  std::map<std::string, int64_t> ages;
  int64_t now = absl::ToUnixSeconds(clock_());
  std::shared_lock lock(mu_);
  for (const auto& [name, state] : issuers_) {
    if (const KeyRecord* k = state->record.Active(); k != nullptr) {
      ages[name] = now - k->activated_at;
    }
  }
  return ages;
}

absl::Status KeysetManager::Commit(const KeysetRecord& base,
                                   KeysetRecord next) {
  const std::string issuer = base.issuer;
  auto state = State(issuer);
  if (!state.ok()) return state.status();
  // Records written before keys carried their public key get it now, from the
  // keys this daemon proved at load.
  for (KeyRecord& k : next.keys) {
    if (!k.spki.empty()) continue;
    if (auto it = (*state)->proven_spki.find(k.id);
        it != (*state)->proven_spki.end()) {
      k.spki = it->second;
    }
  }
  const int64_t now = absl::ToUnixSeconds(clock_());
  next.generation = base.generation + 1;
  next.writer = RandomWriterId();
  next.written_at = now;
  auto built = BuildState(next);
  if (!built.ok()) return built.status();
  if ((*built)->active == nullptr && (*built)->record.Active() != nullptr) {
    return absl::FailedPreconditionError(absl::StrCat(
        "keyset ", issuer, ": not written: ", (*built)->unavailable));
  }
  auto written = records_.Write(base, std::move(next), now);
  if (!written.ok()) return written.status();
  if (!written->written) {
    const int64_t theirs = written->current.generation;
    bool changed = false;
    (void)ReloadIssuer(issuer, *state, &changed);  // adopt theirs if it checks
    return absl::AbortedError(absl::StrCat(
        "keyset ", issuer, ": another writer changed it first (generation ",
        theirs, " on the token, this daemon had ", base.generation,
        "); nothing changed here, reloaded it, retry the operation"));
  }
  Swap(issuer, *std::move(built));
  return absl::OkStatus();
}

LifecyclePolicy KeysetManager::PolicyFor(const std::string& issuer) const {
  auto it = policies_.find(issuer);
  return it != policies_.end() ? it->second : LifecyclePolicy{};
}

void KeysetManager::SetPolicies(std::map<std::string, LifecyclePolicy> policies) {
  std::lock_guard admin(admin_mu_);
  policies_ = std::move(policies);
}

absl::StatusOr<KeyRecord> KeysetManager::CreateKeyLocked(
    const std::string& issuer, hsm::SignAlgorithm alg, int64_t activate_at) {
  auto state = State(issuer);
  if (!state.ok()) return state.status();
  hsm::KeyType type = hsm::KeyTypeFor(alg);
  int rsa_bits = type == hsm::KeyType::kRsa ? 2048 : 0;
  const int64_t now = absl::ToUnixSeconds(clock_());
  if (absl::Status st = CheckCreate((*state)->record, PolicyFor(issuer), alg, now);
      !st.ok()) {
    return st;
  }
  auto info = hsm_->GenerateKey(type, KeyLabel(issuer, now), rsa_bits);
  if (!info.ok())
    return Prefix(info.status(),
                  absl::StrCat("keyset ", S(issuer), ": create key"));
  auto discard = [&](absl::Status st) {
    // Never leave a key no record names; if this fails, SweepOrphans will.
    (void)hsm_->DestroyKey(info->id);
    return st;
  };
  auto pub = hsm::ParseSpki(info->spki_der);
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
        "kid: key ", S(kid), " failed its checks and cannot activate: ",
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
    std::string_view issuer, hsm::SignAlgorithm alg) {
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
                                                   hsm::SignAlgorithm alg) {
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
                                                  hsm::SignAlgorithm alg,
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
    std::map<std::string, std::optional<KeysetRecord>> records;  // by issuer
    for (const hsm::KeyInfo& key : *keys) {
      auto label = ParseKeyLabel(key.label);
      if (!label || std::find(issuers.begin(), issuers.end(), label->first) ==
                        issuers.end()) {
        continue;  // not an issuer key of this daemon
      }
      const std::string& issuer = label->first;
      if (!records.count(issuer)) {
        // Fresh from the token, never this daemon's possibly stale copy.
        auto rec = records_.Read(issuer);
        if (!rec.ok()) {
          if (first_error.ok()) first_error = rec.status();
          records[issuer] = std::nullopt;
        } else {
          records[issuer] = *std::move(rec);
        }
      }
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
      hsm::SignAlgorithm alg = !policy.algorithms.empty()
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
