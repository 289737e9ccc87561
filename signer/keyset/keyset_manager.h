// KeysetManager: the issuers' signing keys as the service sees them, behind one
// class.
//
// Contract: the HSM is the source of truth. Load() reads each configured
// issuer's keyset record (CKO_DATA "keyset/<issuer>", absent = no keys) and,
// for every key that is not destroyed, the public key (Hsm::PublicKey) and, for
// the active key, the private key through the PrivateKeyLoader (HSM-backed
// EVP_PKEY from hsm/provider). kid = RFC 7638 thumbprint. ActiveKey() and
// Jwks() answer from that in-memory snapshot. Lifecycle operations (CreateKey,
// ActivateKey, RetireKey, RotateKey, DestroyKey, EnsureActiveKey) change the
// HSM first, then write the record back, then swap the snapshot. Errors:
// NotFound (issuer not loaded / unknown kid), FailedPrecondition (no active
// key; illegal state transition; destroying a live key without force).
//
// Thread-safety: all methods are safe from many threads. Readers (ActiveKey,
// Jwks, Keyset) take a shared lock and copy a shared_ptr; lifecycle operations
// are serialized by an internal mutex.
#ifndef TOKENSIGN_SIGNER_KEYSET_KEYSET_MANAGER_H_
#define TOKENSIGN_SIGNER_KEYSET_KEYSET_MANAGER_H_

#include <openssl/evp.h>

#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "hsm/hsm.h"
#include "signer/keyset/keyset_record.h"
#include "signer/token/minter.h"

namespace tokensign::keyset {

// Returns an EVP_PKEY that signs with the HSM private key `id_hex`
// (hsm/provider).
using PrivateKeyLoader =
    std::function<absl::StatusOr<std::shared_ptr<EVP_PKEY>>(
        std::string_view id_hex)>;

// Result of a rotation: the new active key and the one it replaced (if any).
struct Rotation {
  KeyRecord active;
  std::optional<KeyRecord> retired;
};

class KeysetManager {
 public:
  using Clock = std::function<absl::Time()>;

  KeysetManager(std::shared_ptr<hsm::Hsm> hsm, PrivateKeyLoader private_keys,
                Clock clock = absl::Now);

  // (Re)reads the records of `issuers` from the HSM and replaces the snapshot
  // for them; issuers not listed are dropped. Fails without changing anything
  // on an error.
  absl::Status Load(const std::vector<std::string>& issuers);

  // Re-reads the records of the loaded issuers and swaps in those that changed
  // on the HSM (another replica rotated, created or destroyed a key): so this
  // daemon signs with the keyset's active key and publishes every key other
  // replicas publish. Unchanged issuers keep their state (and prepared
  // contexts). Returns how many changed; on an error nothing changes for
  // that issuer and the first error is returned after the others are tried.
  absl::StatusOr<int> Refresh();

  // The issuer's signing key. NotFound: issuer unknown; FailedPrecondition: no
  // active key.
  absl::StatusOr<std::shared_ptr<const token::SigningKey>> ActiveKey(
      std::string_view issuer) const;
  // {"keys":[...]} with every pending, active and retired key, as JSON text.
  absl::StatusOr<std::string> Jwks(std::string_view issuer) const;
  // The issuer's record as last loaded or written.
  absl::StatusOr<KeysetRecord> Keyset(std::string_view issuer) const;
  // Seconds since activation of the active key, per issuer (issuers without one
  // omitted).
  std::map<std::string, int64_t> ActiveKeyAges() const;

  // Dev mode: if the issuer has no active key, creates one with `alg` and
  // activates it.
  absl::StatusOr<KeyRecord> EnsureActiveKey(std::string_view issuer,
                                            hsm::SignAlgorithm alg);

  // Creates a pending key in the HSM and records it.
  absl::StatusOr<KeyRecord> CreateKey(std::string_view issuer,
                                      hsm::SignAlgorithm alg);
  // pending -> active; the previous active key becomes retired.
  absl::StatusOr<KeyRecord> ActivateKey(std::string_view issuer,
                                        std::string_view kid);
  // pending|active -> retired.
  absl::StatusOr<KeyRecord> RetireKey(std::string_view issuer,
                                      std::string_view kid);
  // CreateKey + ActivateKey at once (no publish lead yet; the lifecycle work
  // adds it).
  absl::StatusOr<Rotation> RotateKey(std::string_view issuer,
                                     hsm::SignAlgorithm alg);
  // Destroys the HSM object; the record keeps the key as destroyed. Refuses an
  // active key, or a retired key retired less than `live_window` ago, unless
  // `force`.
  absl::StatusOr<KeyRecord> DestroyKey(std::string_view issuer,
                                       std::string_view kid, bool force,
                                       absl::Duration live_window);

 private:
  struct IssuerState {
    KeysetRecord record;
    std::map<std::string, std::shared_ptr<EVP_PKEY>> public_keys;  // by kid
    std::shared_ptr<const token::SigningKey> active;
    std::string jwks_json;
  };

  // Builds the full state for a record: public keys, the active signing key,
  // the JWKS.
  absl::StatusOr<std::shared_ptr<const IssuerState>> BuildState(
      KeysetRecord record) const;
  absl::StatusOr<std::shared_ptr<const IssuerState>> State(
      std::string_view issuer) const;
  absl::StatusOr<KeysetRecord> ReadRecord(std::string_view issuer) const;
  // Builds the state for a record read from the HSM and swaps it in.
  absl::Status Install(KeysetRecord record);
  // Writes the record to the HSM and swaps in the new state. Caller holds
  // admin_mu_.
  absl::Status Commit(KeysetRecord record);
  absl::StatusOr<KeyRecord> CreateKeyLocked(const std::string& issuer,
                                            hsm::SignAlgorithm alg);
  absl::StatusOr<KeyRecord> ActivateKeyLocked(const std::string& issuer,
                                              std::string_view kid);

  std::shared_ptr<hsm::Hsm> hsm_;
  PrivateKeyLoader private_keys_;
  Clock clock_;
  std::mutex admin_mu_;  // serializes Load and lifecycle operations
  mutable std::shared_mutex mu_;
  std::map<std::string, std::shared_ptr<const IssuerState>, std::less<>>
      issuers_;
};

}  // namespace tokensign::keyset

#endif  // TOKENSIGN_SIGNER_KEYSET_KEYSET_MANAGER_H_
