// The key lifecycle rules of one issuer, as pure functions over its keyset
// record: which transitions are allowed, what each one changes, what the JWKS
// holds at a given time and what a scheduled rotation has to do next.
//
//   pending --activate--> active --retire/rotate--> retired --expiry--> (out
//   of the JWKS) --destroy--> destroyed; active --emergency--> withdrawn (out
//   of the JWKS at once, never signs again) --destroy--> destroyed.
//
// Times are unix seconds. A pending key is published from its creation and
// may activate once it has been published for publish_lead (unless forced
// with a reason); a retired key stays published until expires_at = retired_at
// + retire_window (keyset refresh + longest token TTL + clock skew, frozen
// into the record at retirement). Every refusal is FailedPrecondition (or
// InvalidArgument / NotFound) naming the rule.
//
// Thread-safety: value types and pure functions.
#ifndef TOKENSIGN_SIGNER_KEYSET_LIFECYCLE_H_
#define TOKENSIGN_SIGNER_KEYSET_LIFECYCLE_H_

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "crypto/algorithm.h"
#include "signer/keyset/keyset_record.h"

namespace tokensign::keyset {

struct LifecyclePolicy {
  // jwks_max_age + keyset_refresh_seconds + clock skew, or longer.
  int64_t publish_lead = 0;
  // keyset_refresh_seconds + the longest token TTL + clock skew; < 0 = a
  // retired key stays published until it is destroyed.
  int64_t retire_window = -1;
  // Scheduled rotation period; 0 = off.
  int64_t rotation_period = 0;
  // Keys in the JWKS at once (pending + active + retired not yet expired);
  // 0 = no limit (the daemon's default is 4).
  int max_published_keys = 0;
  // Algorithms a key of this issuer may have; empty = any.
  std::vector<crypto::SignAlgorithm> algorithms;
};

// True while `key` is in the JWKS at `now`.
bool Published(const KeyRecord& key, int64_t now);
// The keys published at `now`.
std::vector<const KeyRecord*> PublishedKeys(const KeysetRecord& record,
                                            int64_t now);
// The earliest time after `now` when the published set changes by itself
// (a retired key expiring), or nullopt.
std::optional<int64_t> NextPublicationChange(const KeysetRecord& record,
                                             int64_t now);

// A new key may be created: `alg` is allowed and the JWKS has room.
absl::Status CheckCreate(const KeysetRecord& record,
                         const LifecyclePolicy& policy, crypto::SignAlgorithm alg,
                         int64_t now);

// pending -> active (the active key, if any, retires). Refused before the
// key has been published for publish_lead unless `force` with a reason — or
// unless the issuer has no active key (its first key breaks no verifier).
absl::Status Activate(KeysetRecord& record, std::string_view kid,
                      const LifecyclePolicy& policy, int64_t now, bool force,
                      std::string_view reason);
// pending|active -> retired.
absl::Status Retire(KeysetRecord& record, std::string_view kid,
                    const LifecyclePolicy& policy, int64_t now);
// `fresh` (just added as pending) becomes active now; the active key, if
// any, is withdrawn. `reason` is required.
absl::Status EmergencyActivate(KeysetRecord& record, std::string_view fresh_kid,
                               int64_t now, std::string_view reason);
// -> destroyed. Never an active key; a retired key still published only
// with `force` and a reason.
// (Records written before expires_at existed: retired_at + retire_window.)
absl::Status Destroy(KeysetRecord& record, std::string_view kid, int64_t now,
                     bool force, std::string_view reason,
                     const LifecyclePolicy& policy);

// What a scheduler must do for this record at `now`, at most one step.
struct DueStep {
  enum class Kind { kNone, kActivate, kCreateScheduled, kSetSchedule };
  Kind kind = Kind::kNone;
  std::string kid;        // kActivate
  int64_t activate_at = 0;  // kCreateScheduled: when the new key activates
};
DueStep NextDueStep(const KeysetRecord& record, const LifecyclePolicy& policy,
                    int64_t now);

}  // namespace tokensign::keyset

#endif  // TOKENSIGN_SIGNER_KEYSET_LIFECYCLE_H_
