#include "tests/support/planter.h"

#include <dlfcn.h>
#include <openssl/core_names.h>
#include <openssl/param_build.h>

#include <cstring>
#include <vector>

#include "absl/strings/str_cat.h"

namespace tokensign::testing {
namespace {

constexpr unsigned char kP256Oid[] = {0x06, 0x08, 0x2a, 0x86, 0x48,
                                      0xce, 0x3d, 0x03, 0x01, 0x07};

absl::Status Ck(const char* fn, CK_RV rv) {
  if (rv == CKR_OK) return absl::OkStatus();
  return absl::InternalError(absl::StrCat(fn, ": CK_RV 0x", absl::Hex(rv)));
}

CK_ATTRIBUTE A(CK_ATTRIBUTE_TYPE type, const void* p, size_t n) {
  return CK_ATTRIBUTE{type, const_cast<void*>(p), static_cast<CK_ULONG>(n)};
}

std::string Label32(const CK_UTF8CHAR* label) {
  std::string s(reinterpret_cast<const char*>(label), 32);
  while (!s.empty() && s.back() == ' ') s.pop_back();
  return s;
}

}  // namespace

absl::StatusOr<std::unique_ptr<Planter>> Planter::Open(
    const std::string& module_path, const std::string& token_label) {
  std::unique_ptr<Planter> p(new Planter());
  p->lib_ = dlopen(module_path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (p->lib_ == nullptr) return absl::NotFoundError(dlerror());
  auto get = reinterpret_cast<CK_RV (*)(CK_FUNCTION_LIST_PTR_PTR)>(
      dlsym(p->lib_, "C_GetFunctionList"));
  if (get == nullptr) return absl::NotFoundError("C_GetFunctionList");
  if (auto st = Ck("C_GetFunctionList", get(&p->f_)); !st.ok()) return st;
  CK_RV rv = p->f_->C_Initialize(nullptr);
  if (rv != CKR_CRYPTOKI_ALREADY_INITIALIZED) {
    if (auto st = Ck("C_Initialize", rv); !st.ok()) return st;
    p->finalize_ = true;
  }
  CK_ULONG count = 0;
  if (auto st = Ck("C_GetSlotList", p->f_->C_GetSlotList(CK_TRUE, nullptr, &count));
      !st.ok())
    return st;
  std::vector<CK_SLOT_ID> slots(count);
  if (auto st = Ck("C_GetSlotList",
                   p->f_->C_GetSlotList(CK_TRUE, slots.data(), &count));
      !st.ok())
    return st;
  for (CK_SLOT_ID slot : slots) {
    CK_TOKEN_INFO info;
    if (p->f_->C_GetTokenInfo(slot, &info) != CKR_OK) continue;
    if (Label32(info.label) != token_label) continue;
    if (auto st = Ck("C_OpenSession",
                     p->f_->C_OpenSession(slot,
                                          CKF_SERIAL_SESSION | CKF_RW_SESSION,
                                          nullptr, nullptr, &p->session_));
        !st.ok())
      return st;
    return p;  // no C_Login: the attacker has no PIN
  }
  return absl::NotFoundError(absl::StrCat("no token labelled ", token_label));
}

Planter::~Planter() {
  if (f_ != nullptr && session_ != CK_INVALID_HANDLE) f_->C_CloseSession(session_);
  if (f_ != nullptr && finalize_) f_->C_Finalize(nullptr);
  // The library stays loaded: another user in this process may share it.
}

absl::Status Planter::PlantEcKey(std::string_view id_bytes,
                                 std::string_view label, EVP_PKEY* key) {
  BIGNUM* d = nullptr;
  if (EVP_PKEY_get_bn_param(key, OSSL_PKEY_PARAM_PRIV_KEY, &d) != 1)
    return absl::InvalidArgumentError("PlantEcKey: not an EC private key");
  unsigned char scalar[32];
  BN_bn2binpad(d, scalar, sizeof(scalar));
  BN_free(d);
  unsigned char point[65];
  size_t point_len = 0;
  if (EVP_PKEY_get_octet_string_param(key, OSSL_PKEY_PARAM_PUB_KEY, point,
                                      sizeof(point), &point_len) != 1 ||
      point_len != sizeof(point)) {
    return absl::InvalidArgumentError("PlantEcKey: no uncompressed P-256 point");
  }
  std::string ec_point = std::string("\x04\x41", 2) +
                         std::string(reinterpret_cast<char*>(point), 65);
  CK_OBJECT_CLASS priv_class = CKO_PRIVATE_KEY, pub_class = CKO_PUBLIC_KEY;
  CK_KEY_TYPE type = CKK_EC;
  CK_BBOOL yes = CK_TRUE, no = CK_FALSE;
  CK_ATTRIBUTE priv[] = {
      A(CKA_CLASS, &priv_class, sizeof(priv_class)),
      A(CKA_KEY_TYPE, &type, sizeof(type)),
      A(CKA_TOKEN, &yes, sizeof(yes)),
      A(CKA_PRIVATE, &no, sizeof(no)),
      A(CKA_SENSITIVE, &no, sizeof(no)),
      A(CKA_SIGN, &yes, sizeof(yes)),
      A(CKA_ID, id_bytes.data(), id_bytes.size()),
      A(CKA_LABEL, label.data(), label.size()),
      A(CKA_EC_PARAMS, kP256Oid, sizeof(kP256Oid)),
      A(CKA_VALUE, scalar, sizeof(scalar)),
  };
  CK_OBJECT_HANDLE h = CK_INVALID_HANDLE;
  if (auto st = Ck("C_CreateObject(private key)",
                   f_->C_CreateObject(session_, priv, 10, &h));
      !st.ok())
    return st;
  CK_ATTRIBUTE pub[] = {
      A(CKA_CLASS, &pub_class, sizeof(pub_class)),
      A(CKA_KEY_TYPE, &type, sizeof(type)),
      A(CKA_TOKEN, &yes, sizeof(yes)),
      A(CKA_PRIVATE, &no, sizeof(no)),
      A(CKA_VERIFY, &yes, sizeof(yes)),
      A(CKA_ID, id_bytes.data(), id_bytes.size()),
      A(CKA_LABEL, label.data(), label.size()),
      A(CKA_EC_PARAMS, kP256Oid, sizeof(kP256Oid)),
      A(CKA_EC_POINT, ec_point.data(), ec_point.size()),
  };
  return Ck("C_CreateObject(public key)",
            f_->C_CreateObject(session_, pub, 9, &h));
}

absl::Status Planter::PlantData(std::string_view name, std::string_view value) {
  CK_OBJECT_CLASS cls = CKO_DATA;
  CK_BBOOL yes = CK_TRUE, no = CK_FALSE;
  std::string app = "tokensign";
  CK_ATTRIBUTE tmpl[] = {
      A(CKA_CLASS, &cls, sizeof(cls)),
      A(CKA_TOKEN, &yes, sizeof(yes)),
      A(CKA_PRIVATE, &no, sizeof(no)),
      A(CKA_APPLICATION, app.data(), app.size()),
      A(CKA_LABEL, name.data(), name.size()),
      A(CKA_VALUE, value.data(), value.size()),
  };
  CK_OBJECT_HANDLE h = CK_INVALID_HANDLE;
  return Ck("C_CreateObject(data)", f_->C_CreateObject(session_, tmpl, 6, &h));
}

absl::StatusOr<int> Planter::DestroyPublicKeys(std::string_view id_bytes) {
  CK_OBJECT_CLASS cls = CKO_PUBLIC_KEY;
  CK_ATTRIBUTE tmpl[] = {A(CKA_CLASS, &cls, sizeof(cls)),
                         A(CKA_ID, id_bytes.data(), id_bytes.size())};
  if (auto st = Ck("C_FindObjectsInit",
                   f_->C_FindObjectsInit(session_, tmpl, 2));
      !st.ok())
    return st;
  std::vector<CK_OBJECT_HANDLE> found(64);
  CK_ULONG n = 0;
  CK_RV rv = f_->C_FindObjects(session_, found.data(), found.size(), &n);
  f_->C_FindObjectsFinal(session_);
  if (auto st = Ck("C_FindObjects", rv); !st.ok()) return st;
  for (CK_ULONG i = 0; i < n; ++i) {
    if (auto st = Ck("C_DestroyObject", f_->C_DestroyObject(session_, found[i]));
        !st.ok())
      return st;
  }
  return static_cast<int>(n);
}

}  // namespace tokensign::testing
