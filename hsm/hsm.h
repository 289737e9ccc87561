// tokensign::hsm::Hsm — the one facade the rest of tokensign uses to reach the HSM.
//
// Contract: opens a PKCS#11 module, finds one token, logs in once, keeps a pool of
// sessions, and offers key generation / lookup / destruction, public-key export, signing
// (messages and pre-hashed digests) and small CKO_DATA records (the keyset records).
// Private keys are generated non-extractable and always sensitive; they never leave the HSM.
// Every failure is an absl::Status whose message names the PKCS#11 function and the CKR_
// constant where one is involved. Never crashes on bad input.
//
// Thread-safety: all methods are safe to call from many threads at once. Key generation
// and destruction are serialized internally (SoftHSM 2.6.1 races there); signing is
// concurrent, one pooled session per call.
#ifndef TOKENSIGN_HSM_HSM_H_
#define TOKENSIGN_HSM_HSM_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "crypto/algorithm.h"
#include "crypto/ssl_ptr.h"
#include "hsm/hsm_types.h"

namespace tokensign::hsm {

// Forward-declared implementation pieces (hsm/module.h, hsm/session_pool.h, ...).
class HsmImpl;

class Hsm {
 public:
  // Loads the module, C_Initialize (CKF_OS_LOCKING_OK), finds the token, reads the PIN,
  // logs in and fills the session pool.
  static absl::StatusOr<std::unique_ptr<Hsm>> Open(const HsmConfig& config);
  ~Hsm();
  Hsm(const Hsm&) = delete;
  Hsm& operator=(const Hsm&) = delete;

  // Generates a key pair for `type` (rsa: bits 2048/3072/4096) with a fresh unique CKA_ID
  // and the given label on both halves. Reads the attributes back and refuses (destroying
  // it) a key that is not CKA_ALWAYS_SENSITIVE and CKA_NEVER_EXTRACTABLE.
  absl::StatusOr<KeyInfo> GenerateKey(crypto::KeyType type, std::string_view label, int rsa_bits = 0);
  absl::StatusOr<KeyInfo> FindKey(std::string_view id_hex);
  // Every private key on the token, each checked and answered as FindKey
  // would (KeyScan), in two object searches (private, then public key
  // objects) instead of two per key: a search is linear in the token's
  // objects on SoftHSM, so checking N keys one FindKey at a time costs N^2.
  // Also refills the key-handle cache with the keys that passed, so signing
  // and ResolveKey then need no search for them. Without `with_public_keys`
  // one search (the public objects) less; PublicKey of a key not pinned then
  // searches for its public object itself.
  absl::StatusOr<KeyScan> ScanKeys(bool with_public_keys = true);
  // id, type and bits of a key through the key-handle cache (filled by
  // ScanKeys, FindKey, GenerateKey and signing; emptied when the module is
  // re-initialized): searches and checks the key as FindKey does only on a
  // miss. The label is not read (empty). For the provider, which loads a key
  // that was just checked, and the audit key at start (after the keyset scan).
  absl::StatusOr<KeyInfo> ResolveKey(std::string_view id_hex);
  absl::StatusOr<std::vector<KeyInfo>> ListKeys();
  absl::Status DestroyKey(std::string_view id_hex);
  // Every private-key object with this CKA_ID (also public look-alikes, which
  // tokensign never uses), with its attributes. Reads only; no PIN-less
  // shortcut: the daemon's session answers.
  absl::StatusOr<std::vector<KeyAttributes>> InspectKey(std::string_view id_hex);

  // Public half as an OpenSSL key (default library context): the pinned key
  // when PinPublicKey named one, else read from the token's public-key object
  // (which anyone may swap without the PIN: prove it with a signature before
  // trusting it).
  absl::StatusOr<crypto::UniquePkey> PublicKey(std::string_view id_hex);
  // Makes `spki_der` (DER SubjectPublicKeyInfo) the public key of `id_hex` for
  // PublicKey and the provider, instead of the token's public object.
  absl::Status PinPublicKey(std::string_view id_hex, std::string_view spki_der);
  // The same with a key the caller already parsed (a keyset load checks the
  // record's SPKI and pins that very key: no second parse, which costs
  // OpenSSL 3 a decoder set-up per key). PublicKey then hands out `key`
  // itself; nobody may change it after this. InvalidArgument when null.
  absl::Status PinPublicKey(std::string_view id_hex,
                            std::shared_ptr<EVP_PKEY> key);

  // Signs `message` with JOSE semantics for `alg` (ES256/ES384: SHA-2 + ECDSA, raw r||s of
  // exact length; EdDSA: Ed25519 over the message; RS256: PKCS#1 v1.5 SHA-256; PS256: PSS
  // SHA-256, MGF1-SHA-256, salt 32). Refuses an alg that does not fit the key's type.
  absl::StatusOr<std::string> Sign(std::string_view id_hex, crypto::SignAlgorithm alg,
                                   std::string_view message);
  // Signs a digest already computed by the caller (ECDSA raw r||s; RSA PKCS#1 v1.5 with
  // DigestInfo for `digest_nid`, or PSS with salt `pss_salt_len`). Not for Ed25519.
  absl::StatusOr<std::string> SignDigest(std::string_view id_hex, crypto::SignAlgorithm alg,
                                         std::string_view digest);

  // Small named records kept on the token as CKO_DATA objects (CKA_PRIVATE, CKA_TOKEN).
  // PutData replaces an existing record of that name atomically enough for our use
  // (create new, then destroy old). GetData returns nullopt when absent. After a
  // crash between create and destroy two records exist: GetAllData returns
  // every copy (handles do not tell which is newer; keep a version in the value).
  absl::Status PutData(std::string_view name, std::string_view value);
  absl::StatusOr<std::optional<std::string>> GetData(std::string_view name);
  absl::StatusOr<std::vector<std::string>> GetAllData(std::string_view name);
  // AddData creates a record without touching other copies; RemoveData
  // destroys the copies whose value is exactly `value`. Only private token
  // objects are records: CountPublicData counts public look-alikes (created
  // without the PIN; never returned by Get*).
  absl::Status AddData(std::string_view name, std::string_view value);
  absl::Status RemoveData(std::string_view name, std::string_view value);
  absl::StatusOr<int> CountPublicData(std::string_view name);
  // Every record whose name starts with `prefix` (private values by name,
  // public look-alike counts by name) in one object search.
  absl::StatusOr<DataScan> ScanData(std::string_view prefix);

  // Reports every failing PKCS#11 call of this Hsm to `observer` (metrics);
  // replaces the previous one, nullptr clears it. Thread-safe; clear it
  // before what it captures goes away.
  void SetErrorObserver(HsmErrorObserver observer);

  // True while the pool holds a logged-in session (used by /readyz).
  bool Healthy();
  // Token label actually opened (for logs and URIs).
  const std::string& token_label() const;
  // Empty, or why the session pool holds fewer sessions than asked for (the
  // token answered CKR_SESSION_COUNT while it was filled); for the log.
  const std::string& pool_note() const;

  // Sessions in the pool (what the token gave; see pool_note).
  int pool_size() const;

  // The pieces behind the facade, for tests only (the benchmark's raw
  // ceiling and tests acting behind the pool's back use hsm/hsm_testing.h).
  HsmImpl& impl() { return *impl_; }

 private:
  explicit Hsm(std::unique_ptr<HsmImpl> impl);
  std::unique_ptr<HsmImpl> impl_;
};

}  // namespace tokensign::hsm

#endif  // TOKENSIGN_HSM_HSM_H_
