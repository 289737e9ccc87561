// A fixed pool of logged-in R/W sessions on one token, handed out as RAII
// leases.
//
// Contract: Create() opens `size` sessions (capped by the token's
// ulMaxSessionCount; when C_OpenSession answers CKR_SESSION_COUNT before that,
// the pool keeps the sessions it got, size_note() says so, and only zero
// sessions fail) and logs the user in once (the login is per token;
// CKR_USER_ALREADY_LOGGED_IN is fine). A lease whose call returned a
// broken-session CK_RV (see IsBrokenSessionRv) is marked broken; its session is
// re-opened and re-logged-in on the next Acquire, and when the rv says so
// (device error, token gone, not initialized) the module is re-initialized and
// every session re-opened. Recovery retries with exponential backoff. The
// module is re-initialized (C_Finalize + C_Initialize) only once no other call
// of this pool is inside it: the re-init waits up to 2 s for them to drain and,
// if some are still inside (a hung network HSM), is postponed — that Acquire
// fails kUnavailable "... postponed ..." at once and a later Acquire retries —
// rather than finalizing the module under a running call. A re-init that
// fails (the token is still out) is not tried again for
// kReinitRetryInterval: callers that need one meanwhile get its failure at
// once, so a pulled token costs one C_Finalize + C_Initialize per interval,
// not one per caller and attempt queued behind each other. After fork() the
// child re-initializes the module on its first Acquire (pthread_atfork
// generation); it first forgets the leases of the parent's other threads, which
// do not exist in the child (their sessions go back to the pool; only the
// forking thread's leases stay counted), and replaces the locks and condition
// variable a parent thread may have held or waited on (the pool's own mu_ is
// held only for a few instructions at a time). epoch() changes whenever object
// handles may have become invalid (module re-init).
//
// A PIN failure on C_Login (CKR_PIN_INCORRECT/LOCKED/EXPIRED/INVALID/LEN_RANGE)
// latches the pool: C_Login is never called again (each retry would count
// toward locking the user PIN) and every Acquire fails with
// kPermissionDenied "C_Login: CKR_...; not retried: ..." until the process
// restarts. Healthy() answers from the pool's state without calling the
// module or blocking; Probe() acquires a session and checks it (it may block
// and drives recovery).
//
// Thread-safety: all methods are thread-safe. A Lease is owned by the thread
// that acquired it and must be released there (a re-initialization does not
// wait for the leases of the thread performing it).
#ifndef TOKENSIGN_HSM_SESSION_POOL_H_
#define TOKENSIGN_HSM_SESSION_POOL_H_

#include <pthread.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "hsm/module.h"
#include "hsm/pkcs11.h"

namespace tokensign::hsm {

class SessionPool {
 public:
  // How long a failed module re-initialization stands for every caller.
  static constexpr std::chrono::milliseconds kReinitRetryInterval{250};

  struct Options {
    std::string token_label;  // used to find the slot again after re-init
    std::string token_serial;
    std::string pin;
    int size = 0;  // 0 = 2 x hardware threads
  };

  class Lease {
   public:
    Lease() = default;
    Lease(Lease&& other) noexcept { *this = std::move(other); }
    Lease& operator=(Lease&& other) noexcept;
    ~Lease();

    CK_SESSION_HANDLE session() const { return session_; }
    // Records the outcome of a call on this session; a broken-session rv marks
    // it broken so it is re-established before reuse. Returns `status`
    // unchanged.
    const absl::Status& Check(const absl::Status& status);
    void MarkBroken(CK_RV rv);
    // C_GetSessionInfo: true when the session is a logged-in R/W user session;
    // otherwise marks it broken (re-login on next use) and returns false.
    bool CheckLoggedIn();
    bool broken() const { return broken_rv_ != CKR_OK; }

   private:
    friend class SessionPool;
    SessionPool* pool_ = nullptr;
    int index_ = -1;
    CK_SESSION_HANDLE session_ = CK_INVALID_HANDLE;
    CK_RV broken_rv_ = CKR_OK;
  };

  // `module` must outlive the pool.
  static absl::StatusOr<std::unique_ptr<SessionPool>> Create(Module* module,
                                                             Options options);
  ~SessionPool();

  // Blocks until a session is free; re-establishes it if needed.
  absl::StatusOr<Lease> Acquire();

  const P11& p11() const { return module_->p11(); }
  CK_SLOT_ID slot() const { return slot_.load(std::memory_order_acquire); }
  uint64_t epoch() const { return epoch_.load(std::memory_order_acquire); }
  int size() const { return static_cast<int>(entries_.size()); }
  // Empty, or why the pool holds fewer sessions than asked (the token
  // answered CKR_SESSION_COUNT while Create filled it); for the log.
  const std::string& size_note() const { return size_note_; }
  // Non-blocking, no module call: true when the last session establishment
  // succeeded, no module re-initialization is pending and no PIN failure
  // latched the pool.
  bool Healthy() const;
  // Blocking: acquires a session (re-establishing it if needed) and checks it
  // is logged in; then Healthy().
  bool Probe();
  // The latched C_Login failure, or OK.
  absl::Status LoginLatch() const;

 private:
  struct Entry {
    CK_SESSION_HANDLE session = CK_INVALID_HANDLE;
    uint64_t epoch = 0;  // pool epoch the session was opened in
    bool open = false;
    bool leased = false;  // taken from free_ (guarded by mu_)
    pthread_t owner{};    // the thread that took it, while leased (mu_)
  };

  SessionPool(Module* module, Options options, CK_SLOT_ID slot, int size);
  void Release(int index, CK_RV broken_rv);
  // Drops entries [size, end) (Create only, before any other thread sees the
  // pool; their sessions were never opened).
  void ShrinkTo(int size);
  absl::Status Establish(int index);  // open + login
  // Re-initializes the module unless another thread already did (epoch moved
  // past `seen_epoch`). The caller is establishing `own_index` (not counted as
  // active); leases the calling thread holds on other entries are not waited
  // for.
  // *postponed is set when calls were still inside the module after the
  // drain timeout (the status is kUnavailable then).
  absl::Status ReinitializeModule(uint64_t seen_epoch, int own_index,
                                  bool* postponed);
  // Leases other than `except` that the calling thread holds. mu_ held.
  int HeldByThisThreadLocked(int except) const;
  // Takes free_'s last entry for the calling thread. mu_ held, free_ non-empty.
  int TakeLocked();
  // Puts `index` back in free_. mu_ held.
  void GiveBackLocked(int index);
  // Counts the caller as active (inside the module) so a re-initialization
  // waits for it; false when a re-init is pending (the caller must still call
  // ExitModule and must not touch the module).
  bool EnterModule();
  void ExitModule();
  // After fork(): forgets the parent threads' leases (see the contract). mu_
  // held.
  void CheckForkLocked();
  static bool IsPinFailureRv(CK_RV rv);

  Module* module_;
  Options options_;
  std::string size_note_;  // written by Create only
  std::atomic<CK_SLOT_ID> slot_;
  std::atomic<uint64_t> epoch_{1};
  std::atomic<bool> healthy_{true};
  std::atomic<bool> needs_reinit_{false};
  uint64_t fork_generation_;  // guarded by mu_
  // CKR_OK, or the PIN failure that latched the pool (written under login_mu_).
  std::atomic<CK_RV> login_latched_rv_{CKR_OK};
  // Serializes C_Login with the latch check. Replaced after fork (a parent
  // thread may have held it); only used after Acquire's mu_ section.
  std::unique_ptr<std::mutex> login_mu_;

  std::mutex mu_;  // guards entries_ and free_
  // Free entries and drains; replaced after fork like the mutexes.
  std::unique_ptr<std::condition_variable> cv_;
  std::vector<Entry> entries_;
  std::vector<int> free_;
  int active_ = 0;  // leases out + threads inside Establish's module calls

  // Serializes module re-initialization; replaced after fork like login_mu_.
  std::unique_ptr<std::mutex> recover_mu_;
  // The last re-initialization's failure and when it ended (OK after one
  // succeeded); guarded by *recover_mu_.
  absl::Status last_reinit_failure_;
  std::chrono::steady_clock::time_point last_reinit_failed_at_;
};

}  // namespace tokensign::hsm

#endif  // TOKENSIGN_HSM_SESSION_POOL_H_
