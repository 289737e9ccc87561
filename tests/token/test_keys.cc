#include "tests/token/test_keys.h"

#include <openssl/core_names.h>
#include <openssl/param_build.h>
#include <openssl/x509.h>

#include <map>
#include <mutex>
#include <stdexcept>

#include "crypto/algorithm.h"
#include "crypto/ssl_ptr.h"
#include "signer/token/evp_jws_signer.h"
#include "signer/token/jwk.h"
#include "signer/token/jws.h"

namespace tokensign::token::testing {
namespace {

crypto::UniqueBn Bn(const nlohmann::json& jwk, const char* name) {
  std::string bytes = B64(jwk.at(name).get<std::string>());
  return crypto::UniqueBn(
      BN_bin2bn(reinterpret_cast<const unsigned char*>(bytes.data()),
                static_cast<int>(bytes.size()), nullptr));
}

}  // namespace

std::string B64(std::string_view b64url) {
  absl::StatusOr<std::string> out = Base64UrlDecode(b64url);
  if (!out.ok()) throw std::runtime_error(std::string(out.status().message()));
  return *out;
}

crypto::UniquePkey GenerateKey(crypto::SignAlgorithm alg, int rsa_bits) {
  switch (alg) {
    case crypto::SignAlgorithm::kES256:
      return crypto::UniquePkey(
          EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256"));
    case crypto::SignAlgorithm::kES384:
      return crypto::UniquePkey(
          EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-384"));
    case crypto::SignAlgorithm::kEdDSA:
      return crypto::UniquePkey(EVP_PKEY_Q_keygen(nullptr, nullptr, "ED25519"));
    case crypto::SignAlgorithm::kPS256:
    case crypto::SignAlgorithm::kRS256:
      return crypto::UniquePkey(EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA",
                                               static_cast<size_t>(rsa_bits)));
  }
  return nullptr;
}

crypto::UniquePkey PublicOnly(EVP_PKEY* key) {
  unsigned char* der = nullptr;
  const int len = i2d_PUBKEY(key, &der);
  if (len <= 0) return nullptr;
  const unsigned char* p = der;
  crypto::UniquePkey pub(d2i_PUBKEY(nullptr, &p, len));
  OPENSSL_free(der);
  return pub;
}

crypto::UniquePkey KeyFromJwk(const nlohmann::json& jwk) {
  const std::string kty = jwk.at("kty").get<std::string>();
  if (kty == "OKP") {
    if (jwk.contains("d")) {
      std::string d = B64(jwk.at("d").get<std::string>());
      return crypto::UniquePkey(EVP_PKEY_new_raw_private_key(
          EVP_PKEY_ED25519, nullptr,
          reinterpret_cast<const unsigned char*>(d.data()), d.size()));
    }
    std::string x = B64(jwk.at("x").get<std::string>());
    return crypto::UniquePkey(EVP_PKEY_new_raw_public_key(
        EVP_PKEY_ED25519, nullptr,
        reinterpret_cast<const unsigned char*>(x.data()), x.size()));
  }
  if (kty != "RSA") return nullptr;
  crypto::SslPtr<OSSL_PARAM_BLD> bld(OSSL_PARAM_BLD_new());
  std::vector<crypto::UniqueBn> keep;
  const bool priv = jwk.contains("d");
  const std::vector<std::pair<const char*, const char*>> members = {
      {"n", OSSL_PKEY_PARAM_RSA_N},
      {"e", OSSL_PKEY_PARAM_RSA_E},
      {"d", OSSL_PKEY_PARAM_RSA_D},
      {"p", OSSL_PKEY_PARAM_RSA_FACTOR1},
      {"q", OSSL_PKEY_PARAM_RSA_FACTOR2},
      {"dp", OSSL_PKEY_PARAM_RSA_EXPONENT1},
      {"dq", OSSL_PKEY_PARAM_RSA_EXPONENT2},
      {"qi", OSSL_PKEY_PARAM_RSA_COEFFICIENT1}};
  for (const auto& [member, param] : members) {
    if (!jwk.contains(member)) continue;
    keep.push_back(Bn(jwk, member));
    OSSL_PARAM_BLD_push_BN(bld.get(), param, keep.back().get());
  }
  crypto::SslPtr<OSSL_PARAM> params(
      OSSL_PARAM_BLD_to_param(bld.get()));
  crypto::UniquePkeyCtx ctx(EVP_PKEY_CTX_new_from_name(nullptr, "RSA", nullptr));
  EVP_PKEY* out = nullptr;
  if (ctx == nullptr || EVP_PKEY_fromdata_init(ctx.get()) != 1 ||
      EVP_PKEY_fromdata(ctx.get(), &out,
                        priv ? EVP_PKEY_KEYPAIR : EVP_PKEY_PUBLIC_KEY,
                        params.get()) != 1) {
    return nullptr;
  }
  return crypto::UniquePkey(out);
}

std::shared_ptr<const crypto::JwsSigner> SoftwareSigner(
    std::shared_ptr<EVP_PKEY> private_key, std::shared_ptr<EVP_PKEY> public_key,
    crypto::SignAlgorithm alg) {
  auto signer = EvpJwsSigner::Create(std::move(private_key),
                                     std::move(public_key), alg);
  if (!signer.ok()) {
    throw std::runtime_error(std::string(signer.status().message()));
  }
  return *std::move(signer);
}

TestSigningKey MakeSigningKey(crypto::SignAlgorithm alg) {
  static std::mutex mu;
  static std::map<crypto::SignAlgorithm, TestSigningKey> cache;
  std::lock_guard<std::mutex> lock(mu);
  auto it = cache.find(alg);
  if (it != cache.end()) return it->second;
  TestSigningKey key;
  key.alg = alg;
  key.private_key =
      std::shared_ptr<EVP_PKEY>(GenerateKey(alg).release(), EVP_PKEY_free);
  key.public_key = std::shared_ptr<EVP_PKEY>(
      PublicOnly(key.private_key.get()).release(), EVP_PKEY_free);
  key.signer = SoftwareSigner(key.private_key, key.public_key, alg);
  absl::StatusOr<std::string> kid = JwkThumbprint(key.public_key.get());
  if (!kid.ok()) throw std::runtime_error(std::string(kid.status().message()));
  key.kid = *kid;
  cache.emplace(alg, key);
  return key;
}

}  // namespace tokensign::token::testing
