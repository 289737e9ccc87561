// HsmAnchorStore: audit::AnchorStore on the HSM's private CKO_DATA records
// (Hsm::PutData/GetAllData/AddData/RemoveData: private token objects only,
// so a public look-alike made without the PIN is never read). The daemon
// keeps its audit checkpoints' anchors here; the bench does the same.
// Header-only so that tools that do not link the service library use it too.
// Thread-safety: thread-safe (the Hsm is).
#ifndef TOKENSIGN_SIGNER_SERVICE_HSM_ANCHOR_STORE_H_
#define TOKENSIGN_SIGNER_SERVICE_HSM_ANCHOR_STORE_H_

#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "hsm/hsm.h"
#include "signer/audit/anchor_store.h"

namespace tokensign::service {

class HsmAnchorStore final : public audit::AnchorStore {
 public:
  explicit HsmAnchorStore(std::shared_ptr<hsm::Hsm> hsm)
      : hsm_(std::move(hsm)) {}
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

}  // namespace tokensign::service

#endif  // TOKENSIGN_SIGNER_SERVICE_HSM_ANCHOR_STORE_H_
