// The audit log's HSM side (issue 12): checkpoint anchors in the HSM's
// private CKO_DATA records, and the audit signing key.
//
// - HsmAnchorStore (hsm_anchor_store.h) keeps the checkpoint anchors.
// - LoadAuditKey returns this instance's audit key. The key is generated in
//   the HSM (ES256 by default, label "tokensign-audit:<instance>", never
//   extractable) and used through the provider's EVP_PKEY like an issuer key.
//   Its record, the private data object "tokensign-audit-keys:<instance>",
//   lists every audit key the instance has had ({"version":N,"keys":[{"id",
//   "kid","alg","spki","created_at","jwk"}]}, newest last); the JWKS of all of
//   them is what /audit/jwks.json and `tokensignctl audit keys` publish, so old
//   checkpoints keep verifying. Before use the newest key is proven like an
//   issuer key (keyset::VerifyRecordedKey: attributes, kid, a test
//   signature). If it is gone from the HSM a new one is generated and added;
//   any other failed check refuses the start. The key is looked up through
//   the Hsm's key-handle cache (Hsm::ResolveKey: filled by the keyset scan
//   that precedes it at start with the keys that passed FindKey's attribute
//   rules; searched for and checked on a miss): no object search for it when
//   the scan found it.
// Thread-safety: LoadAuditKey is called once at start; AuditJwksOf from any
// thread (the Hsm is thread-safe).
#ifndef TOKENSIGN_SIGNER_SERVICE_AUDIT_HSM_H_
#define TOKENSIGN_SIGNER_SERVICE_AUDIT_HSM_H_

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "crypto/algorithm.h"
#include "hsm/hsm.h"
#include "signer/audit/checkpoint.h"
#include "signer/keyset/key_check.h"
#include "signer/service/hsm_anchor_store.h"

namespace tokensign::service {

struct AuditKeys {
  std::shared_ptr<const audit::CheckpointKey> current;  // signs checkpoints
  std::string jwks_json;  // {"keys":[...]} every audit key of the instance
};

std::string AuditKeysRecordName(std::string_view instance);
std::string AuditKeyLabel(std::string_view instance);

// The instance's audit key (created on first use, see above). `records`: the
// token's records as the caller just read them (Hsm::ScanData with a prefix
// the record's name starts with, e.g. "" at daemon start, shared with the
// keyset load): the record is taken from there instead of a search.
absl::StatusOr<AuditKeys> LoadAuditKey(hsm::Hsm& hsm,
                                       const keyset::PrivateKeyLoader& loader,
                                       std::string_view instance,
                                       crypto::SignAlgorithm alg,
                                       const hsm::DataScan* records = nullptr);

// The JWKS kept in the record, without touching keys (for instances other
// than this daemon's). NotFound when the instance has no audit key record.
absl::StatusOr<std::string> AuditJwksOf(hsm::Hsm& hsm,
                                        std::string_view instance);

}  // namespace tokensign::service

#endif  // TOKENSIGN_SIGNER_SERVICE_AUDIT_HSM_H_
