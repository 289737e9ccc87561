// OSSL_STORE loader for RFC 7512 `pkcs11:` URIs.
//
// open() parses the URI (strict, see pkcs11_uri.h); load() finds the key on the token
// (by id, or by object label, which must then be unique) and passes it to OpenSSL:
// private keys (type=private or no type) by reference to the tokensign keymgmt, public
// keys (type=public) as DER SubjectPublicKeyInfo that any provider can decode.
// Module mode opens the token named by token= (or TOKENSIGN_TOKEN_LABEL) with the PIN
// from pin-source / pin-value / TOKENSIGN_PIN_ENV / TOKENSIGN_PIN_FILE.
//
// Thread-safety: one StoreCtx per OSSL_STORE_CTX (one thread at a time).
#include <openssl/core_names.h>
#include <openssl/core_object.h>
#include <openssl/err.h>
#include <openssl/params.h>
#include <openssl/x509.h>

#include "crypto/str_cat.h"
#include "hsm/provider/provider_internal.h"

namespace tokensign::hsm::provider {
namespace {

struct StoreCtx {
  ProviderCtx* prov = nullptr;
  Pkcs11Uri uri;
  bool done = false;
};

void* Open(void* provctx, const char* uri) {
  absl::StatusOr<Pkcs11Uri> parsed = ParsePkcs11Uri(uri == nullptr ? "" : uri);
  if (!parsed.ok()) {
    RaiseStatus(parsed.status());
    return nullptr;
  }
  auto* c = new StoreCtx;
  c->prov = static_cast<ProviderCtx*>(provctx);
  c->uri = *std::move(parsed);
  return c;
}

const OSSL_PARAM* SettableCtxParams(void* /*provctx*/) {
  static const OSSL_PARAM kParams[] = {OSSL_PARAM_int(OSSL_STORE_PARAM_EXPECT, nullptr),
                                       OSSL_PARAM_END};
  return kParams;
}

int SetCtxParams(void* /*ctx*/, const OSSL_PARAM /*params*/[]) { return 1; }

absl::StatusOr<std::string> FindId(Hsm& hsm, const Pkcs11Uri& uri) {
  if (!uri.id_hex.empty()) {
    absl::StatusOr<KeyInfo> info = hsm.FindKey(uri.id_hex);
    if (!info.ok()) return info.status();
    if (!uri.object.empty() && info->label != uri.object) {
      return absl::NotFoundError(Cat("pkcs11 URI: key id=", uri.id_hex,
                                              " has label '", info->label, "', not '",
                                              uri.object, "'"));
    }
    return info->id;
  }
  absl::StatusOr<std::vector<KeyInfo>> keys = hsm.ListKeys();
  if (!keys.ok()) return keys.status();
  std::string found;
  for (const KeyInfo& k : *keys) {
    if (k.label != uri.object) continue;
    if (!found.empty() && found != k.id) {
      return absl::FailedPreconditionError(Cat(
          "pkcs11 URI: object='", uri.object, "' names more than one key; add id="));
    }
    found = k.id;
  }
  if (found.empty()) {
    return absl::NotFoundError(
        Cat("pkcs11 URI: no key with object='", uri.object, "' on the token"));
  }
  return found;
}

int Load(void* ctx, OSSL_CALLBACK* object_cb, void* object_cbarg,
         OSSL_PASSPHRASE_CALLBACK* /*pw_cb*/, void* /*pw_cbarg*/) {
  auto* c = static_cast<StoreCtx*>(ctx);
  if (c->done) return 0;
  c->done = true;
  absl::StatusOr<std::shared_ptr<Hsm>> hsm = c->prov->GetHsm(&c->uri);
  if (!hsm.ok()) return RaiseStatus(hsm.status());
  absl::StatusOr<std::string> id = FindId(**hsm, c->uri);
  if (!id.ok()) return RaiseStatus(id.status());
  absl::StatusOr<std::unique_ptr<ProvKey>> key = LoadProvKey(*hsm, *id);
  if (!key.ok()) return RaiseStatus(key.status());
  int object_type = OSSL_OBJECT_PKEY;
  char* data_type = const_cast<char*>(KeymgmtName((*key)->info.type));

  if (c->uri.type == UriObjectType::kPublic) {
    unsigned char* der = nullptr;
    int len = i2d_PUBKEY((*key)->pub.get(), &der);
    if (len <= 0) return RaiseStatus(absl::InternalError("pkcs11 store: i2d_PUBKEY failed"));
    char structure[] = "SubjectPublicKeyInfo";
    OSSL_PARAM params[] = {
        OSSL_PARAM_int(OSSL_OBJECT_PARAM_TYPE, &object_type),
        OSSL_PARAM_utf8_string(OSSL_OBJECT_PARAM_DATA_TYPE, data_type, 0),
        OSSL_PARAM_utf8_string(OSSL_OBJECT_PARAM_DATA_STRUCTURE, structure, 0),
        OSSL_PARAM_octet_string(OSSL_OBJECT_PARAM_DATA, der, static_cast<size_t>(len)),
        OSSL_PARAM_END};
    int ok = object_cb(params, object_cbarg);
    OPENSSL_free(der);
    return ok;
  }
  void* keydata = NewKeyDataForStore(c->prov, std::shared_ptr<const ProvKey>(std::move(*key)));
  OSSL_PARAM params[] = {
      OSSL_PARAM_int(OSSL_OBJECT_PARAM_TYPE, &object_type),
      OSSL_PARAM_utf8_string(OSSL_OBJECT_PARAM_DATA_TYPE, data_type, 0),
      OSSL_PARAM_octet_string(OSSL_OBJECT_PARAM_REFERENCE, &keydata, sizeof(keydata)),
      OSSL_PARAM_END};
  int ok = object_cb(params, object_cbarg);
  FreeKeyDataForStore(keydata);
  return ok;
}

int Eof(void* ctx) { return static_cast<StoreCtx*>(ctx)->done ? 1 : 0; }

int Close(void* ctx) {
  delete static_cast<StoreCtx*>(ctx);
  return 1;
}

#define TS_FN(id, fn) {id, reinterpret_cast<void (*)()>(fn)}

}  // namespace

const OSSL_DISPATCH kPkcs11Store[] = {
    TS_FN(OSSL_FUNC_STORE_OPEN, Open),
    TS_FN(OSSL_FUNC_STORE_SETTABLE_CTX_PARAMS, SettableCtxParams),
    TS_FN(OSSL_FUNC_STORE_SET_CTX_PARAMS, SetCtxParams),
    TS_FN(OSSL_FUNC_STORE_LOAD, Load),
    TS_FN(OSSL_FUNC_STORE_EOF, Eof),
    TS_FN(OSSL_FUNC_STORE_CLOSE, Close),
    {0, nullptr}};

}  // namespace tokensign::hsm::provider
