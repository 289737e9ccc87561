#include "hsm/module.h"

#include <dlfcn.h>

#include <map>
#include <mutex>

#include "crypto/str_cat.h"

namespace tokensign::hsm {
namespace {

// Modules are process-wide: dlopen of the same path returns the same library,
// and PKCS#11 allows one C_Initialize per process. Count the Module objects
// that share one function list so only the last one calls C_Finalize.
std::mutex g_users_mu;
std::map<CK_FUNCTION_LIST_PTR, int>& Users() {
  static auto* users = new std::map<CK_FUNCTION_LIST_PTR, int>();
  return *users;
}

}  // namespace

std::string TrimPadded(const unsigned char* data, size_t size) {
  std::string out(reinterpret_cast<const char*>(data), size);
  while (!out.empty() && (out.back() == ' ' || out.back() == '\0')) {
    out.pop_back();
  }
  return out;
}

absl::StatusOr<std::unique_ptr<Module>> Module::Load(const std::string& path) {
  if (path.empty()) {
    return absl::InvalidArgumentError(
        "HsmConfig.module_path: empty; set the PKCS#11 module path");
  }
  dlerror();
  // In an ASan build the module stays mapped after dlclose: LeakSanitizer names a leak's frames
  // at exit, and tests/sanitizers/lsan.supp recognises leaks inside the module by its file name.
#if defined(__SANITIZE_ADDRESS__)
  constexpr int kKeepMapped = RTLD_NODELETE;
#else
  constexpr int kKeepMapped = 0;
#endif
  void* handle = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL | kKeepMapped);
  if (handle == nullptr) {
    const char* err = dlerror();
    return absl::NotFoundError(Cat("HsmConfig.module_path: dlopen(", path,
                                   ") failed: ", err ? err : "unknown error"));
  }
  auto get_list = reinterpret_cast<CK_C_GetFunctionList>(
      dlsym(handle, "C_GetFunctionList"));
  if (get_list == nullptr) {
    dlclose(handle);
    return absl::InvalidArgumentError(
        Cat("HsmConfig.module_path: ", path, " has no C_GetFunctionList"));
  }
  CK_FUNCTION_LIST_PTR functions = nullptr;
  absl::Status status = CkStatus("C_GetFunctionList", get_list(&functions));
  if (status.ok() && functions == nullptr) {
    status = absl::InternalError("C_GetFunctionList: returned no list");
  }
  if (!status.ok()) {
    dlclose(handle);
    return status;
  }
  std::unique_ptr<Module> module(new Module(path, handle, functions));
  absl::Status init = module->Initialize();
  if (!init.ok()) return init;
  return module;
}

Module::Module(std::string path, void* handle, CK_FUNCTION_LIST_PTR functions)
    : path_(std::move(path)),
      handle_(handle),
      errors_(std::make_unique<P11ErrorSink>()),
      p11_(functions, errors_.get()) {
  std::lock_guard<std::mutex> lock(g_users_mu);
  ++Users()[functions];
}

Module::~Module() {
  bool last = false;
  {
    std::lock_guard<std::mutex> lock(g_users_mu);
    last = --Users()[p11_.functions()] == 0;
    if (last) Users().erase(p11_.functions());
  }
  if (last && initialized_) {
    (void)TS_P11(p11_, C_Finalize, nullptr);
  }
  // dlclose only drops this object's reference; other users keep the module
  // mapped.
  dlclose(handle_);
}

absl::Status Module::Initialize() {
  CK_C_INITIALIZE_ARGS args = {};
  args.flags = CKF_OS_LOCKING_OK;
  absl::Status status = TS_P11(p11_, C_Initialize, &args);
  if (RvOf(status) == CKR_CRYPTOKI_ALREADY_INITIALIZED) {
    // Another Module object (or another library) in this process initialized
    // it. If it is one of ours, we share the duty to finalize it (the last
    // Module does).
    std::lock_guard<std::mutex> lock(g_users_mu);
    initialized_ = Users()[p11_.functions()] > 1;
    return absl::OkStatus();
  }
  if (!status.ok()) return status;
  initialized_ = true;
  return absl::OkStatus();
}

absl::Status Module::Reinitialize() {
  (void)TS_P11(p11_, C_Finalize, nullptr);
  initialized_ = false;
  return Initialize();
}

absl::StatusOr<CK_SLOT_ID> Module::FindSlot(std::string_view label,
                                            std::string_view serial) const {
  if (label.empty() == serial.empty()) {
    return absl::InvalidArgumentError(
        "HsmConfig.token_label/token_serial: exactly one must be set");
  }
  CK_ULONG count = 0;
  absl::Status status = TS_P11(p11_, C_GetSlotList, CK_TRUE, nullptr, &count);
  if (!status.ok()) return status;
  std::vector<CK_SLOT_ID> slots(count);
  if (count > 0) {
    status = TS_P11(p11_, C_GetSlotList, CK_TRUE, slots.data(), &count);
    if (!status.ok()) return status;
    slots.resize(count);
  }
  for (CK_SLOT_ID slot : slots) {
    absl::StatusOr<CK_TOKEN_INFO> info = TokenInfo(slot);
    if (!info.ok()) continue;
    if (!label.empty() &&
        TrimPadded(info->label, sizeof(info->label)) == label) {
      return slot;
    }
    if (!serial.empty() &&
        TrimPadded(info->serialNumber, sizeof(info->serialNumber)) == serial) {
      return slot;
    }
  }
  return absl::NotFoundError(
      label.empty() ? Cat("HsmConfig.token_serial: no token with serial '",
                          serial, "' in ", path_)
                    : Cat("HsmConfig.token_label: no token labelled '", label,
                          "' in ", path_));
}

absl::StatusOr<CK_TOKEN_INFO> Module::TokenInfo(CK_SLOT_ID slot) const {
  CK_TOKEN_INFO info = {};
  absl::Status status = TS_P11(p11_, C_GetTokenInfo, slot, &info);
  if (!status.ok()) return status;
  return info;
}

absl::StatusOr<std::vector<CK_MECHANISM_TYPE>> Module::Mechanisms(
    CK_SLOT_ID slot) const {
  CK_ULONG count = 0;
  absl::Status status = TS_P11(p11_, C_GetMechanismList, slot, nullptr, &count);
  if (!status.ok()) return status;
  // One element more than asked for: p11-kit's client module before 0.25
  // (Debian 12 ships 0.24.1) drops the mechanisms it cannot carry by moving
  // the rest of the list down one place with a memmove that reads one
  // element past the end (p11-kit #456); found by ASan in the p11kit suites.
  std::vector<CK_MECHANISM_TYPE> mechs(count + 1);
  if (count > 0) {
    status = TS_P11(p11_, C_GetMechanismList, slot, mechs.data(), &count);
    if (!status.ok()) return status;
  }
  mechs.resize(count);
  return mechs;
}

}  // namespace tokensign::hsm
