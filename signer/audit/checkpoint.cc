#include "signer/audit/checkpoint.h"

#include <openssl/rand.h>

#include <utility>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "crypto/algorithm.h"
#include "signer/audit/audit_format.h"
#include "signer/audit/checkpoint_keys.h"
#include "signer/audit/ordered_json.h"
#include "signer/token/jwk.h"
#include "signer/token/jws.h"

namespace tokensign::audit {
namespace {

bool IsHex64(const std::string& s) {
  if (s.size() != 64) return false;
  for (char c : s) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

absl::Status Field(std::string_view field, std::string_view rule) {
  return absl::InvalidArgumentError(
      absl::StrCat("checkpoint.", std::string(field), ": ", std::string(rule)));
}

absl::StatusOr<std::string> String(const nlohmann::json& j,
                                   std::string_view field) {
  auto it = j.find(std::string(field));
  if (it == j.end() || !it->is_string())
    return Field(field, "missing or not a string");
  return it->get<std::string>();
}

absl::StatusOr<int64_t> Integer(const nlohmann::json& j,
                                std::string_view field) {
  auto it = j.find(std::string(field));
  if (it == j.end() || !it->is_number_integer() || it->get<int64_t>() < 0)
    return Field(field, "missing or not a non-negative integer");
  return it->get<int64_t>();
}

OJson RefJson(const CheckpointRef& r) {
  OJson j;
  j["log_id"] = r.log_id;
  j["seq"] = r.seq;
  j["sha256"] = r.sha256;
  return j;
}

}  // namespace

absl::StatusOr<std::shared_ptr<const CheckpointKey>> CheckpointKey::Create(
    std::shared_ptr<EVP_PKEY> key, crypto::SignAlgorithm alg,
    const EVP_PKEY* public_key) {
  if (key == nullptr)
    return absl::InvalidArgumentError("audit checkpoint key: missing");
  const EVP_PKEY* pub = public_key != nullptr ? public_key : key.get();
  auto kid = token::JwkThumbprint(pub);
  if (!kid.ok()) return kid.status();
  auto jwk = token::PublishedJwk(pub, alg, *kid);
  if (!jwk.ok()) return jwk.status();
  auto out = std::make_shared<CheckpointKey>();
  out->key = std::move(key);
  out->alg = alg;
  out->kid = *kid;
  out->public_jwk = jwk->dump();
  return std::shared_ptr<const CheckpointKey>(std::move(out));
}

std::string NewLogId() {
  unsigned char bytes[16];
  if (RAND_bytes(bytes, sizeof(bytes)) != 1) {
    // Without randomness no id is unique; the time keeps ids apart at least.
    std::string t = absl::StrCat(absl::ToUnixNanos(absl::Now()));
    return Sha256Hex(t).substr(0, 32);
  }
  return absl::BytesToHexString(
      absl::string_view(reinterpret_cast<const char*>(bytes), sizeof(bytes)));
}

std::string FormatCheckpointPayload(const CheckpointPayload& p) {
  OJson j;
  j["log_id"] = p.log_id;
  j["instance"] = p.instance;
  j["seq"] = p.seq;
  j["head"] = p.head;
  j["records"] = p.records;
  j["time"] = FormatAuditTime(p.time);
  j["final"] = p.final;
  j["prev"] = p.prev ? RefJson(*p.prev) : OJson(nullptr);
  return Dump(j);
}

absl::StatusOr<CheckpointPayload> ParseCheckpointPayload(
    const nlohmann::json& j) {
  if (!j.is_object()) return Field("payload", "not a JSON object");
  CheckpointPayload p;
  auto log_id = String(j, "log_id");
  if (!log_id.ok()) return log_id.status();
  p.log_id = *log_id;
  auto instance = String(j, "instance");
  if (!instance.ok()) return instance.status();
  p.instance = *instance;
  auto seq = Integer(j, "seq");
  if (!seq.ok()) return seq.status();
  p.seq = *seq;
  auto head = String(j, "head");
  if (!head.ok()) return head.status();
  if (!IsHex64(*head)) return Field("head", "not a hex SHA-256");
  p.head = *head;
  auto records = Integer(j, "records");
  if (!records.ok()) return records.status();
  p.records = *records;
  auto time = String(j, "time");
  if (!time.ok()) return time.status();
  auto t = ParseAuditTime(*time);
  if (!t.ok()) return Field("time", std::string(t.status().message()));
  p.time = *t;
  auto fin = j.find("final");
  if (fin == j.end() || !fin->is_boolean())
    return Field("final", "missing or not a boolean");
  p.final = fin->get<bool>();
  auto prev = j.find("prev");
  if (prev == j.end()) return Field("prev", "missing");
  if (!prev->is_null()) {
    if (!prev->is_object()) return Field("prev", "not an object or null");
    CheckpointRef r;
    auto id = String(*prev, "log_id");
    auto s = Integer(*prev, "seq");
    auto h = String(*prev, "sha256");
    if (!id.ok() || !s.ok() || !h.ok() || !IsHex64(*h))
      return Field("prev", "needs log_id, seq and a hex sha256");
    r.log_id = *id;
    r.seq = *s;
    r.sha256 = *h;
    p.prev = std::move(r);
  }
  return p;
}

absl::StatusOr<std::string> SignCheckpoint(const CheckpointKey& key,
                                           const CheckpointPayload& payload) {
  absl::StatusOr<std::string> jws =
      token::SignCompact(key.key.get(), key.alg, key.kid, kCheckpointTyp,
                         FormatCheckpointPayload(payload));
  if (!jws.ok()) return jws;
  // Checkpoints are rare (seconds apart): the public key is read from the
  // JWK each time rather than kept beside the signing key.
  absl::StatusOr<crypto::UniquePkey> pub =
      PublicKeyFromJwk(nlohmann::json::parse(key.public_jwk, nullptr, false));
  if (!pub.ok()) return pub.status();
  absl::StatusOr<nlohmann::json> verified = token::VerifyCompact(
      *jws, pub->get(), {key.alg, key.kid, kCheckpointTyp});
  if (!verified.ok()) {
    return absl::InternalError(absl::StrCat(
        "audit checkpoint: the signature from the audit key does not verify "
        "with its public key (not written): ",
        verified.status().message()));
  }
  return jws;
}

std::string FormatCheckpointBody(std::string_view jws,
                                 std::string_view public_jwk) {
  std::string out = "\"checkpoint\":";
  out.append(Dump(OJson(std::string(jws))));
  out.append(",\"key\":");
  out.append(public_jwk);
  return out;
}

std::string FormatCheckpointContinuationBody(std::string_view previous_file,
                                             std::string_view log_id,
                                             absl::Time t, std::string_view jws,
                                             std::string_view public_jwk) {
  OJson j;
  j["continues"] = std::string(previous_file);
  j["log_id"] = std::string(log_id);
  j["time"] = FormatAuditTime(t);
  return absl::StrCat(Members(j), ",", FormatCheckpointBody(jws, public_jwk));
}

std::string FormatGenesisLine(const GenesisInfo& g) {
  OJson j;
  j["v"] = kAuditFormatVersion;
  j["genesis"] = true;
  j["log"] = g.log_name;
  j["log_id"] = g.log_id;
  if (!g.instance.empty()) j["instance"] = g.instance;
  j["created"] = FormatAuditTime(g.created);
  if (g.follows) {
    j["follows"] = RefJson(*g.follows);
    OJson ack;
    ack["by"] = g.acknowledged_by;
    ack["reason"] = g.acknowledged_reason;
    ack["finding"] = g.acknowledged_finding;
    j["acknowledged"] = std::move(ack);
  }
  j["prev"] = "";
  return Dump(j);
}

}  // namespace tokensign::audit
