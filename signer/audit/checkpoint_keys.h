// Which audit keys a verifier trusts, and checking a checkpoint's signature
// with them. Three sources, strongest first:
//   - keys: a JWKS (from /audit/jwks.json, `tokensignctl audit keys`, or the
//     daemon's auditor RPC); a checkpoint must name one of them by kid;
//   - pins: RFC 7638 thumbprints; the public JWK written beside each
//     checkpoint is used only if its thumbprint is pinned (and is the kid);
//   - embedded: the JWK beside each checkpoint, unpinned. That proves the log
//     consistent with itself only: whoever rewrites the file can embed a key
//     of their own. Reports say so.
// Thread-safety: immutable after construction; Verify may run concurrently.
#ifndef TOKENSIGN_SIGNER_AUDIT_CHECKPOINT_KEYS_H_
#define TOKENSIGN_SIGNER_AUDIT_CHECKPOINT_KEYS_H_

#include <map>
#include <memory>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "crypto/ssl_ptr.h"
#include "nlohmann/json.hpp"
#include "signer/audit/checkpoint.h"

namespace tokensign::audit {

// Public key of a JWK: EC P-256 / P-384, OKP Ed25519 or RSA. Errors name the
// member ("jwk.x: ...").
absl::StatusOr<crypto::UniquePkey> PublicKeyFromJwk(const nlohmann::json& jwk);

class CheckpointTrust {
 public:
  enum class Source { kKeys, kPins, kEmbedded };

  // {"keys":[JWK with kid...]}; each kid must be the key's thumbprint.
  static absl::StatusOr<CheckpointTrust> FromJwks(std::string_view jwks_json);
  static CheckpointTrust Pinned(std::vector<std::string> thumbprints);
  static CheckpointTrust Embedded();

  Source source() const { return source_; }
  // "keys from a JWKS (2 keys)", "pinned key(s) ...", "keys embedded in the
  // log (unpinned: proves consistency only)".
  std::string Describe() const;

  // Verifies a checkpoint JWS (header alg/kid/typ, signature) and returns its
  // payload. `embedded_jwk` is the "key" member of the line. Errors say why:
  // unknown kid, key not pinned, kid not the thumbprint, bad signature.
  absl::StatusOr<CheckpointPayload> Verify(std::string_view jws,
                                           std::string_view embedded_jwk) const;

 private:
  Source source_ = Source::kEmbedded;
  std::map<std::string, std::shared_ptr<EVP_PKEY>> keys_;  // kid -> key
  std::set<std::string> pins_;
};

}  // namespace tokensign::audit

#endif  // TOKENSIGN_SIGNER_AUDIT_CHECKPOINT_KEYS_H_
