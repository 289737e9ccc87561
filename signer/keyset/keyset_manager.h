// KeysetManager: the issuers' signing keys as the service sees them, behind one
// class.
//
// Contract: the HSM is the source of truth. Load() reads each configured
// issuer's keyset record (private CKO_DATA "keyset/<issuer>" through
// RecordStore; absent = no keys) and checks every key the JWKS would publish
// (lifecycle.h Published: not withdrawn, destroyed or expired) with
// VerifyRecordedKey (attributes, type, kid recomputed from the recorded
// public key, a test signature; the token's keys read in one Hsm::ScanKeys
// per Load/Refresh, not searched key by key). A key that fails is neither published nor
// used; if it is the active key the issuer cannot sign (FailedPrecondition
// naming the reason) — other issuers are unaffected and Load never fails the
// daemon for one issuer's record. ActiveKey() and Jwks() answer from the
// in-memory snapshot.
//
// Refresh() and a Load() of an issuer already loaded (SIGHUP) adopt a changed
// record only when it checks out: a record whose keys fail a check is not
// adopted while the issuer's last good keyset works (planting one object must
// neither hijack nor stop signing). Every change picked up from the HSM and
// every rejection is reported to the observer (KeysetEvent) once per change,
// not on every refresh.
//
// Lifecycle operations write the record first and touch HSM objects only when
// the write won (RecordStore::Write, generation + writer id): CreateKey and
// RotateKey generate a key, then commit the record naming it, and destroy the
// key if the commit lost; DestroyKey commits "destroyed" first and destroys
// the objects after. SweepOrphans destroys keys of loaded issuers that no
// record names after a grace period (a crash between generate and commit, or
// a failed destroy). The rules of each transition are lifecycle.h's, with
// the issuer's LifecyclePolicy (SetPolicies); Tick makes the planned and
// scheduled steps. Errors: NotFound (issuer not loaded / unknown kid),
// FailedPrecondition (no usable active key; illegal state transition;
// destroying a live key without force), Aborted (another replica changed the
// record: reloaded, retry).
//
// Thread-safety: all methods are safe from many threads. Readers (ActiveKey,
// Jwks, Keyset) take a shared lock and copy a shared_ptr; Load, Refresh,
// SweepOrphans and lifecycle operations are serialized by an internal mutex.
// The observer runs on the thread of the call that found the change, without
// the manager's locks held.
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
#include "crypto/algorithm.h"
#include "hsm/hsm.h"
#include "signer/keyset/key_check.h"
#include "signer/keyset/keyset_record.h"
#include "signer/keyset/lifecycle.h"
#include "signer/keyset/record_store.h"
#include "signer/token/minter.h"

namespace tokensign::keyset {

// What Load/Refresh/SweepOrphans found on the HSM, for logs, metrics and the
// audit log.
struct KeysetEvent {
  enum class Kind {
    kChanged,   // a changed record was adopted (another replica, a custodian)
    kRejected,  // a record, a key or a look-alike failed a check; not used
    kSwept,     // an HSM key no record names was destroyed
    kScheduled, // Tick made a planned or scheduled step (activate, create)
  };
  Kind kind = Kind::kChanged;
  std::string issuer;
  int64_t old_generation = 0;
  int64_t new_generation = 0;
  std::string kid;     // kSwept: the CKA_ID (hex) of the destroyed key
  std::string detail;  // kids and states, or what failed
};
using KeysetObserver = std::function<void(const KeysetEvent&)>;

enum class RotationMode {
  // New pending key now; it activates by itself after publish_lead (Tick).
  kPlanned,
  // New key active now; the active key is withdrawn from the JWKS now.
  kEmergency,
};

// Result of a rotation: the new key (pending with activate_at, or active) and
// the previously active key as it is now (still active until a planned
// rotation's activation; withdrawn after an emergency), if there was one.
struct Rotation {
  KeyRecord created;
  std::optional<KeyRecord> previous;
};

class KeysetManager {
 public:
  using Clock = std::function<absl::Time()>;

  KeysetManager(std::shared_ptr<hsm::Hsm> hsm, PrivateKeyLoader private_keys,
                Clock clock = absl::Now);

  // Receives the events; events found before it is set are kept and handed
  // over here (the audit log opens after the first Load).
  void SetObserver(KeysetObserver observer);

  // (Re)reads the records of `issuers` from the HSM; issuers not listed are
  // dropped. An issuer whose record cannot be read or checked is kept as last
  // loaded, or loaded without a usable key (reported), never failing the rest.
  // `records`: the token's records as the caller just read them
  // (Hsm::ScanData; RecordStore::ReadEvery), instead of a search of its own.
  absl::Status Load(const std::vector<std::string>& issuers,
                    const hsm::DataScan* records = nullptr);

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
  // A key that verifies the issuer's tokens now: published (pending, active,
  // or retired and not yet expired), checked at load; never a withdrawn or
  // destroyed key. NotFound when the issuer has no such kid.
  struct VerificationKey {
    std::shared_ptr<EVP_PKEY> public_key;
    crypto::SignAlgorithm alg;
    KeyState state;
  };
  absl::StatusOr<VerificationKey> VerificationKeyFor(std::string_view issuer,
                                                     std::string_view kid) const;
  // {"keys":[...]} with every pending, active and retired key, as JSON text.
  absl::StatusOr<std::string> Jwks(std::string_view issuer) const;
  // The issuer's record as last loaded or written.
  absl::StatusOr<KeysetRecord> Keyset(std::string_view issuer) const;
  // The HSM token's label (for pkcs11: URIs of the keys).
  const std::string& token_label() const { return hsm_->token_label(); }
  // The HSM the keys live in, for read-only inspection of their objects
  // (KeyAdmin.InspectKeys: hsm::Hsm::InspectKey). Never for lifecycle
  // changes: those go through the methods below, record first.
  hsm::Hsm& hsm() const { return *hsm_; }
  // Seconds since activation of the active key, per issuer (issuers without one
  // omitted).
  std::map<std::string, int64_t> ActiveKeyAges() const;

  // Dev mode: if the issuer has no active key, creates one with `alg` and
  // activates it.
  absl::StatusOr<KeyRecord> EnsureActiveKey(std::string_view issuer,
                                            crypto::SignAlgorithm alg);

  // The lifecycle rules of each issuer (lifecycle.h); an issuer without one
  // gets LifecyclePolicy{} (no publish lead, no schedule, any algorithm).
  void SetPolicies(std::map<std::string, LifecyclePolicy> policies);

  // Creates a pending key in the HSM and records it (CheckCreate first).
  absl::StatusOr<KeyRecord> CreateKey(std::string_view issuer,
                                      crypto::SignAlgorithm alg);
  // pending -> active; the previous active key becomes retired. Refused
  // before publish_lead unless `force` with a reason.
  absl::StatusOr<KeyRecord> ActivateKey(std::string_view issuer,
                                        std::string_view kid,
                                        bool force = false,
                                        std::string_view reason = "");
  // pending|active -> retired.
  absl::StatusOr<KeyRecord> RetireKey(std::string_view issuer,
                                      std::string_view kid);
  // kPlanned: a new pending key that activates publish_lead from now (at
  // once when publish_lead is 0). kEmergency (reason required): a new key
  // active now, the active key withdrawn now.
  absl::StatusOr<Rotation> RotateKey(std::string_view issuer,
                                     crypto::SignAlgorithm alg,
                                     RotationMode mode = RotationMode::kPlanned,
                                     std::string_view reason = "");
  // Records the key as destroyed, then destroys the HSM objects (a failure
  // there is left to SweepOrphans). Refuses an active key, and a retired key
  // still in the JWKS (tokens it signed may be live) unless `force` with a
  // reason.
  absl::StatusOr<KeyRecord> DestroyKey(std::string_view issuer,
                                       std::string_view kid, bool force,
                                       std::string_view reason);

  // Runs what is due for each issuer at the clock's now (lifecycle.h
  // NextDueStep: a planned activation, a scheduled key creation, setting the
  // schedule), at most one step per issuer per call, and rebuilds JWKS whose
  // retired keys expired. Replicas may all call it at the same moment: the
  // record write picks at most one (the others reload). Returns the number
  // of steps made.
  absl::StatusOr<int> Tick();

  // Destroys private keys labelled "tokensign:<issuer>:<unix time>" of loaded
  // issuers whose CKA_ID the issuer's current record does not name as live:
  // named as destroyed at once, not named at all once older than `grace`.
  // Returns how many keys were destroyed.
  absl::StatusOr<int> SweepOrphans(absl::Duration grace);

 private:
  struct IssuerState {
    KeysetRecord record;
    std::map<std::string, std::shared_ptr<EVP_PKEY>> public_keys;  // by kid
    std::map<std::string, std::string> proven_spki;  // by key id: DER
    std::map<std::string, std::string> rejected;     // kid -> why
    std::shared_ptr<const token::SigningKey> active;
    std::string unavailable;  // why the issuer cannot sign, when it cannot
    std::string jwks_json;
    int lookalikes = 0;  // public look-alikes of the record seen at load
    // When the JWKS changes by itself (a retired key expires); 0 = never.
    int64_t next_change = 0;
    bool clean() const { return rejected.empty() && unavailable.empty(); }
  };
  using StatePtr = std::shared_ptr<const IssuerState>;

  // Builds the state for a record: checks every live key (VerifyRecordedKey,
  // against `scan` when given: Load and Refresh scan the token once for all
  // issuers), the active signing key, the JWKS of the keys that passed.
  absl::StatusOr<StatePtr> BuildState(KeysetRecord record,
                                      KeyScanOnce* scan = nullptr) const;
  // The state of an issuer whose record cannot be read.
  StatePtr UnavailableState(std::string_view issuer,
                            const absl::Status& why) const;
  absl::StatusOr<StatePtr> State(std::string_view issuer) const;
  // Reads the issuer's record (or takes `read`, what ReadEvery found), builds
  // it and swaps it in when it checks out (see the class comment); reports
  // changes and rejections. Caller holds admin_mu_. `current` is the state in
  // use (nullptr: first load).
  absl::Status ReloadIssuer(const std::string& issuer, StatePtr current,
                            bool* changed,
                            const IssuerRecords* read = nullptr,
                            KeyScanOnce* scan = nullptr);
  // Writes `next` (derived from the state in use, `base`) and swaps in its
  // state. Aborted when another writer got there first (their record is
  // adopted). Caller holds admin_mu_.
  absl::Status Commit(const KeysetRecord& base, KeysetRecord next);
  absl::StatusOr<KeyRecord> CreateKeyLocked(const std::string& issuer,
                                            crypto::SignAlgorithm alg,
                                            int64_t activate_at = 0);
  absl::StatusOr<KeyRecord> ActivateKeyLocked(const std::string& issuer,
                                              std::string_view kid, bool force,
                                              std::string_view reason);
  // One due step for the issuer (Tick). Caller holds admin_mu_.
  absl::StatusOr<bool> TickIssuer(const std::string& issuer);
  LifecyclePolicy PolicyFor(const std::string& issuer) const;
  void Swap(const std::string& issuer, StatePtr state);
  // Queues an event (kRejected only when its detail differs from the last one
  // reported for the issuer); Flush hands queued events to the observer.
  void Report(KeysetEvent event, std::string_view topic = "");
  void Flush();

  std::shared_ptr<hsm::Hsm> hsm_;
  RecordStore records_;
  PrivateKeyLoader private_keys_;
  Clock clock_;
  std::map<std::string, LifecyclePolicy> policies_;  // guarded by admin_mu_
  std::mutex events_mu_;
  KeysetObserver observer_;                               // guarded by events_mu_
  std::vector<KeysetEvent> pending_events_;               // guarded by events_mu_
  std::map<std::string, std::string> last_rejection_;     // guarded by events_mu_
  std::mutex admin_mu_;  // serializes Load and lifecycle operations
  mutable std::shared_mutex mu_;
  std::map<std::string, std::shared_ptr<const IssuerState>, std::less<>>
      issuers_;
};

}  // namespace tokensign::keyset

#endif  // TOKENSIGN_SIGNER_KEYSET_KEYSET_MANAGER_H_
