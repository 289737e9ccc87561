// Helpers for the checkpoint tests: a software audit key (the daemon's is in
// the HSM; signer/audit only sees an EVP_PKEY either way), a log with
// checkpoints at chosen points, and an attacker's tools (re-chaining lines
// after an edit, re-signing a checkpoint).
#ifndef TOKENSIGN_TESTS_AUDIT_CHECKPOINT_TEST_UTIL_H_
#define TOKENSIGN_TESTS_AUDIT_CHECKPOINT_TEST_UTIL_H_

#include <openssl/evp.h>

#include <memory>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "signer/audit/anchor_store.h"
#include "signer/audit/audit_format.h"
#include "signer/audit/audit_log.h"
#include "signer/audit/checkpoint.h"
#include "signer/token/jws.h"
#include "tests/audit/audit_test_util.h"

namespace tokensign::audit::testing {

inline std::shared_ptr<const CheckpointKey> NewCheckpointKey() {
  EVP_PKEY* k = EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256");
  EXPECT_NE(k, nullptr);
  auto key = CheckpointKey::Create(std::shared_ptr<EVP_PKEY>(k, EVP_PKEY_free));
  EXPECT_TRUE(key.ok()) << key.status();
  return key.ok() ? *key : nullptr;
}

inline std::string JwksOf(const CheckpointKey& key) {
  return "{\"keys\":[" + key.public_jwk + "]}";
}

// Options for a log whose checkpoints come only when the test asks (Open,
// Checkpoint(), close), so line numbers are known.
inline AuditLogOptions ManualCheckpoints(const std::string& path,
                                         std::shared_ptr<const CheckpointKey> key,
                                         AnchorStore* anchors,
                                         const std::string& instance = "i1") {
  AuditLogOptions o;
  o.path = path;
  o.checkpoint_key = std::move(key);
  o.checkpoint_every_records = 1 << 30;
  o.checkpoint_every = absl::Hours(24);
  o.instance = instance;
  o.anchors = anchors;
  return o;
}

// Re-chains lines[from..] as someone who can write the file would after an
// edit: seq = index (single-file log), prev = SHA-256 of the line before.
inline void Rechain(std::vector<std::string>* lines, size_t from) {
  for (size_t i = from; i < lines->size(); ++i) {
    auto j = nlohmann::ordered_json::parse((*lines)[i]);
    j["seq"] = static_cast<int64_t>(i);
    j["prev"] = Sha256Hex((*lines)[i - 1]);
    (*lines)[i] = j.dump();
  }
}

// The checkpoint payload of a line, unverified.
inline CheckpointPayload PayloadOf(const std::string& line) {
  auto j = nlohmann::json::parse(line);
  std::string jws = j["checkpoint"].get<std::string>();
  size_t a = jws.find('.'), b = jws.find('.', a + 1);
  auto bytes = token::Base64UrlDecode(jws.substr(a + 1, b - a - 1));
  EXPECT_TRUE(bytes.ok());
  auto p = ParseCheckpointPayload(nlohmann::json::parse(*bytes));
  EXPECT_TRUE(p.ok()) << p.status();
  return *p;
}

// Replaces the checkpoint of `line` by one over the same payload signed
// with `key` (and that key's JWK beside it).
inline std::string Resign(const std::string& line, const CheckpointKey& key) {
  auto j = nlohmann::ordered_json::parse(line);
  auto jws = SignCheckpoint(key, PayloadOf(line));
  EXPECT_TRUE(jws.ok());
  j["checkpoint"] = *jws;
  j["key"] = nlohmann::ordered_json::parse(key.public_jwk);
  return j.dump();
}

// `jws` with its header's member `name` set to `value` (the signature left
// as it was): a checkpoint header as someone editing the file would write it.
inline std::string WithHeaderMember(const std::string& jws, const char* name,
                                    const nlohmann::json& value) {
  const size_t dot = jws.find('.');
  auto header_bytes = token::Base64UrlDecode(jws.substr(0, dot));
  EXPECT_TRUE(header_bytes.ok()) << header_bytes.status();
  nlohmann::json header = nlohmann::json::parse(header_bytes.value_or("{}"));
  header[name] = value;
  return token::Base64UrlEncode(header.dump()) + jws.substr(dot);
}

inline bool IsCheckpoint(const std::string& line) {
  return nlohmann::json::parse(line).contains("checkpoint");
}

// Copies every record of `from` into a fresh store (a snapshot of the HSM).
inline void CopyRecord(AnchorStore& from, MemoryAnchorStore* to,
                       const std::string& name) {
  auto all = from.GetAll(name);
  ASSERT_TRUE(all.ok());
  for (const std::string& v : *all) to->AddCopy(name, v);
}

}  // namespace tokensign::audit::testing

#endif  // TOKENSIGN_TESTS_AUDIT_CHECKPOINT_TEST_UTIL_H_
