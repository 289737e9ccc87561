// tokensign::hsm::Recovery — the one place that recovers an HSM operation from a
// failed PKCS#11 call.
//
// Contract: Run(policy, fn) leases a pooled session and calls
// fn(lease, epoch), where `epoch` is the pool's module epoch, fixed while the
// lease is held (a module re-initialization waits for leases to drain), so
// object handles resolved for that epoch stay valid inside fn. When fn fails,
// the CK_RV it carries is classified once (ClassifyRv, hsm/pkcs11_call.h):
//   kFatal        returned as it is (a real answer; the session stays usable),
//                 unless policy.retry_if says the operation is worth another try;
//   kNewSession / kReinitModule
//                 the lease goes back broken — the pool re-opens the session,
//                 re-logs-in and, when the rv says so, re-initializes the module,
//                 with backoff (SessionPool::Acquire) — and fn runs again on
//                 another session (unless policy.retry_session_loss is false);
//   kStaleHandle  when the session is still logged in, policy.on_stale_handle
//                 drops the cached handles (the object was destroyed or
//                 renumbered); otherwise the session lost its login (private
//                 objects turn invisible) and is re-established. Then fn again.
// At most policy.attempts runs; a failure that outlasts them is returned with
// "<op>: ... (after retry)". A failed Acquire (token down, PIN latched,
// re-init postponed) is returned at once: the pool already retried with
// backoff. policy.after_failure runs after every failed fn, with no lease
// held (cleanup that needs a working session of its own).
//
// Thread-safety: stateless apart from the pool pointer; any thread may call
// Run concurrently. fn runs on the calling thread.
#ifndef TOKENSIGN_HSM_RECOVERY_H_
#define TOKENSIGN_HSM_RECOVERY_H_

#include <cstdint>
#include <functional>
#include <string_view>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "hsm/pkcs11_call.h"
#include "hsm/session_pool.h"

namespace tokensign::hsm {

class Recovery {
 public:
  struct Policy {
    // Name the operation in an "<op>(<subject>): ... (after retry)" error.
    std::string_view op;
    std::string_view subject;
    int attempts = 3;     // runs of fn at most
    // False: a broken session is marked (re-established on its next use) but
    // fn is not run again (key generation: the token may already have made a
    // pair whose reply was lost).
    bool retry_session_loss = true;
    // Op-specific transient failures worth one more run (kFatal class).
    std::function<bool(const absl::Status&)> retry_if;
    // Drops cached object handles after a stale handle on a logged-in session.
    std::function<void()> on_stale_handle;
    // Runs after each failed fn, with no lease held.
    std::function<void(const absl::Status&)> after_failure;
  };

  explicit Recovery(SessionPool* pool) : pool_(pool) {}

  // fn: absl::StatusOr<T>(SessionPool::Lease&, uint64_t epoch), or
  // absl::Status(SessionPool::Lease&, uint64_t epoch); Run returns the same.
  template <typename Fn>
  auto Run(const Policy& policy, Fn&& fn)
      -> decltype(fn(std::declval<SessionPool::Lease&>(), uint64_t{})) {
    absl::Status last;
    for (int attempt = 0; attempt < policy.attempts; ++attempt) {
      bool retry;
      {
        absl::StatusOr<SessionPool::Lease> lease = pool_->Acquire();
        if (!lease.ok()) return lease.status();
        auto result = fn(*lease, pool_->epoch());
        if (result.ok()) return result;
        last = StatusOf(result);
        retry = Decide(policy, *lease, last);
      }  // a broken lease goes back here; the next Acquire re-establishes it
      if (policy.after_failure) policy.after_failure(last);
      if (!retry) return last;
    }
    return Exhausted(policy, last);
  }

 private:
  template <typename T>
  static absl::Status StatusOf(const absl::StatusOr<T>& r) {
    return r.status();
  }
  static absl::Status StatusOf(const absl::Status& s) { return s; }
  // Acts on the classified CK_RV of `status` (marks the lease broken, drops
  // stale handles); true when fn should run again.
  static bool Decide(const Policy& policy, SessionPool::Lease& lease,
                     const absl::Status& status);
  static absl::Status Exhausted(const Policy& policy, const absl::Status& last);

  SessionPool* pool_;
};

}  // namespace tokensign::hsm

#endif  // TOKENSIGN_HSM_RECOVERY_H_
