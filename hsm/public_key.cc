#include "hsm/public_key.h"

#include <openssl/core_names.h>
#include <openssl/param_build.h>

#include <memory>

#include "crypto/algorithm.h"
#include "crypto/openssl_error.h"
#include "crypto/ssl_ptr.h"
#include "crypto/str_cat.h"
#include "hsm/objects.h"

namespace tokensign::hsm {
namespace {

absl::StatusOr<crypto::UniquePkey> FromData(const char* key_type, int selection,
                                    OSSL_PARAM_BLD* bld) {
  crypto::SslPtr<OSSL_PARAM> params(OSSL_PARAM_BLD_to_param(bld));
  if (params == nullptr) return crypto::OpenSslError("OSSL_PARAM_BLD_to_param");
  crypto::UniquePkeyCtx ctx(EVP_PKEY_CTX_new_from_name(nullptr, key_type, "?provider=default"));
  if (ctx == nullptr) return crypto::OpenSslError("EVP_PKEY_CTX_new_from_name");
  EVP_PKEY* pkey = nullptr;
  if (EVP_PKEY_fromdata_init(ctx.get()) != 1 ||
      EVP_PKEY_fromdata(ctx.get(), &pkey, selection, params.get()) != 1) {
    return crypto::OpenSslError(Cat("EVP_PKEY_fromdata(", key_type, ")"));
  }
  return crypto::UniquePkey(pkey);
}

}  // namespace

absl::StatusOr<std::string> UnwrapEcPoint(std::string_view value,
                                          size_t raw_size) {
  if (value.size() == raw_size) return std::string(value);
  // DER OCTET STRING: 0x04, length (short or 0x81 form), contents.
  if (value.size() >= 2 && value[0] == 0x04) {
    size_t header = 2;
    size_t length = static_cast<unsigned char>(value[1]);
    if (length == 0x81 && value.size() >= 3) {
      header = 3;
      length = static_cast<unsigned char>(value[2]);
    }
    if (length == raw_size && value.size() == header + length) {
      return std::string(value.substr(header));
    }
  }
  return absl::InvalidArgumentError(
      Cat("CKA_EC_POINT: ", value.size(), " bytes is neither a raw point of ",
          raw_size, " bytes nor a DER OCTET STRING holding one"));
}

absl::StatusOr<crypto::UniquePkey> ExportPublicKey(const P11& p11,
                                           CK_SESSION_HANDLE session,
                                           CK_OBJECT_HANDLE public_key,
                                           crypto::KeyType type) {
  if (public_key == CK_INVALID_HANDLE) {
    return absl::NotFoundError("PublicKey: the key has no public-key object");
  }
  crypto::SslPtr<OSSL_PARAM_BLD> bld(OSSL_PARAM_BLD_new());
  if (bld == nullptr) return crypto::OpenSslError("OSSL_PARAM_BLD_new");
  if (type == crypto::KeyType::kRsa) {
    absl::StatusOr<std::string> n =
        GetAttribute(p11, session, public_key, CKA_MODULUS);
    if (!n.ok()) return n.status();
    absl::StatusOr<std::string> e =
        GetAttribute(p11, session, public_key, CKA_PUBLIC_EXPONENT);
    if (!e.ok()) return e.status();
    crypto::UniqueBn bn_n(BN_bin2bn(reinterpret_cast<const unsigned char*>(n->data()),
                            static_cast<int>(n->size()), nullptr));
    crypto::UniqueBn bn_e(BN_bin2bn(reinterpret_cast<const unsigned char*>(e->data()),
                            static_cast<int>(e->size()), nullptr));
    if (bn_n == nullptr || bn_e == nullptr ||
        OSSL_PARAM_BLD_push_BN(bld.get(), OSSL_PKEY_PARAM_RSA_N, bn_n.get()) !=
            1 ||
        OSSL_PARAM_BLD_push_BN(bld.get(), OSSL_PKEY_PARAM_RSA_E, bn_e.get()) !=
            1) {
      return crypto::OpenSslError("PublicKey: RSA parameters");
    }
    return FromData("RSA", EVP_PKEY_PUBLIC_KEY, bld.get());
  }
  absl::StatusOr<std::string> point =
      GetAttribute(p11, session, public_key, CKA_EC_POINT);
  if (!point.ok()) return point.status();
  if (type == crypto::KeyType::kEd25519) {
    absl::StatusOr<std::string> raw = UnwrapEcPoint(*point, 32);
    if (!raw.ok()) return raw.status();
    EVP_PKEY* pkey = EVP_PKEY_new_raw_public_key(
        EVP_PKEY_ED25519, nullptr,
        reinterpret_cast<const unsigned char*>(raw->data()), raw->size());
    if (pkey == nullptr) return crypto::OpenSslError("EVP_PKEY_new_raw_public_key");
    return crypto::UniquePkey(pkey);
  }
  bool p256 = type == crypto::KeyType::kEcP256;
  absl::StatusOr<std::string> raw = UnwrapEcPoint(*point, p256 ? 65 : 97);
  if (!raw.ok()) return raw.status();
  const char* group = p256 ? "P-256" : "P-384";
  if (OSSL_PARAM_BLD_push_utf8_string(bld.get(), OSSL_PKEY_PARAM_GROUP_NAME,
                                      group, 0) != 1 ||
      OSSL_PARAM_BLD_push_octet_string(bld.get(), OSSL_PKEY_PARAM_PUB_KEY,
                                       raw->data(), raw->size()) != 1) {
    return crypto::OpenSslError("PublicKey: EC parameters");
  }
  return FromData("EC", EVP_PKEY_PUBLIC_KEY, bld.get());
}

}  // namespace tokensign::hsm
