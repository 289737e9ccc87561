#include "signer/keyset/keyset_manager.h"

#include <algorithm>
#include <optional>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "signer/keyset/hsm_jws_signer.h"
#include "signer/keyset/keyset_internal.h"
#include "signer/token/jwk.h"

namespace tokensign::keyset {
using internal::KeyLabel;
using internal::KeyStates;
using internal::ParseKeyLabel;

namespace {

// Whether a key of these records is proven against the token's public object
// (a record written before keys carried their SPKI): only then does the key
// scan read the public objects too.
bool NeedsPublicObjects(
    const absl::StatusOr<std::map<std::string, IssuerRecords>>& read) {
  if (!read.ok()) return false;
  for (const auto& [issuer, records] : *read) {
    if (!records.current.ok()) continue;
    for (const KeyRecord& k : records.current->keys) {
      if (k.spki.empty()) return true;
    }
  }
  return false;
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
  const std::string key = absl::StrCat(event.issuer, "/", AbslView(topic));
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
    KeysetRecord record, KeyScanOnce* scan) const {
  auto state = std::make_shared<IssuerState>();
  std::vector<token::JwksEntry> entries;
  const int64_t now = absl::ToUnixSeconds(clock_());
  for (const KeyRecord& k : record.keys) {
    // Withdrawn, destroyed and expired keys are neither published nor used.
    if (!Published(k, now)) continue;
    const hsm::KeyScan* found = nullptr;
    if (scan != nullptr) {
      auto got = scan->Get();
      if (!got.ok()) {
        return Prefix(got.status(),
                      absl::StrCat("keyset ", record.issuer, " key ", k.kid));
      }
      found = *got;
    }
    auto verified = VerifyRecordedKey(*hsm_, private_keys_, k, found);
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
      // One JwsSigner per key, built here once: tokens are signed through
      // the hsm facade directly (no EVP round trip through the provider).
      auto signer = HsmJwsSigner::Create(hsm_, k.id, k.alg, verified->public_key);
      if (!signer.ok()) {
        std::string why(signer.status().message());
        state->rejected[k.kid] = why;
        state->unavailable =
            absl::StrCat("active key ", k.kid, " is not usable: ", why);
        continue;
      }
      auto signing = std::make_shared<token::SigningKey>();
      signing->signer = *std::move(signer);
      signing->public_key = verified->public_key;
      signing->alg = k.alg;
      signing->kid = k.kid;
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
                                         StatePtr current, bool* changed,
                                         const IssuerRecords* read,
                                         KeyScanOnce* scan) {
  *changed = false;
  const int64_t old_generation =
      current != nullptr ? current->record.generation : 0;
  auto rejected = [&](std::string detail, int64_t new_generation,
                      std::string_view topic = "record") {
    Report({KeysetEvent::Kind::kRejected, issuer, old_generation,
            new_generation, "", std::move(detail)},
           topic);
  };
  // Read here unless Load/Refresh read every issuer in one search.
  IssuerRecords own;
  if (read == nullptr) {
    auto lookalikes = records_.PublicLookalikes(issuer);
    if (!lookalikes.ok()) return lookalikes.status();
    own.lookalikes = *lookalikes;
    own.current = records_.Read(issuer);
    read = &own;
  }
  if (read->lookalikes > 0) {
    rejected(absl::StrCat(read->lookalikes, " public object(s) named ",
                          KeysetObjectName(issuer),
                          " ignored: records are private HSM objects; these "
                          "were created without the PIN"),
             old_generation, "lookalike");
  }
  absl::StatusOr<KeysetRecord> rec = read->current;
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
  auto built = BuildState(*std::move(rec), scan);
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

absl::Status KeysetManager::Load(const std::vector<std::string>& issuers,
                                 const hsm::DataScan* records) {
  {
    std::lock_guard admin(admin_mu_);
    // Issuers already loaded keep serving while they are re-read (a SIGHUP
    // never leaves a moment without them); the others are dropped at the end.
    // Every record is read in one search of the token.
    auto read = records_.ReadEvery(issuers, records);
    // and every key in one scan, if any is checked
    KeyScanOnce scan(*hsm_, NeedsPublicObjects(read));
    for (const std::string& issuer : issuers) {
      StatePtr current;
      {
        std::shared_lock lock(mu_);
        if (auto it = issuers_.find(issuer); it != issuers_.end())
          current = it->second;
      }
      bool changed = false;
      absl::Status st =
          read.ok() ? ReloadIssuer(issuer, current, &changed,
                                   &read->at(issuer), &scan)
                    : read.status();
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
    std::vector<std::string> names;
    for (const auto& entry : current) names.push_back(entry.first);
    auto read = records_.ReadEvery(names);  // one search for all issuers
    if (!read.ok()) first_error = read.status();
    // keys of changed records: one scan for all
    KeyScanOnce scan(*hsm_, NeedsPublicObjects(read));
    for (const auto& [issuer, state] : current) {
      if (!read.ok()) break;
      // A state that never loaded (HSM unreadable at start) counts as none.
      StatePtr base = state;
      if (base->record.generation == 0 && base->record.keys.empty() &&
          !base->unavailable.empty()) {
        base = nullptr;
      }
      bool changed = false;
      absl::Status st =
          ReloadIssuer(issuer, base, &changed, &read->at(issuer), &scan);
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
        absl::StrCat("issuer: unknown issuer \"", AbslView(issuer), "\""));
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
          "issuer ", AbslView(issuer), ": ", (*state)->unavailable));
    }
    return absl::FailedPreconditionError(
        absl::StrCat("issuer ", AbslView(issuer), ": no active key in its keyset"));
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
        "kid: \"", AbslView(kid), "\" is not a published key of issuer ", AbslView(issuer)));
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

}  // namespace tokensign::keyset
