// libFuzzer target: the verify side of token exchange, VerifyParent
// (signer/token/parent_token.h), which parses a caller's subject token: compact
// JWS, header, unverified iss for the key lookup, signature, then the claims.
// The first byte picks the mode:
//   even: the rest is the token text, as a caller sends it;
//   odd:  the rest is a claims payload, which the harness signs under the
//         canonical header with the trusted key (typ by the low bits of the
//         second byte), so the claim reader after the signature is reached.
// The lookup trusts one Ed25519 key under kid "k1" for any iss.
#include <openssl/evp.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <string>
#include <string_view>

#include "absl/time/time.h"
#include "crypto/algorithm.h"
#include "signer/token/jws.h"
#include "signer/token/parent_token.h"

namespace {

using namespace tokensign::token;  // NOLINT(build/namespaces): a fuzz harness
using tokensign::crypto::SignAlgorithm;

std::shared_ptr<EVP_PKEY> Key() {
  static std::shared_ptr<EVP_PKEY>* key = [] {
    EVP_PKEY* k = EVP_PKEY_Q_keygen(nullptr, nullptr, "ED25519");
    if (k == nullptr) std::abort();
    return new std::shared_ptr<EVP_PKEY>(k, EVP_PKEY_free);
  }();
  return *key;
}

absl::StatusOr<ParentKey> Lookup(std::string_view /*iss*/, std::string_view kid) {
  if (kid != "k1") return absl::PermissionDeniedError("subject_token: unknown kid");
  ParentKey k;
  k.public_key = Key();
  k.alg = SignAlgorithm::kEdDSA;
  k.issuer = "dev";
  return k;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const absl::Time now = absl::FromUnixSeconds(1700000000);
  std::string_view rest(reinterpret_cast<const char*>(data) + 1, size - 1);
  std::string token;
  if ((data[0] & 1) == 0) {
    token = std::string(rest);
  } else {
    if (rest.empty()) return 0;
    const char* typ = (rest[0] & 1) != 0 ? "txntoken+jwt" : "at+jwt";
    rest.remove_prefix(1);
    absl::StatusOr<std::string> signed_token = SignCompactWithHeader(
        Key().get(), SignAlgorithm::kEdDSA, JwsHeaderJson(SignAlgorithm::kEdDSA, "k1", typ),
        rest);
    if (!signed_token.ok()) std::abort();
    token = *std::move(signed_token);
  }
  (void)VerifyParent(token, Lookup, now, absl::Seconds(60));
  return 0;
}
