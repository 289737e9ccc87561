#include "signer/keyset/keyset_manager.h"

#include <optional>
#include <utility>

#include "absl/strings/str_cat.h"
#include "signer/token/jwk.h"

namespace tokensign::keyset {
namespace {

std::shared_ptr<EVP_PKEY> Share(hsm::UniquePkey key) {
  return std::shared_ptr<EVP_PKEY>(key.release(), EVP_PKEY_free);
}

// Debian's abseil has its own string_view; StrCat needs it.
absl::string_view S(std::string_view s) {
  return absl::string_view(s.data(), s.size());
}

absl::Status Prefix(const absl::Status& st, std::string_view what) {
  return absl::Status(st.code(), absl::StrCat(S(what), ": ", st.message()));
}

// The key `kid` of `record` (to be modified), or NotFound naming the kid and issuer.
absl::StatusOr<KeyRecord*> FindKey(KeysetRecord& record, std::string_view issuer,
                                   std::string_view kid) {
  KeyRecord* k = record.FindByKid(kid);
  if (k == nullptr) {
    return absl::NotFoundError(
        absl::StrCat("kid: no key \"", S(kid), "\" for issuer ", S(issuer)));
  }
  return k;
}

}  // namespace

KeysetManager::KeysetManager(std::shared_ptr<hsm::Hsm> hsm,
                             PrivateKeyLoader private_keys, Clock clock)
    : hsm_(std::move(hsm)),
      private_keys_(std::move(private_keys)),
      clock_(std::move(clock)) {}

absl::StatusOr<KeysetRecord> KeysetManager::ReadRecord(
    std::string_view issuer) const {
  auto data = hsm_->GetAllData(KeysetObjectName(issuer));
  if (!data.ok())
    return Prefix(data.status(), absl::StrCat("keyset ", S(issuer)));
  if (data->empty()) {
    KeysetRecord empty;
    empty.issuer = std::string(issuer);
    return empty;
  }
  // Normally one record; after a crash mid-write, the newer generation wins
  // (the next write removes the other).
  std::optional<KeysetRecord> newest;
  std::string newest_text;
  for (const std::string& text : *data) {
    auto rec = ParseKeysetRecord(text);
    if (!rec.ok())
      return Prefix(rec.status(), absl::StrCat("keyset ", S(issuer)));
    if (rec->issuer != issuer) {
      return absl::DataLossError(absl::StrCat(
          "keyset ", S(issuer), ": record names issuer \"", rec->issuer, "\""));
    }
    if (newest.has_value() && rec->generation == newest->generation &&
        text != newest_text) {
      return absl::DataLossError(absl::StrCat(
          "keyset ", S(issuer), ": two different records of generation ",
          rec->generation, " on the token (concurrent writers?); keep one with "
          "pkcs11-tool --delete-object --type data --label ",
          KeysetObjectName(issuer)));
    }
    if (!newest.has_value() || rec->generation > newest->generation) {
      newest = *std::move(rec);
      newest_text = text;
    }
  }
  return *std::move(newest);
}

absl::StatusOr<std::shared_ptr<const KeysetManager::IssuerState>>
KeysetManager::BuildState(KeysetRecord record) const {
  auto state = std::make_shared<IssuerState>();
  std::vector<token::JwksEntry> entries;
  for (const KeyRecord& k : record.keys) {
    if (k.state == KeyState::kDestroyed) continue;
    auto pub = hsm_->PublicKey(k.id);
    if (!pub.ok()) {
      return Prefix(pub.status(),
                    absl::StrCat("keyset ", record.issuer, " key ", k.kid));
    }
    std::shared_ptr<EVP_PKEY> shared = Share(std::move(*pub));
    state->public_keys[k.kid] = shared;
    entries.push_back({shared.get(), k.alg, k.kid});
    if (k.state == KeyState::kActive) {
      auto priv = private_keys_(k.id);
      if (!priv.ok()) {
        return Prefix(priv.status(), absl::StrCat("keyset ", record.issuer,
                                                  " private key ", k.kid));
      }
      auto signing = std::make_shared<token::SigningKey>();
      signing->private_key = *priv;
      signing->public_key = shared;
      signing->alg = k.alg;
      signing->kid = k.kid;
      auto ops = token::KeyOps::Create(signing->private_key, shared, k.alg);
      if (!ops.ok()) {
        return Prefix(ops.status(), absl::StrCat("keyset ", record.issuer,
                                                 " key ", k.kid));
      }
      signing->ops = *std::move(ops);
      state->active = std::move(signing);
    }
  }
  auto jwks = token::BuildJwks(entries);
  if (!jwks.ok())
    return Prefix(jwks.status(),
                  absl::StrCat("keyset ", record.issuer, " jwks"));
  state->jwks_json = jwks->dump();
  state->record = std::move(record);
  return std::shared_ptr<const IssuerState>(std::move(state));
}

absl::Status KeysetManager::Load(const std::vector<std::string>& issuers) {
  std::lock_guard admin(admin_mu_);
  std::map<std::string, std::shared_ptr<const IssuerState>, std::less<>> next;
  for (const std::string& issuer : issuers) {
    auto rec = ReadRecord(issuer);
    if (!rec.ok()) return rec.status();
    auto state = BuildState(std::move(*rec));
    if (!state.ok()) return state.status();
    next.emplace(issuer, std::move(*state));
  }
  std::unique_lock lock(mu_);
  issuers_ = std::move(next);
  return absl::OkStatus();
}

absl::Status KeysetManager::Install(KeysetRecord record) {
  std::string issuer = record.issuer;
  auto state = BuildState(std::move(record));
  if (!state.ok()) return state.status();
  std::unique_lock lock(mu_);
  issuers_[issuer] = std::move(*state);
  return absl::OkStatus();
}

absl::StatusOr<int> KeysetManager::Refresh() {
  std::lock_guard admin(admin_mu_);
  std::vector<std::pair<std::string, std::shared_ptr<const IssuerState>>> current;
  {
    std::shared_lock lock(mu_);
    current.assign(issuers_.begin(), issuers_.end());
  }
  int changed = 0;
  absl::Status first_error;
  for (const auto& [issuer, state] : current) {
    auto rec = ReadRecord(issuer);
    if (rec.ok() &&
        SerializeKeysetRecord(*rec) == SerializeKeysetRecord(state->record)) {
      continue;  // unchanged
    }
    absl::Status st = rec.ok() ? Install(*std::move(rec)) : rec.status();
    if (!st.ok()) {
      if (first_error.ok()) first_error = st;
      continue;
    }
    ++changed;
  }
  if (!first_error.ok()) return first_error;
  return changed;
}

absl::StatusOr<std::shared_ptr<const KeysetManager::IssuerState>>
KeysetManager::State(std::string_view issuer) const {
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
    return absl::FailedPreconditionError(
        absl::StrCat("issuer ", S(issuer), ": no active key in its keyset"));
  }
  return (*state)->active;
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

absl::Status KeysetManager::Commit(KeysetRecord record) {
  std::string issuer = record.issuer;
  // Optimistic concurrency: `record` derives from this daemon's copy; if
  // another replica wrote the token's record since, adopt theirs and make the
  // caller retry rather than overwrite their change.
  auto on_token = ReadRecord(issuer);
  if (!on_token.ok()) return on_token.status();
  if (on_token->generation != record.generation) {
    const int64_t mine = record.generation;
    const int64_t theirs = on_token->generation;
    (void)Install(*std::move(on_token));  // if it fails, the next read retries
    return absl::AbortedError(absl::StrCat(
        "keyset ", S(issuer), ": changed on the token since this daemon read "
        "it (generation ", theirs, ", had ", mine,
        "); reloaded it, retry the operation"));
  }
  ++record.generation;
  auto state = BuildState(record);
  if (!state.ok()) return state.status();
  absl::Status st =
      hsm_->PutData(KeysetObjectName(issuer), SerializeKeysetRecord(record));
  if (!st.ok())
    return Prefix(st, absl::StrCat("keyset ", S(issuer), ": writing record"));
  std::unique_lock lock(mu_);
  issuers_[issuer] = std::move(*state);
  return absl::OkStatus();
}

absl::StatusOr<KeyRecord> KeysetManager::CreateKeyLocked(
    const std::string& issuer, hsm::SignAlgorithm alg) {
  auto state = State(issuer);
  if (!state.ok()) return state.status();
  hsm::KeyType type = hsm::KeyTypeFor(alg);
  int rsa_bits = type == hsm::KeyType::kRsa ? 2048 : 0;
  absl::Time now = clock_();
  std::string label =
      absl::StrCat("tokensign:", S(issuer), ":", absl::ToUnixSeconds(now));
  auto info = hsm_->GenerateKey(type, label, rsa_bits);
  if (!info.ok())
    return Prefix(info.status(),
                  absl::StrCat("keyset ", S(issuer), ": create key"));
  auto pub = hsm_->PublicKey(info->id);
  if (!pub.ok()) return pub.status();
  auto kid = token::JwkThumbprint(pub->get());
  if (!kid.ok()) return kid.status();
  KeyRecord rec;
  rec.id = info->id;
  rec.kid = *kid;
  rec.alg = alg;
  rec.state = KeyState::kPending;
  rec.created_at = absl::ToUnixSeconds(now);
  KeysetRecord next = (*state)->record;
  next.keys.push_back(rec);
  absl::Status st = Commit(std::move(next));
  if (!st.ok()) {
    (void)hsm_->DestroyKey(info->id);  // do not leave an unrecorded key behind
    return st;
  }
  return rec;
}

absl::StatusOr<KeyRecord> KeysetManager::ActivateKeyLocked(
    const std::string& issuer, std::string_view kid) {
  auto state = State(issuer);
  if (!state.ok()) return state.status();
  KeysetRecord next = (*state)->record;
  auto found = FindKey(next, issuer, kid);
  if (!found.ok()) return found.status();
  KeyRecord* k = *found;
  if (k->state != KeyState::kPending) {
    return absl::FailedPreconditionError(
        absl::StrCat("kid: key ", S(kid), " is ", KeyStateName(k->state),
                     "; only a pending key can activate"));
  }
  int64_t now = absl::ToUnixSeconds(clock_());
  for (KeyRecord& other : next.keys) {
    if (other.state == KeyState::kActive) {
      other.state = KeyState::kRetired;
      other.retired_at = now;
    }
  }
  k->state = KeyState::kActive;
  k->activated_at = now;
  KeyRecord result = *k;
  absl::Status st = Commit(std::move(next));
  if (!st.ok()) return st;
  return result;
}

absl::StatusOr<KeyRecord> KeysetManager::EnsureActiveKey(
    std::string_view issuer, hsm::SignAlgorithm alg) {
  std::lock_guard admin(admin_mu_);
  auto state = State(issuer);
  if (!state.ok()) return state.status();
  if (const KeyRecord* k = (*state)->record.Active(); k != nullptr) return *k;
  auto created = CreateKeyLocked(std::string(issuer), alg);
  if (!created.ok()) return created.status();
  return ActivateKeyLocked(std::string(issuer), created->kid);
}

absl::StatusOr<KeyRecord> KeysetManager::CreateKey(std::string_view issuer,
                                                   hsm::SignAlgorithm alg) {
  std::lock_guard admin(admin_mu_);
  return CreateKeyLocked(std::string(issuer), alg);
}

absl::StatusOr<KeyRecord> KeysetManager::ActivateKey(std::string_view issuer,
                                                     std::string_view kid) {
  std::lock_guard admin(admin_mu_);
  return ActivateKeyLocked(std::string(issuer), kid);
}

absl::StatusOr<Rotation> KeysetManager::RotateKey(std::string_view issuer,
                                                  hsm::SignAlgorithm alg) {
  std::lock_guard admin(admin_mu_);
  auto state = State(issuer);
  if (!state.ok()) return state.status();
  std::optional<KeyRecord> previous;
  if (const KeyRecord* k = (*state)->record.Active(); k != nullptr)
    previous = *k;
  auto created = CreateKeyLocked(std::string(issuer), alg);
  if (!created.ok()) return created.status();
  auto active = ActivateKeyLocked(std::string(issuer), created->kid);
  if (!active.ok()) return active.status();
  Rotation r{*active, std::nullopt};
  if (previous) {
    auto now_state = State(issuer);
    if (!now_state.ok()) return now_state.status();
    KeysetRecord rec = (*now_state)->record;
    if (KeyRecord* k = rec.FindByKid(previous->kid); k != nullptr)
      r.retired = *k;
  }
  return r;
}

absl::StatusOr<KeyRecord> KeysetManager::RetireKey(std::string_view issuer,
                                                   std::string_view kid) {
  std::lock_guard admin(admin_mu_);
  auto state = State(issuer);
  if (!state.ok()) return state.status();
  KeysetRecord next = (*state)->record;
  auto found = FindKey(next, issuer, kid);
  if (!found.ok()) return found.status();
  KeyRecord* k = *found;
  if (k->state != KeyState::kPending && k->state != KeyState::kActive) {
    return absl::FailedPreconditionError(
        absl::StrCat("kid: key ", S(kid), " is ", KeyStateName(k->state),
                     "; only pending/active can retire"));
  }
  k->state = KeyState::kRetired;
  k->retired_at = absl::ToUnixSeconds(clock_());
  KeyRecord result = *k;
  absl::Status st = Commit(std::move(next));
  if (!st.ok()) return st;
  return result;
}

absl::StatusOr<KeyRecord> KeysetManager::DestroyKey(
    std::string_view issuer, std::string_view kid, bool force,
    absl::Duration live_window) {
  std::lock_guard admin(admin_mu_);
  auto state = State(issuer);
  if (!state.ok()) return state.status();
  KeysetRecord next = (*state)->record;
  auto found = FindKey(next, issuer, kid);
  if (!found.ok()) return found.status();
  KeyRecord* k = *found;
  if (k->state == KeyState::kDestroyed) {
    return absl::FailedPreconditionError(
        absl::StrCat("kid: key ", S(kid), " is already destroyed"));
  }
  int64_t now = absl::ToUnixSeconds(clock_());
  if (!force && k->state == KeyState::kActive) {
    return absl::FailedPreconditionError(absl::StrCat(
        "kid: key ", S(kid), " is active; retire it first or force"));
  }
  if (!force && k->state == KeyState::kRetired &&
      now < k->retired_at + absl::ToInt64Seconds(live_window)) {
    return absl::FailedPreconditionError(
        absl::StrCat("kid: key ", S(kid), " was retired at ", k->retired_at,
                     "; tokens it signed may still be live; wait or force"));
  }
  absl::Status st = hsm_->DestroyKey(k->id);
  if (!st.ok())
    return Prefix(st, absl::StrCat("keyset ", S(issuer), ": destroy ", S(kid)));
  k->state = KeyState::kDestroyed;
  if (k->retired_at == 0) k->retired_at = now;
  KeyRecord result = *k;
  st = Commit(std::move(next));
  if (!st.ok()) return st;
  return result;
}

}  // namespace tokensign::keyset
