// Turns a JOSE algorithm + message (or digest) into one PKCS#11 signing
// operation, and runs it on a session. ES256/ES384: SHA-2 in OpenSSL,
// CKM_ECDSA, raw r||s. EdDSA: CKM_EDDSA over the message. RS256:
// CKM_SHA256_RSA_PKCS when the module lists it, else CKM_RSA_PKCS over the
// DigestInfo. PS256: CKM_SHA256_RSA_PKCS_PSS when listed, else CKM_RSA_PKCS_PSS
// over the digest; SHA-256, MGF1-SHA-256, salt 32. Thread-safety: stateless
// functions and plain values.
#ifndef TOKENSIGN_HSM_SIGNING_H_
#define TOKENSIGN_HSM_SIGNING_H_

#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "crypto/algorithm.h"
#include "hsm/key_store.h"
#include "hsm/pkcs11.h"
#include "hsm/pkcs11_call.h"

namespace tokensign::hsm {

// The signing mechanisms the module offers (asked once at Open).
struct Mechanisms {
  bool ecdsa = false;
  bool eddsa = false;
  bool rsa_pkcs = false;
  bool rsa_pkcs_pss = false;
  bool sha256_rsa_pkcs = false;
  bool sha256_rsa_pkcs_pss = false;
  static Mechanisms From(const std::vector<CK_MECHANISM_TYPE>& list);
};

// One prepared C_SignInit + C_Sign: mechanism (+ PSS parameters) and input
// bytes.
struct SignInput {
  CK_MECHANISM_TYPE mechanism = 0;
  bool pss = false;
  CK_RSA_PKCS_PSS_PARAMS pss_params{};
  std::string_view
      data;  // what C_Sign gets; points into `buffer` or the caller's
  unsigned char buffer[19 + 64];  // digest or DigestInfo || digest
};

// Checks that `alg` fits the key and the module, hashes as needed. `message`
// must outlive `input`.
absl::Status PrepareMessage(const Mechanisms& mechs, const KeyHandles& key,
                            crypto::SignAlgorithm alg, std::string_view message,
                            SignInput& input);
// Same for a caller-computed digest (SHA-256 for ES256/RS256/PS256, SHA-384 for
// ES384).
absl::Status PrepareDigest(const Mechanisms& mechs, const KeyHandles& key,
                           crypto::SignAlgorithm alg, std::string_view digest,
                           SignInput& input);

// C_SignInit + C_Sign on `session`; the signature is exactly key.signature_size
// bytes. A failure that leaves the session's operation state stuck
// (CKR_OPERATION_ACTIVE, CKR_OPERATION_NOT_INITIALIZED, CKR_BUFFER_TOO_SMALL)
// is a broken-session CK_RV (IsBrokenSessionRv), so Lease::Check marks the
// session broken and the pool re-opens it.
absl::StatusOr<std::string> SignOnce(const P11& p11, CK_SESSION_HANDLE session,
                                     const KeyHandles& key, SignInput& input);

}  // namespace tokensign::hsm

#endif  // TOKENSIGN_HSM_SIGNING_H_
