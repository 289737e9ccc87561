#include "hsm/signing.h"

#include <openssl/sha.h>

#include <algorithm>
#include <cstring>

#include "crypto/algorithm.h"
#include "crypto/str_cat.h"

namespace tokensign::hsm {
namespace {

// DER DigestInfo prefix for SHA-256 (RFC 8017, section 9.2 note 1).
constexpr unsigned char kSha256DigestInfo[] = {
    0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01,
    0x65, 0x03, 0x04, 0x02, 0x01, 0x05, 0x00, 0x04, 0x20};

absl::Status CheckKey(const KeyHandles& key, crypto::SignAlgorithm alg) {
  if (crypto::KeyTypeFor(alg) != key.type) {
    return absl::InvalidArgumentError(
        Cat("Sign: algorithm ", crypto::SignAlgorithmName(alg), " needs a ",
            crypto::KeyTypeName(crypto::KeyTypeFor(alg)), " key, this key is ",
            crypto::KeyTypeName(key.type)));
  }
  if (key.type == crypto::KeyType::kRsa && key.bits < 2048) {
    return absl::FailedPreconditionError(
        Cat("Sign: RSA key of ", key.bits, " bits is below the 2048 minimum"));
  }
  return absl::OkStatus();
}

absl::Status Missing(std::string_view mechanism, crypto::SignAlgorithm alg) {
  return absl::UnimplementedError(Cat("Sign: the PKCS#11 module lists no ",
                                      mechanism, " needed for ",
                                      crypto::SignAlgorithmName(alg)));
}

void SetPss(SignInput& input) {
  input.pss = true;
  input.pss_params.hashAlg = CKM_SHA256;
  input.pss_params.mgf = CKG_MGF1_SHA256;
  input.pss_params.sLen = 32;
}

// Fills input for a digest already in input.buffer[0..size).
absl::Status FromDigest(const Mechanisms& mechs, crypto::SignAlgorithm alg, size_t size,
                        SignInput& input) {
  switch (alg) {
    case crypto::SignAlgorithm::kES256:
    case crypto::SignAlgorithm::kES384:
      if (!mechs.ecdsa) return Missing("CKM_ECDSA", alg);
      input.mechanism = CKM_ECDSA;
      input.data =
          std::string_view(reinterpret_cast<char*>(input.buffer), size);
      return absl::OkStatus();
    case crypto::SignAlgorithm::kRS256:
      if (!mechs.rsa_pkcs) return Missing("CKM_RSA_PKCS", alg);
      input.mechanism = CKM_RSA_PKCS;
      std::memmove(input.buffer + sizeof(kSha256DigestInfo), input.buffer,
                   size);
      std::memcpy(input.buffer, kSha256DigestInfo, sizeof(kSha256DigestInfo));
      input.data = std::string_view(reinterpret_cast<char*>(input.buffer),
                                    sizeof(kSha256DigestInfo) + size);
      return absl::OkStatus();
    case crypto::SignAlgorithm::kPS256:
      if (!mechs.rsa_pkcs_pss) return Missing("CKM_RSA_PKCS_PSS", alg);
      input.mechanism = CKM_RSA_PKCS_PSS;
      SetPss(input);
      input.data =
          std::string_view(reinterpret_cast<char*>(input.buffer), size);
      return absl::OkStatus();
    case crypto::SignAlgorithm::kEdDSA:
      break;
  }
  return absl::InvalidArgumentError(
      "SignDigest: EdDSA signs the message itself, not a digest");
}

size_t DigestSize(crypto::SignAlgorithm alg) {
  return alg == crypto::SignAlgorithm::kES384 ? SHA384_DIGEST_LENGTH
                                      : SHA256_DIGEST_LENGTH;
}

}  // namespace

Mechanisms Mechanisms::From(const std::vector<CK_MECHANISM_TYPE>& list) {
  auto has = [&](CK_MECHANISM_TYPE m) {
    return std::find(list.begin(), list.end(), m) != list.end();
  };
  Mechanisms mechs;
  mechs.ecdsa = has(CKM_ECDSA);
  mechs.eddsa = has(CKM_EDDSA);
  mechs.rsa_pkcs = has(CKM_RSA_PKCS);
  mechs.rsa_pkcs_pss = has(CKM_RSA_PKCS_PSS);
  mechs.sha256_rsa_pkcs = has(CKM_SHA256_RSA_PKCS);
  mechs.sha256_rsa_pkcs_pss = has(CKM_SHA256_RSA_PKCS_PSS);
  return mechs;
}

absl::Status PrepareMessage(const Mechanisms& mechs, const KeyHandles& key,
                            crypto::SignAlgorithm alg, std::string_view message,
                            SignInput& input) {
  if (absl::Status s = CheckKey(key, alg); !s.ok()) return s;
  const auto* bytes = reinterpret_cast<const unsigned char*>(message.data());
  switch (alg) {
    case crypto::SignAlgorithm::kEdDSA:
      if (!mechs.eddsa) return Missing("CKM_EDDSA", alg);
      input.mechanism = CKM_EDDSA;
      input.data = message;
      return absl::OkStatus();
    case crypto::SignAlgorithm::kRS256:
      if (mechs.sha256_rsa_pkcs) {
        input.mechanism = CKM_SHA256_RSA_PKCS;
        input.data = message;
        return absl::OkStatus();
      }
      break;
    case crypto::SignAlgorithm::kPS256:
      if (mechs.sha256_rsa_pkcs_pss) {
        input.mechanism = CKM_SHA256_RSA_PKCS_PSS;
        SetPss(input);
        input.data = message;
        return absl::OkStatus();
      }
      break;
    case crypto::SignAlgorithm::kES256:
    case crypto::SignAlgorithm::kES384:
      break;
  }
  if (alg == crypto::SignAlgorithm::kES384) {
    SHA384(bytes, message.size(), input.buffer);
  } else {
    SHA256(bytes, message.size(), input.buffer);
  }
  return FromDigest(mechs, alg, DigestSize(alg), input);
}

absl::Status PrepareDigest(const Mechanisms& mechs, const KeyHandles& key,
                           crypto::SignAlgorithm alg, std::string_view digest,
                           SignInput& input) {
  if (alg == crypto::SignAlgorithm::kEdDSA) {
    return absl::InvalidArgumentError(
        "SignDigest: EdDSA signs the message itself, not a digest");
  }
  if (absl::Status s = CheckKey(key, alg); !s.ok()) return s;
  if (digest.size() != DigestSize(alg)) {
    return absl::InvalidArgumentError(
        Cat("SignDigest: ", crypto::SignAlgorithmName(alg), " needs a ",
            DigestSize(alg), "-byte digest, got ", digest.size()));
  }
  std::memcpy(input.buffer, digest.data(), digest.size());
  return FromDigest(mechs, alg, digest.size(), input);
}

absl::StatusOr<std::string> SignOnce(const P11& p11, CK_SESSION_HANDLE session,
                                     const KeyHandles& key, SignInput& input) {
  CK_MECHANISM mech{input.mechanism, nullptr, 0};
  if (input.pss) {
    mech.pParameter = &input.pss_params;
    mech.ulParameterLen = sizeof(input.pss_params);
  }
  absl::Status status =
      TS_P11(p11, C_SignInit, session, &mech, key.private_key);
  if (!status.ok()) return status;
  std::string signature(key.signature_size, '\0');
  CK_ULONG size = signature.size();
  status = TS_P11(
      p11, C_Sign, session,
      reinterpret_cast<CK_BYTE_PTR>(const_cast<char*>(input.data.data())),
      static_cast<CK_ULONG>(input.data.size()),
      reinterpret_cast<CK_BYTE_PTR>(signature.data()), &size);
  if (!status.ok()) return status;
  if (size != key.signature_size) {
    return absl::InternalError(Cat("C_Sign: returned ", size,
                                   " bytes, expected ", key.signature_size));
  }
  return signature;
}

}  // namespace tokensign::hsm
