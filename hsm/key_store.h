// Key pairs on the token: generation with tokensign's template, lookup by
// CKA_ID through a handle cache (no C_FindObjects on the signing path), a scan
// of every key at once (key_scan.cc: two searches, for loading many keys),
// listing and destruction.
//
// Contract: both halves of a key share a random 16-byte CKA_ID and the caller's
// CKA_LABEL. Only private token objects (CKA_PRIVATE, CKA_TOKEN) are ever
// resolved or listed: anyone may create public objects without the PIN. Every
// key is checked when it is resolved from the token (not only when generated):
// CheckPrivateKeyAttributes must pass or the key is refused
// (FailedPrecondition). The public-key object is never trusted after
// generation: Generate returns the SPKI read in the generating call, and a
// caller that keeps it elsewhere (the keyset record) pins it with
// PinPublicKey so that Hsm::PublicKey answers from it. Generated private keys are CKA_TOKEN, CKA_PRIVATE, CKA_SENSITIVE,
// CKA_SIGN and not
// CKA_EXTRACTABLE/CKA_DECRYPT/CKA_UNWRAP/CKA_DERIVE/CKA_COPYABLE; after
// generation the attributes are read back and a key that is not
// CKA_ALWAYS_SENSITIVE and CKA_NEVER_EXTRACTABLE (or that came back
// extractable) is destroyed and refused.
//
// Thread-safety: all methods are thread-safe. Generate and Destroy are
// serialized by an internal mutex (SoftHSM 2.6.1 races there); Resolve takes a
// shared lock on the cache, Scan replaces it under the exclusive lock.
#ifndef TOKENSIGN_HSM_KEY_STORE_H_
#define TOKENSIGN_HSM_KEY_STORE_H_

#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "crypto/algorithm.h"
#include "crypto/ssl_ptr.h"
#include "hsm/hsm_types.h"
#include "hsm/pkcs11.h"
#include "hsm/recovery.h"
#include "hsm/session_pool.h"

namespace tokensign::hsm {

// What the signing path needs about a key; small and copied by value.
struct KeyHandles {
  CK_OBJECT_HANDLE private_key = CK_INVALID_HANDLE;
  CK_OBJECT_HANDLE public_key = CK_INVALID_HANDLE;
  crypto::KeyType type = crypto::KeyType::kEcP256;
  int bits = 0;
  CK_ULONG signature_size = 0;  // exact bytes of a signature by this key
};

// The boolean attribute rules of a private key tokensign uses, in the order
// CheckPrivateKeyAttributes applies them (KeyStore::Scan reads them in bulk).
struct KeyAttributeRule {
  CK_ATTRIBUTE_TYPE type;
  bool value;
  const char* name;
};
inline constexpr KeyAttributeRule kPrivateKeyRules[] = {
    {CKA_TOKEN, true, "CKA_TOKEN"},
    {CKA_PRIVATE, true, "CKA_PRIVATE"},
    {CKA_SENSITIVE, true, "CKA_SENSITIVE"},
    {CKA_ALWAYS_SENSITIVE, true, "CKA_ALWAYS_SENSITIVE"},
    {CKA_NEVER_EXTRACTABLE, true, "CKA_NEVER_EXTRACTABLE"},
    {CKA_LOCAL, true, "CKA_LOCAL"},
    {CKA_EXTRACTABLE, false, "CKA_EXTRACTABLE"},
    {CKA_DECRYPT, false, "CKA_DECRYPT"},
    {CKA_UNWRAP, false, "CKA_UNWRAP"},
    {CKA_DERIVE, false, "CKA_DERIVE"},
    {CKA_SIGN_RECOVER, false, "CKA_SIGN_RECOVER"},
};

// OK when `private_key` is a CKO_PRIVATE_KEY with CKA_TOKEN, CKA_PRIVATE,
// CKA_SENSITIVE, CKA_ALWAYS_SENSITIVE, CKA_NEVER_EXTRACTABLE and CKA_LOCAL true
// and CKA_EXTRACTABLE, CKA_DECRYPT, CKA_UNWRAP, CKA_DERIVE, CKA_SIGN_RECOVER
// false; otherwise FailedPrecondition naming the first attribute that is not
// ("CKA_LOCAL = false (want true)"), or the session error. The boolean rules
// are kPrivateKeyRules (shared with KeyStore::Scan's bulk read).
absl::Status CheckPrivateKeyAttributes(const P11& p11,
                                       CK_SESSION_HANDLE session,
                                       CK_OBJECT_HANDLE private_key);

// Type, bits and signature size of a private key from its CKA_KEY_TYPE and
// CKA_MODULUS (RSA) or CKA_EC_PARAMS (EC, EdDSA); Unimplemented for a type or
// curve tokensign does not use. Handles are left invalid.
absl::StatusOr<KeyHandles> DescribeValues(CK_ULONG key_type,
                                          std::string_view value);

// The refusals of a key (FailedPrecondition, naming the key and the rule):
// its private object failed CheckPrivateKeyAttributes with `checked`; `count`
// private objects share its CKA_ID.
absl::Status RefuseKeyAttributes(std::string_view id_hex,
                                 const absl::Status& checked);
absl::Status RefuseSharedId(std::string_view id_hex, size_t count);

class KeyStore {
 public:
  // `object_writes` serializes every object creation and destruction on the
  // token (shared with DataStore): SoftHSM 2.6.1 races there.
  KeyStore(SessionPool* pool, std::mutex* object_writes)
      : pool_(pool), recovery_(pool), lifecycle_mu_(object_writes) {}

  absl::StatusOr<KeyInfo> Generate(crypto::KeyType type, std::string_view label,
                                   int rsa_bits);
  // Cached; searches the token only on a miss (or after the pool's epoch
  // changed).
  absl::StatusOr<KeyHandles> Resolve(std::string_view id_hex);
  // The same on a leased session, for handles valid in `epoch` (inside
  // Recovery::Run). A key not found while the session is logged out is
  // CKR_USER_NOT_LOGGED_IN (re-login, then search again), not NotFound.
  absl::StatusOr<KeyHandles> Resolve(SessionPool::Lease& lease, uint64_t epoch,
                                     std::string_view id_hex);
  // Recovery policy for an operation on key `id_hex` (which must outlive the
  // Run): a stale handle drops its cache entry.
  Recovery::Policy KeyPolicy(std::string_view op,
                             const std::string_view& id_hex);
  absl::StatusOr<KeyInfo> Find(std::string_view id_hex);
  // Every private key object in one search and every public one in another
  // (key_scan.cc): each private object's attributes read in two calls, checked
  // as Search checks one key, grouped by CKA_ID. Replaces the handle cache
  // with the keys that passed (so Resolve and signing need no search for
  // them). A search per key is linear in the token's objects on SoftHSM, so
  // resolving N keys one by one costs N^2. Without `with_public_keys` the
  // public objects are not searched (one search less, ~5% of a 1,000-key
  // daemon start): the cached keys then carry no public-key handle, and
  // PublicKey looks one up when it needs it (FindPublicObject).
  absl::StatusOr<KeyScan> Scan(bool with_public_keys = true);
  // The one public-key object with CKA_ID `id_hex` (a search), or
  // CK_INVALID_HANDLE when there is none or more than one.
  absl::StatusOr<CK_OBJECT_HANDLE> FindPublicObject(SessionPool::Lease& lease,
                                                    std::string_view id_hex);
  absl::StatusOr<std::vector<KeyInfo>> List();
  absl::StatusOr<std::vector<KeyAttributes>> Inspect(std::string_view id_hex);
  absl::Status Destroy(std::string_view id_hex);
  // Drops a cache entry (after CKR_KEY_HANDLE_INVALID).
  void Invalidate(std::string_view id_hex);
  // The trusted public key of `id_hex` (parsed from a DER SPKI kept outside
  // the token's public objects), or null. Parsed once, when pinned: an SPKI
  // parse costs OpenSSL 3 a decoder set-up (~0.25 ms), once per key at every
  // load otherwise. The key is read-only once pinned; holders share it.
  void PinPublicKey(std::string_view id_hex, std::shared_ptr<EVP_PKEY> key);
  std::shared_ptr<EVP_PKEY> PinnedPublicKey(std::string_view id_hex);

 private:
  absl::StatusOr<KeyInfo> GenerateOn(SessionPool::Lease& lease, uint64_t epoch,
                                     crypto::KeyType type,
                                     std::string_view label, int rsa_bits,
                                     std::string* orphan_id);
  // Destroys every object with CKA_ID `id_bytes` (a pair whose generation
  // reply was lost), on a session of its own; errors ignored.
  void DestroyById(std::string_view id_bytes);
  absl::StatusOr<std::vector<KeyAttributes>> InspectOn(
      SessionPool::Lease& lease, std::string_view id_hex,
      std::string_view id_bytes);
  absl::StatusOr<std::vector<KeyInfo>> ListOn(SessionPool::Lease& lease);
  std::optional<KeyHandles> Cached(uint64_t epoch, std::string_view id_hex);
  // Reads type/bits of a private key object.
  absl::StatusOr<KeyHandles> Describe(SessionPool::Lease& lease,
                                      CK_OBJECT_HANDLE private_key);
  absl::StatusOr<KeyHandles> Search(SessionPool::Lease& lease,
                                    std::string_view id_bytes,
                                    std::string_view id_hex);
  absl::StatusOr<KeyScan> ScanOn(SessionPool::Lease& lease, uint64_t epoch,
                                 bool with_public_keys);
  absl::StatusOr<KeyInfo> ToInfo(SessionPool::Lease& lease,
                                 std::string_view id_hex,
                                 const KeyHandles& handles);

  SessionPool* pool_;
  Recovery recovery_;
  std::mutex* lifecycle_mu_;  // serializes generation and destruction
  std::shared_mutex cache_mu_;
  uint64_t cache_epoch_ = 0;  // pool epoch the cache belongs to
  absl::flat_hash_map<std::string, KeyHandles>
      cache_;  // lowercase hex id -> handles
  absl::flat_hash_map<std::string, std::shared_ptr<EVP_PKEY>>
      pinned_;  // lowercase hex id -> trusted public key (survives epochs)
};

}  // namespace tokensign::hsm

#endif  // TOKENSIGN_HSM_KEY_STORE_H_
