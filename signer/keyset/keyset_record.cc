#include "signer/keyset/keyset_record.h"

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "crypto/algorithm.h"
#include "nlohmann/json.hpp"

namespace tokensign::keyset {
namespace {

absl::Status Bad(const std::string& field, const std::string& rule) {
  return absl::InvalidArgumentError("keyset record " + field + ": " + rule);
}

}  // namespace

const char* KeyStateName(KeyState state) {
  switch (state) {
    case KeyState::kPending:
      return "pending";
    case KeyState::kActive:
      return "active";
    case KeyState::kRetired:
      return "retired";
    case KeyState::kWithdrawn:
      return "withdrawn";
    case KeyState::kDestroyed:
      return "destroyed";
  }
  return "?";
}

std::optional<KeyState> ParseKeyState(std::string_view name) {
  for (KeyState s : {KeyState::kPending, KeyState::kActive, KeyState::kRetired,
                     KeyState::kWithdrawn, KeyState::kDestroyed}) {
    if (name == KeyStateName(s)) return s;
  }
  return std::nullopt;
}

const KeyRecord* KeysetRecord::Active() const {
  for (const KeyRecord& k : keys) {
    if (k.state == KeyState::kActive) return &k;
  }
  return nullptr;
}

const KeyRecord* KeysetRecord::FindByKid(std::string_view kid) const {
  for (const KeyRecord& k : keys) {
    if (k.kid == kid) return &k;
  }
  return nullptr;
}

KeyRecord* KeysetRecord::FindByKid(std::string_view kid) {
  for (KeyRecord& k : keys) {
    if (k.kid == kid) return &k;
  }
  return nullptr;
}

const KeysetRecord* CurrentRecord(const std::vector<KeysetRecord>& records) {
  const KeysetRecord* best = nullptr;
  for (const KeysetRecord& r : records) {
    if (best == nullptr || r.generation > best->generation ||
        (r.generation == best->generation && r.writer < best->writer)) {
      best = &r;
    }
  }
  return best;
}

std::string KeysetObjectName(std::string_view issuer) {
  return "keyset/" + std::string(issuer);
}

std::string SerializeKeysetRecord(const KeysetRecord& record) {
  nlohmann::json keys = nlohmann::json::array();
  for (const KeyRecord& k : record.keys) {
    nlohmann::json key = {{"id", k.id},
                          {"kid", k.kid},
                          {"alg", std::string(crypto::SignAlgorithmName(k.alg))},
                          {"state", KeyStateName(k.state)},
                          {"created_at", k.created_at},
                          {"activated_at", k.activated_at},
                          {"retired_at", k.retired_at}};
    for (auto [name, value] : {std::pair{"activate_at", k.activate_at},
                               std::pair{"expires_at", k.expires_at},
                               std::pair{"withdrawn_at", k.withdrawn_at}}) {
      if (value != 0) key[name] = value;
    }
    if (!k.spki.empty()) {
      key["spki"] = absl::WebSafeBase64Escape(
          absl::string_view(k.spki.data(), k.spki.size()));
    }
    keys.push_back(std::move(key));
  }
  nlohmann::json j = {{"issuer", record.issuer},
                      {"generation", record.generation},
                      {"keys", std::move(keys)}};
  if (!record.writer.empty()) j["writer"] = record.writer;
  if (record.written_at != 0) j["written_at"] = record.written_at;
  if (record.next_rotation_at != 0)
    j["next_rotation_at"] = record.next_rotation_at;
  return j.dump();
}

absl::StatusOr<KeysetRecord> ParseKeysetRecord(std::string_view json_text) {
  nlohmann::json j =
      nlohmann::json::parse(json_text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) return Bad("", "not a JSON object");
  KeysetRecord rec;
  if (!j.contains("issuer") || !j["issuer"].is_string())
    return Bad("issuer", "must be a string");
  rec.issuer = j["issuer"].get<std::string>();
  if (j.contains("generation")) {  // absent in records written before it existed
    if (!j["generation"].is_number_integer() || j["generation"].get<int64_t>() < 0)
      return Bad("generation", "must be a non-negative integer");
    rec.generation = j["generation"].get<int64_t>();
  }
  if (j.contains("writer")) {
    if (!j["writer"].is_string() || j["writer"].get<std::string>().size() > 64)
      return Bad("writer", "must be a string of at most 64 characters");
    rec.writer = j["writer"].get<std::string>();
  }
  if (j.contains("written_at")) {
    if (!j["written_at"].is_number_integer())
      return Bad("written_at", "must be an integer");
    rec.written_at = j["written_at"].get<int64_t>();
  }
  if (j.contains("next_rotation_at")) {
    if (!j["next_rotation_at"].is_number_integer())
      return Bad("next_rotation_at", "must be an integer");
    rec.next_rotation_at = j["next_rotation_at"].get<int64_t>();
  }
  if (!j.contains("keys") || !j["keys"].is_array())
    return Bad("keys", "must be an array");
  int active = 0;
  for (size_t i = 0; i < j["keys"].size(); ++i) {
    const nlohmann::json& e = j["keys"][i];
    std::string f = absl::StrCat("keys[", i, "]");
    if (!e.is_object()) return Bad(f, "must be an object");
    KeyRecord k;
    for (const char* name : {"id", "kid", "alg", "state"}) {
      if (!e.contains(name) || !e[name].is_string() ||
          e[name].get<std::string>().empty()) {
        return Bad(absl::StrCat(f, ".", name), "must be a non-empty string");
      }
    }
    k.id = e["id"].get<std::string>();
    k.kid = e["kid"].get<std::string>();
    if (e.contains("spki")) {
      std::string der;
      if (!e["spki"].is_string() ||
          !absl::WebSafeBase64Unescape(e["spki"].get<std::string>(), &der) ||
          der.empty()) {
        return Bad(absl::StrCat(f, ".spki"),
                   "must be base64url of a DER SubjectPublicKeyInfo");
      }
      k.spki = std::move(der);
    }
    auto alg = crypto::ParseSignAlgorithm(e["alg"].get<std::string>());
    if (!alg) return Bad(absl::StrCat(f, ".alg"), "unknown algorithm");
    k.alg = *alg;
    auto state = ParseKeyState(e["state"].get<std::string>());
    if (!state)
      return Bad(absl::StrCat(f, ".state"),
                 "must be pending|active|retired|withdrawn|destroyed");
    k.state = *state;
    if (k.state == KeyState::kActive) ++active;
    for (auto [name, out] : {std::pair{"created_at", &k.created_at},
                             std::pair{"activated_at", &k.activated_at},
                             std::pair{"retired_at", &k.retired_at},
                             std::pair{"activate_at", &k.activate_at},
                             std::pair{"expires_at", &k.expires_at},
                             std::pair{"withdrawn_at", &k.withdrawn_at}}) {
      if (!e.contains(name)) continue;
      if (!e[name].is_number_integer())
        return Bad(absl::StrCat(f, ".", name), "must be an integer");
      *out = e[name].get<int64_t>();
    }
    rec.keys.push_back(std::move(k));
  }
  if (active > 1)
    return Bad("keys",
               absl::StrCat(active, " active keys; at most one allowed"));
  return rec;
}

}  // namespace tokensign::keyset
