// Value types of the hsm/ layer: how to reach a token (HsmConfig), a key as the
// HSM holds it (KeyInfo), what the token says about a private-key object
// (KeyAttributes), every key found in one scan (KeyScan), and the per-Hsm
// observer of failing PKCS#11 calls. Include this, not the facade hsm/hsm.h,
// when only these types are needed.
// Thread-safety: plain values.
#ifndef TOKENSIGN_HSM_HSM_TYPES_H_
#define TOKENSIGN_HSM_HSM_TYPES_H_

#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "crypto/algorithm.h"

namespace tokensign::hsm {

// How to reach the token. Exactly one of token_label / token_serial is set.
// The PIN comes from an environment variable or a file, never from argv
// (pin_value is for in-process callers that read the PIN themselves).
struct HsmConfig {
  std::string module_path;   // e.g. /usr/lib/softhsm/libsofthsm2.so
  std::string token_label;   // find the token by CKA label (SoftHSM moves slot ids)
  std::string token_serial;  // or by serial number
  std::string pin_env;       // name of an environment variable holding the user PIN
  std::string pin_file;      // or a file holding it (trailing newline stripped)
  std::string pin_value;     // or the PIN itself (the OpenSSL provider; never setenv)
  int pool_size = 0;         // sessions; 0 = 2 x hardware threads, capped by the token
};

// A key as the HSM holds it. `id` is CKA_ID as lowercase hex; both halves share it and
// the label.
struct KeyInfo {
  std::string id;         // hex of CKA_ID
  std::string label;      // CKA_LABEL
  crypto::KeyType type;   // EC P-256 / P-384, Ed25519, RSA
  int bits = 0;           // curve or modulus size
  // DER SubjectPublicKeyInfo read from the public half in the generating call;
  // set by GenerateKey only (keep it: the public object is not trusted later).
  std::string spki_der;
};

// What the token says about one private-key object (for custodians and
// auditors: `tokensignctl keys inspect`). Unreadable attributes are absent.
struct KeyAttributes {
  std::string id;     // CKA_ID, hex
  std::string label;  // CKA_LABEL
  std::string key_type;  // "EC-P256", ..., or "CKK 0x.." when unsupported
  int bits = 0;
  // name -> value for CKA_TOKEN, CKA_PRIVATE, CKA_SENSITIVE,
  // CKA_ALWAYS_SENSITIVE, CKA_NEVER_EXTRACTABLE, CKA_EXTRACTABLE, CKA_LOCAL,
  // CKA_SIGN, CKA_DECRYPT, CKA_UNWRAP, CKA_DERIVE, CKA_SIGN_RECOVER.
  std::vector<std::pair<std::string, bool>> flags;
  // Empty when tokensign would use this object; else why not.
  std::string refused;
};

// Told of every failing PKCS#11 call of one Hsm (for metrics such as
// tokensign_hsm_errors_total{function}): the function name and its CK_RV.
// CKR_USER_ALREADY_LOGGED_IN (success for the pool) is not reported. Runs on
// the calling thread: must be thread-safe and quick.
using HsmErrorObserver =
    std::function<void(std::string_view function, unsigned long rv)>;

// What DataStore::Scan found: private records by name (normally one value
// each) and the count of public look-alikes by name (never trusted).
struct DataScan {
  std::map<std::string, std::vector<std::string>> values;
  std::map<std::string, int> public_counts;
};

// What Hsm::ScanKeys found: every private key object on the token, grouped by
// CKA_ID (lowercase hex), each as Hsm::FindKey would have answered for it at
// the scan — the key (label, type, bits; no spki_der), or why it is refused
// (FailedPrecondition naming the attribute that fails the rules, or two
// private keys sharing the CKA_ID; Unimplemented for a key type tokensign
// does not use).
struct KeyScan {
  std::map<std::string, KeyInfo> keys;
  std::map<std::string, absl::Status> refused;
  // The answer for `id_hex` (either case): the key, its refusal, or NotFound
  // ("key id <hex>: no private key with this CKA_ID") as FindKey says it.
  absl::StatusOr<KeyInfo> Find(std::string_view id_hex) const;
};

}  // namespace tokensign::hsm

#endif  // TOKENSIGN_HSM_HSM_TYPES_H_
