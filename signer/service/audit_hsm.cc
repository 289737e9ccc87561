#include "signer/service/audit_hsm.h"

#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "crypto/algorithm.h"
#include "crypto/spki.h"
#include "nlohmann/json.hpp"
#include "signer/text/json_member.h"
#include "signer/token/jwk.h"

namespace tokensign::service {
namespace {

using Json = nlohmann::json;

std::string S(std::string_view v) { return std::string(v); }

absl::Status Bad(std::string_view instance, std::string_view what) {
  return absl::DataLossError(absl::StrCat("audit key record ",
                                          AuditKeysRecordName(instance), ": ",
                                          S(what)));
}

// The newest copy of the record (by version), or null when there is none;
// from `records` when the caller read them, else searched for.
absl::StatusOr<Json> LoadRecord(hsm::Hsm& hsm, std::string_view instance,
                                const hsm::DataScan* records = nullptr) {
  const std::string name = AuditKeysRecordName(instance);
  absl::StatusOr<std::vector<std::string>> copies = std::vector<std::string>();
  if (records == nullptr) {
    copies = hsm.GetAllData(name);
  } else if (auto it = records->values.find(name); it != records->values.end()) {
    copies = it->second;
  }
  if (!copies.ok()) return copies.status();
  Json best;
  for (const std::string& c : *copies) {
    Json j = Json::parse(c, nullptr, false);
    if (!j.is_object() || !j.contains("version") ||
        !j["version"].is_number_integer() || !j.contains("keys") ||
        !j["keys"].is_array()) {
      return Bad(instance, "not {\"version\":N,\"keys\":[...]}");
    }
    if (best.is_null() || j["version"].get<int64_t>() >
                              best["version"].get<int64_t>()) {
      best = std::move(j);
    }
  }
  return best;
}

std::string JwksOf(const Json& record) {
  Json jwks = {{"keys", Json::array()}};
  for (const Json& k : record["keys"]) {
    if (k.contains("jwk")) jwks["keys"].push_back(k["jwk"]);
  }
  return jwks.dump();
}

}  // namespace

std::string AuditKeysRecordName(std::string_view instance) {
  return absl::StrCat("tokensign-audit-keys:", S(instance));
}

std::string AuditKeyLabel(std::string_view instance) {
  return absl::StrCat("tokensign-audit:", S(instance));
}

absl::StatusOr<std::string> AuditJwksOf(hsm::Hsm& hsm,
                                        std::string_view instance) {
  auto record = LoadRecord(hsm, instance);
  if (!record.ok()) return record.status();
  if (record->is_null()) {
    return absl::NotFoundError(absl::StrCat(
        "audit keys: instance \"", S(instance), "\" has no audit key record"));
  }
  return JwksOf(*record);
}

absl::StatusOr<AuditKeys> LoadAuditKey(hsm::Hsm& hsm,
                                       const keyset::PrivateKeyLoader& loader,
                                       std::string_view instance,
                                       crypto::SignAlgorithm alg,
                                       const hsm::DataScan* records) {
  auto loaded = LoadRecord(hsm, instance, records);
  if (!loaded.ok()) return loaded.status();
  Json record = loaded->is_null()
                    ? Json{{"version", 0}, {"keys", Json::array()}}
                    : *std::move(loaded);
  // The newest recorded key, if it is still in the HSM.
  if (!record["keys"].empty()) {
    const Json& k = record["keys"].back();
    if (!k.is_object()) return Bad(instance, "keys[-1]: not an object");
    keyset::KeyRecord rec;
    rec.id = text::StringMemberOrEmpty(k, "id");
    rec.kid = text::StringMemberOrEmpty(k, "kid");
    std::string spki;
    if (!absl::WebSafeBase64Unescape(text::StringMemberOrEmpty(k, "spki"),
                                     &spki) ||
        spki.empty()) {
      return Bad(instance, "keys[-1].spki: not base64url DER");
    }
    rec.spki = spki;
    auto rec_alg =
        crypto::ParseSignAlgorithm(text::StringMemberOrEmpty(k, "alg"));
    if (!rec_alg) return Bad(instance, "keys[-1].alg: unknown algorithm");
    rec.alg = *rec_alg;
    // Through the key-handle cache, which the keyset scan of this start
    // filled with every private key that passed FindKey's rules; a key not
    // there is searched for and checked as FindKey does. FindKey here and
    // again inside the check made four object searches (~10% of a 1,000-key
    // start's CPU); the check takes this answer as its scan.
    auto found = hsm.ResolveKey(rec.id);
    if (found.ok() || !absl::IsNotFound(found.status())) {
      hsm::KeyScan lookup;
      if (found.ok()) {
        lookup.keys[found->id] = *found;
      } else {
        lookup.refused[absl::AsciiStrToLower(rec.id)] = found.status();
      }
      auto verified = keyset::VerifyRecordedKey(hsm, loader, rec, &lookup);
      if (!verified.ok()) {
        return absl::Status(
            verified.status().code(),
            absl::StrCat("audit key ", rec.kid, " of instance \"", S(instance),
                         "\": ", verified.status().message()));
      }
      auto key = audit::CheckpointKey::Create(verified->private_key, rec.alg,
                                              verified->public_key.get());
      if (!key.ok()) return key.status();
      return AuditKeys{*std::move(key), JwksOf(record)};
    }
    // Gone from the HSM: a new key follows; the old public key stays listed.
  }
  auto info = hsm.GenerateKey(crypto::KeyTypeFor(alg), AuditKeyLabel(instance));
  if (!info.ok()) return info.status();
  auto discard = [&](absl::Status st) {
    (void)hsm.DestroyKey(info->id);
    return st;
  };
  auto pub = crypto::ParseSpki(info->spki_der);
  if (!pub.ok()) return discard(pub.status());
  auto kid = token::JwkThumbprint(pub->get());
  if (!kid.ok()) return discard(kid.status());
  auto jwk = token::PublishedJwk(pub->get(), alg, *kid);
  if (!jwk.ok()) return discard(jwk.status());
  keyset::KeyRecord rec;
  rec.id = info->id;
  rec.kid = *kid;
  rec.spki = info->spki_der;
  rec.alg = alg;
  auto verified = keyset::VerifyRecordedKey(hsm, loader, rec);
  if (!verified.ok()) return discard(verified.status());
  Json entry = {
      {"id", rec.id},
      {"kid", rec.kid},
      {"alg", S(crypto::SignAlgorithmName(alg))},
      {"spki", absl::WebSafeBase64Escape(info->spki_der)},
      {"created_at", absl::ToUnixSeconds(absl::Now())},
      {"jwk", *jwk}};
  record["keys"].push_back(std::move(entry));
  record["version"] = record["version"].get<int64_t>() + 1;
  if (absl::Status st = hsm.PutData(AuditKeysRecordName(instance),
                                    record.dump());
      !st.ok()) {
    return discard(st);
  }
  auto key = audit::CheckpointKey::Create(verified->private_key, alg,
                                          verified->public_key.get());
  if (!key.ok()) return key.status();
  return AuditKeys{*std::move(key), JwksOf(record)};
}

}  // namespace tokensign::service
