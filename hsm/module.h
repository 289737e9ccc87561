// A loaded PKCS#11 module: dlopen(path) + C_GetFunctionList, C_Initialize with
// CKF_OS_LOCKING_OK, token lookup by label or serial, mechanism list,
// re-initialization. C_Finalize + dlclose on destruction.
//
// Thread-safety: p11() and the query methods are safe from any thread once
// Initialize() has returned. Reinitialize() must not race with other calls into
// the module; the session pool serializes it (it is the only caller besides
// Hsm::Open).
#ifndef TOKENSIGN_HSM_MODULE_H_
#define TOKENSIGN_HSM_MODULE_H_

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "hsm/pkcs11.h"
#include "hsm/pkcs11_call.h"

namespace tokensign::hsm {

class Module {
 public:
  // dlopen + C_GetFunctionList + C_Initialize. Errors name the path and
  // dlerror().
  static absl::StatusOr<std::unique_ptr<Module>> Load(const std::string& path);
  ~Module();
  Module(const Module&) = delete;
  Module& operator=(const Module&) = delete;

  const P11& p11() const { return p11_; }
  // Where this module handle's failing calls are reported (Hsm::SetErrorObserver).
  P11ErrorSink& errors() { return *errors_; }
  const std::string& path() const { return path_; }

  // C_Finalize (errors ignored) then C_Initialize; used after a device error or
  // a fork.
  absl::Status Reinitialize();

  // The slot whose token has CKA label `label` (or serial `serial` when label
  // is empty). Labels and serials are compared after trimming the blank
  // padding.
  absl::StatusOr<CK_SLOT_ID> FindSlot(std::string_view label,
                                      std::string_view serial) const;
  absl::StatusOr<CK_TOKEN_INFO> TokenInfo(CK_SLOT_ID slot) const;
  absl::StatusOr<std::vector<CK_MECHANISM_TYPE>> Mechanisms(
      CK_SLOT_ID slot) const;

 private:
  Module(std::string path, void* handle, CK_FUNCTION_LIST_PTR functions);
  absl::Status Initialize();

  std::string path_;
  void* handle_;
  std::unique_ptr<P11ErrorSink> errors_;  // before p11_, which points to it
  P11 p11_;
  bool initialized_ = false;
};

// Blank-padded PKCS#11 text field -> std::string without trailing blanks.
std::string TrimPadded(const unsigned char* data, size_t size);

}  // namespace tokensign::hsm

#endif  // TOKENSIGN_HSM_MODULE_H_
