// libFuzzer target: the verify-side JWK parsers: a JWKS of trusted audit keys
// (CheckpointTrust::FromJwks, as `tokensignctl audit verify --jwks` reads it) and,
// for any JSON object, PublicKeyFromJwk and the RFC 7638 thumbprint.
// Property: a JWK that yields a key has a thumbprint, and the key's own
// thumbprint is the same (the thumbprint of what was parsed is stable).
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string_view>

#include "nlohmann/json.hpp"
#include "signer/audit/checkpoint_keys.h"
#include "signer/token/jwk.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  (void)tokensign::audit::CheckpointTrust::FromJwks(text);
  nlohmann::json jwk = nlohmann::json::parse(text, nullptr, false);
  if (jwk.is_discarded() || !jwk.is_object()) return 0;
  absl::StatusOr<std::string> thumbprint = tokensign::token::JwkThumbprint(jwk);
  auto key = tokensign::audit::PublicKeyFromJwk(jwk);
  if (!key.ok()) return 0;
  absl::StatusOr<std::string> key_thumbprint = tokensign::token::JwkThumbprint(key->get());
  if (!thumbprint.ok() || !key_thumbprint.ok() || *thumbprint != *key_thumbprint) {
    std::fprintf(stderr, "jwks_fuzzer: a JWK parsed to a key whose thumbprint differs\n");
    std::abort();
  }
  return 0;
}
