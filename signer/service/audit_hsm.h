// The audit log's HSM side (issue 12): checkpoint anchors in the HSM's
// private CKO_DATA records, and the audit signing key.
//
// - HsmAnchorStore implements audit::AnchorStore on Hsm::PutData/GetAllData/
//   AddData/RemoveData (private token objects only: a public look-alike made without the PIN is
//   never read).
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
//   any other failed check refuses the start.
// Thread-safety: HsmAnchorStore is thread-safe (the Hsm is); LoadAuditKey is
// called once at start.
#ifndef TOKENSIGN_SIGNER_SERVICE_AUDIT_HSM_H_
#define TOKENSIGN_SIGNER_SERVICE_AUDIT_HSM_H_

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "crypto/algorithm.h"
#include "hsm/hsm.h"
#include "signer/audit/anchor_store.h"
#include "signer/audit/checkpoint.h"
#include "signer/keyset/key_check.h"

namespace tokensign::service {

class HsmAnchorStore final : public audit::AnchorStore {
 public:
  explicit HsmAnchorStore(std::shared_ptr<hsm::Hsm> hsm) : hsm_(std::move(hsm)) {}
  absl::Status Put(std::string_view name, std::string_view value) override {
    return hsm_->PutData(name, value);
  }
  absl::StatusOr<std::vector<std::string>> GetAll(
      std::string_view name) override {
    return hsm_->GetAllData(name);
  }
  absl::Status Add(std::string_view name, std::string_view value) override {
    return hsm_->AddData(name, value);
  }
  absl::Status Remove(std::string_view name, std::string_view value) override {
    return hsm_->RemoveData(name, value);
  }

 private:
  std::shared_ptr<hsm::Hsm> hsm_;
};

struct AuditKeys {
  std::shared_ptr<const audit::CheckpointKey> current;  // signs checkpoints
  std::string jwks_json;  // {"keys":[...]} every audit key of the instance
};

std::string AuditKeysRecordName(std::string_view instance);
std::string AuditKeyLabel(std::string_view instance);

// The instance's audit key (created on first use, see above).
absl::StatusOr<AuditKeys> LoadAuditKey(hsm::Hsm& hsm,
                                       const keyset::PrivateKeyLoader& loader,
                                       std::string_view instance,
                                       crypto::SignAlgorithm alg);

// The JWKS kept in the record, without touching keys (for instances other
// than this daemon's). NotFound when the instance has no audit key record.
absl::StatusOr<std::string> AuditJwksOf(hsm::Hsm& hsm,
                                        std::string_view instance);

}  // namespace tokensign::service

#endif  // TOKENSIGN_SIGNER_SERVICE_AUDIT_HSM_H_
