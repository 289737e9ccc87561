// StdMutex, StdMutexLock and StdCondVar: std::mutex and
// std::condition_variable behind absl::Mutex's interface (Lock/Unlock, a
// scoped lock, Wait/WaitWithDeadline/Signal/SignalAll) and its thread-safety
// annotations, so ABSL_GUARDED_BY and ABSL_EXCLUSIVE_LOCKS_REQUIRED keep
// their meaning.
//
// Why not absl::Mutex: ThreadSanitizer intercepts pthread mutexes and
// condition variables, but not Debian's abseil, which is built without TSan
// (its lock annotations are compiled out), so TSan saw every hand-off through
// the audit log's absl::Mutex as a race. The audit log's threads (appenders,
// the group committer's writer, the checkpointer) hand data to each other
// under these, so a TSan build checks them.
//
// Thread-safety: StdMutex and StdCondVar from any thread, as their std
// counterparts.
#ifndef TOKENSIGN_SIGNER_AUDIT_STD_MUTEX_H_
#define TOKENSIGN_SIGNER_AUDIT_STD_MUTEX_H_

#include <condition_variable>
#include <mutex>

#include "absl/base/thread_annotations.h"
#include "absl/time/time.h"

namespace tokensign::audit {

class ABSL_LOCKABLE StdMutex {
 public:
  StdMutex() = default;
  StdMutex(const StdMutex&) = delete;
  StdMutex& operator=(const StdMutex&) = delete;

  void Lock() ABSL_EXCLUSIVE_LOCK_FUNCTION() { mu_.lock(); }
  void Unlock() ABSL_UNLOCK_FUNCTION() { mu_.unlock(); }

 private:
  friend class StdCondVar;
  std::mutex mu_;
};

class ABSL_SCOPED_LOCKABLE StdMutexLock {
 public:
  explicit StdMutexLock(StdMutex* mu) ABSL_EXCLUSIVE_LOCK_FUNCTION(mu)
      : mu_(mu) {
    mu_->Lock();
  }
  ~StdMutexLock() ABSL_UNLOCK_FUNCTION() { mu_->Unlock(); }
  StdMutexLock(const StdMutexLock&) = delete;
  StdMutexLock& operator=(const StdMutexLock&) = delete;

 private:
  StdMutex* const mu_;
};

class StdCondVar {
 public:
  // Atomically releases `mu` (held) and waits; holds it again on return.
  // Wakeups may be spurious, as absl::CondVar's: wait in a loop.
  void Wait(StdMutex* mu) {
    std::unique_lock<std::mutex> lock(mu->mu_, std::adopt_lock);
    cv_.wait(lock);
    lock.release();  // the caller still holds mu
  }
  // Wait, up to `deadline` (absl::InfiniteFuture(): no limit). True if the
  // deadline passed, as absl::CondVar::WaitWithDeadline.
  bool WaitWithDeadline(StdMutex* mu, absl::Time deadline) {
    if (deadline == absl::InfiniteFuture()) {
      Wait(mu);
      return false;
    }
    std::unique_lock<std::mutex> lock(mu->mu_, std::adopt_lock);
    const std::cv_status status =
        cv_.wait_until(lock, absl::ToChronoTime(deadline));
    lock.release();
    return status == std::cv_status::timeout;
  }
  void Signal() { cv_.notify_one(); }
  void SignalAll() { cv_.notify_all(); }

 private:
  std::condition_variable cv_;
};

}  // namespace tokensign::audit

#endif  // TOKENSIGN_SIGNER_AUDIT_STD_MUTEX_H_
