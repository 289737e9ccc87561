#include "hsm/recovery.h"

#include "crypto/str_cat.h"

namespace tokensign::hsm {

bool Recovery::Decide(const Policy& policy, SessionPool::Lease& lease,
                      const absl::Status& status) {
  const CK_RV rv = RvOf(status);
  switch (ClassifyRv(rv)) {
    case RvClass::kFatal:
      return policy.retry_if && policy.retry_if(status);
    case RvClass::kNewSession:
    case RvClass::kReinitModule:
      lease.MarkBroken(rv);
      return policy.retry_session_loss;
    case RvClass::kStaleHandle:
      // Either the session lost its login (private objects become invisible:
      // CheckLoggedIn marks it broken) or the object was destroyed or
      // renumbered behind our back: resolve it again.
      if (lease.CheckLoggedIn() && policy.on_stale_handle) {
        policy.on_stale_handle();
      }
      return true;
  }
  return false;
}

absl::Status Recovery::Exhausted(const Policy& policy,
                                 const absl::Status& last) {
  std::string prefix(policy.op);
  if (!policy.subject.empty()) prefix = Cat(prefix, "(", policy.subject, ")");
  if (!prefix.empty()) prefix += ": ";
  // Retries ran out on a transient class (sessions lost, the module being
  // re-initialized, handles renumbered meanwhile): that is retryable, whatever
  // the last CK_RV means alone (CKR_OBJECT_HANDLE_INVALID alone says
  // NOT_FOUND, a key that does not exist; a destroyed key fails the re-resolve
  // with a real answer instead).
  const absl::StatusCode code = ClassifyRv(RvOf(last)) == RvClass::kFatal
                                    ? last.code()
                                    : absl::StatusCode::kUnavailable;
  return WithRvOf(
      absl::Status(code, Cat(prefix, last.message(), " (after retry)")), last);
}

}  // namespace tokensign::hsm
