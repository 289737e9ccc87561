#include "hsm/token_init.h"

#include <cstring>
#include <string>
#include <vector>

#include "hsm/module.h"
#include "hsm/pkcs11_call.h"

namespace tokensign::hsm {
namespace {

CK_UTF8CHAR_PTR Utf8(std::string_view s) {
  return reinterpret_cast<CK_UTF8CHAR_PTR>(const_cast<char*>(s.data()));
}

absl::Status CheckPin(std::string_view what, std::string_view pin) {
  if (pin.size() < 4 || pin.size() > 255) {
    return absl::InvalidArgumentError(std::string(what) + ": length " +
                                      std::to_string(pin.size()) +
                                      " is outside 4..255 bytes");
  }
  return absl::OkStatus();
}

// Logs in as SO on a fresh R/W session of `slot`, sets the user PIN, logs out.
absl::Status SetUserPin(const P11& p11, CK_SLOT_ID slot,
                        std::string_view so_pin, std::string_view user_pin) {
  CK_SESSION_HANDLE session = CK_INVALID_HANDLE;
  absl::Status st =
      TS_P11(p11, C_OpenSession, slot, CKF_SERIAL_SESSION | CKF_RW_SESSION,
             nullptr, nullptr, &session);
  if (!st.ok()) return st;
  st = TS_P11(p11, C_Login, session, CKU_SO, Utf8(so_pin), so_pin.size());
  if (st.ok()) {
    st = TS_P11(p11, C_InitPIN, session, Utf8(user_pin), user_pin.size());
    (void)TS_P11(p11, C_Logout, session);
  }
  (void)TS_P11(p11, C_CloseSession, session);
  return st;
}

}  // namespace

absl::Status InitializeToken(const std::string& module_path,
                             std::string_view label, std::string_view so_pin,
                             std::string_view user_pin) {
  if (label.empty() || label.size() > 32) {
    return absl::InvalidArgumentError("token label: must be 1..32 bytes, got " +
                                      std::to_string(label.size()));
  }
  if (auto st = CheckPin("SO PIN", so_pin); !st.ok()) return st;
  if (auto st = CheckPin("user PIN", user_pin); !st.ok()) return st;

  auto module = Module::Load(module_path);
  if (!module.ok()) return module.status();
  const P11& p11 = (*module)->p11();

  if ((*module)->FindSlot(label, "").ok()) {
    return absl::AlreadyExistsError(
        "token label '" + std::string(label) +
        "': a token with this label already exists");
  }

  CK_ULONG count = 0;
  if (auto st = TS_P11(p11, C_GetSlotList, CK_TRUE, nullptr, &count); !st.ok())
    return st;
  std::vector<CK_SLOT_ID> slots(count);
  if (auto st = TS_P11(p11, C_GetSlotList, CK_TRUE, slots.data(), &count);
      !st.ok()) {
    return st;
  }
  slots.resize(count);
  for (CK_SLOT_ID slot : slots) {
    auto info = (*module)->TokenInfo(slot);
    if (!info.ok() || (info->flags & CKF_TOKEN_INITIALIZED) != 0) continue;

    // 32 bytes, blank-padded, as PKCS#11 says, plus a NUL it does not ask
    // for: p11-kit's client module (0.24.1) sends the label with strlen and
    // so read past a 32-byte array (ASan, p11kit.hsm_token_init_test).
    CK_UTF8CHAR padded[33];
    std::memset(padded, ' ', 32);
    padded[32] = '\0';
    std::memcpy(padded, label.data(), label.size());
    if (auto st =
            TS_P11(p11, C_InitToken, slot, Utf8(so_pin), so_pin.size(), padded);
        !st.ok()) {
      return st;
    }
    // SoftHSM moves a freshly initialized token to a new slot id: look it up by
    // label.
    auto new_slot = (*module)->FindSlot(label, "");
    if (!new_slot.ok()) return new_slot.status();
    return SetUserPin(p11, *new_slot, so_pin, user_pin);
  }
  return absl::FailedPreconditionError(
      "InitializeToken: the module has no slot with an uninitialized token");
}

}  // namespace tokensign::hsm
