#include "hsm/session_pool.h"

#include <pthread.h>

#include <chrono>
#include <thread>

#include "crypto/str_cat.h"
#include "hsm/pkcs11_call.h"

namespace tokensign::hsm {
namespace {

// Bumped in every child after fork(); a pool that sees a new value
// re-initializes. g_fork_thread is the thread that called fork(): the only
// one the child has (pthread_atfork's child handler runs on it).
std::atomic<uint64_t> g_fork_generation{0};
std::atomic<pthread_t> g_fork_thread{};
std::once_flag g_atfork_once;

void OnForkChild() {
  g_fork_thread.store(pthread_self());
  g_fork_generation.fetch_add(1);
}

constexpr int kEstablishAttempts = 4;
constexpr std::chrono::milliseconds kFirstBackoff{10};
constexpr std::chrono::seconds kReinitDrainTimeout{2};

}  // namespace

SessionPool::Lease& SessionPool::Lease::operator=(Lease&& other) noexcept {
  if (this != &other) {
    if (pool_ != nullptr) pool_->Release(index_, broken_rv_);
    pool_ = other.pool_;
    index_ = other.index_;
    session_ = other.session_;
    broken_rv_ = other.broken_rv_;
    other.pool_ = nullptr;
  }
  return *this;
}

SessionPool::Lease::~Lease() {
  if (pool_ != nullptr) pool_->Release(index_, broken_rv_);
}

const absl::Status& SessionPool::Lease::Check(const absl::Status& status) {
  if (!status.ok()) {
    CK_RV rv = RvOf(status);
    if (IsBrokenSessionRv(rv)) MarkBroken(rv);
  }
  return status;
}

void SessionPool::Lease::MarkBroken(CK_RV rv) {
  // Never downgrade a module re-initialization to a new session.
  if (NeedsModuleReinitRv(broken_rv_)) return;
  broken_rv_ = rv == CKR_OK ? CKR_GENERAL_ERROR : rv;
}

bool SessionPool::Lease::CheckLoggedIn() {
  if (pool_ == nullptr) return false;
  CK_SESSION_INFO info = {};
  absl::Status status =
      Check(TS_P11(pool_->p11(), C_GetSessionInfo, session_, &info));
  if (!status.ok()) return false;
  if (info.state != CKS_RW_USER_FUNCTIONS) {
    MarkBroken(CKR_USER_NOT_LOGGED_IN);
    return false;
  }
  return true;
}

absl::StatusOr<std::unique_ptr<SessionPool>> SessionPool::Create(
    Module* module, Options options) {
  std::call_once(g_atfork_once,
                 [] { pthread_atfork(nullptr, nullptr, &OnForkChild); });
  absl::StatusOr<CK_SLOT_ID> slot =
      module->FindSlot(options.token_label, options.token_serial);
  if (!slot.ok()) return slot.status();
  absl::StatusOr<CK_TOKEN_INFO> info = module->TokenInfo(*slot);
  if (!info.ok()) return info.status();
  if ((info->flags & CKF_USER_PIN_INITIALIZED) == 0) {
    return absl::FailedPreconditionError(
        "token: user PIN not initialized (CKF_USER_PIN_INITIALIZED unset)");
  }
  int size = options.size;
  if (size <= 0) {
    size =
        2 * static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  }
  for (CK_ULONG cap : {info->ulMaxSessionCount, info->ulMaxRwSessionCount}) {
    if (cap != CK_EFFECTIVELY_INFINITE && cap != CK_UNAVAILABLE_INFORMATION &&
        static_cast<CK_ULONG>(size) > cap) {
      size = static_cast<int>(cap);
    }
  }
  if (size <= 0) size = 1;
  std::unique_ptr<SessionPool> pool(
      new SessionPool(module, std::move(options), *slot, size));
  // Fill the pool now so a wrong PIN or a full token fails Open, not the first
  // Sign. A token that gives fewer sessions than asked (CKR_SESSION_COUNT:
  // some HSMs allow 16, or other applications hold some) leaves the pool at
  // what it gave; only none at all is fatal.
  std::vector<Lease> leases;
  for (int i = 0; i < size; ++i) {
    absl::StatusOr<Lease> lease = pool->Acquire();
    if (!lease.ok()) {
      if (i == 0 || RvOf(lease.status()) != CKR_SESSION_COUNT) {
        return lease.status();
      }
      pool->ShrinkTo(i);
      pool->healthy_.store(true);  // the sessions it has are fine
      pool->size_note_ =
          Cat("session pool: the token gave ", i, " of ", size,
              " sessions asked for (C_OpenSession: CKR_SESSION_COUNT); "
              "running with ",
              i);
      break;
    }
    leases.push_back(std::move(*lease));
  }
  return pool;
}

void SessionPool::ShrinkTo(int size) {
  std::lock_guard<std::mutex> lock(mu_);
  free_.erase(std::remove_if(free_.begin(), free_.end(),
                             [&](int index) { return index >= size; }),
              free_.end());
  entries_.resize(size);
}

SessionPool::SessionPool(Module* module, Options options, CK_SLOT_ID slot,
                         int size)
    : module_(module),
      options_(std::move(options)),
      slot_(slot),
      fork_generation_(g_fork_generation.load()),
      login_mu_(std::make_unique<std::mutex>()),
      cv_(std::make_unique<std::condition_variable>()),
      entries_(size),
      recover_mu_(std::make_unique<std::mutex>()) {
  for (int i = size - 1; i >= 0; --i) free_.push_back(i);
}

int SessionPool::TakeLocked() {
  int index = free_.back();
  free_.pop_back();
  entries_[index].leased = true;
  entries_[index].owner = pthread_self();
  return index;
}

void SessionPool::GiveBackLocked(int index) {
  entries_[index].leased = false;
  free_.push_back(index);
}

int SessionPool::HeldByThisThreadLocked(int except) const {
  int held = 0;
  const pthread_t self = pthread_self();
  for (int i = 0; i < static_cast<int>(entries_.size()); ++i) {
    if (i != except && entries_[i].leased &&
        pthread_equal(entries_[i].owner, self)) {
      ++held;
    }
  }
  return held;
}

SessionPool::~SessionPool() {
  std::unique_lock<std::mutex> lock(mu_);
  // In a forked child that never used the pool, the sessions are the parent's:
  // not ours to wait for or close.
  CheckForkLocked();
  cv_->wait_for(lock, kReinitDrainTimeout, [&] { return active_ == 0; });
  if (needs_reinit_.load()) return;  // handles are stale; nothing to close
  for (Entry& entry : entries_) {
    if (entry.open && entry.epoch == epoch()) {
      (void)TS_P11(p11(), C_CloseSession, entry.session);
    }
  }
}

void SessionPool::CheckForkLocked() {
  const uint64_t generation = g_fork_generation.load();
  if (generation == fork_generation_) return;
  fork_generation_ = generation;
  // A forked child: only the forking thread came along. Leases of the
  // parent's other threads will never be released, so they are forgotten
  // (their entries go back to free_, their sessions are not ours to close)
  // and only the forking thread's stay counted. The parent may have held the
  // recovery or login lock at fork(): those are replaced (the old ones are
  // left alone; nobody in the child can be inside them yet, since every use
  // of the pool starts with Acquire, which got here first).
  const pthread_t forker = g_fork_thread.load();
  free_.clear();
  active_ = 0;
  for (int i = static_cast<int>(entries_.size()) - 1; i >= 0; --i) {
    Entry& entry = entries_[i];
    if (entry.leased && pthread_equal(entry.owner, forker)) {
      ++active_;
    } else {
      entry.open = false;
      GiveBackLocked(i);
    }
  }
  (void)recover_mu_.release();  // possibly locked by a parent thread: leaked
  (void)login_mu_.release();
  recover_mu_ = std::make_unique<std::mutex>();
  last_reinit_failure_ = absl::OkStatus();  // the child re-initializes anew
  login_mu_ = std::make_unique<std::mutex>();
  // A parent thread waiting on cv_ at fork() may still be counted as a
  // waiter in its state; a notify in the child could wait for it forever.
  (void)cv_.release();
  cv_ = std::make_unique<std::condition_variable>();
  needs_reinit_.store(true);
  cv_->notify_all();
}

bool SessionPool::IsPinFailureRv(CK_RV rv) {
  return rv == CKR_PIN_INCORRECT || rv == CKR_PIN_LOCKED ||
         rv == CKR_PIN_EXPIRED || rv == CKR_PIN_INVALID ||
         rv == CKR_PIN_LEN_RANGE;
}

absl::Status SessionPool::LoginLatch() const {
  CK_RV rv = login_latched_rv_.load(std::memory_order_acquire);
  if (rv == CKR_OK) return absl::OkStatus();
  return absl::PermissionDeniedError(
      Cat("C_Login: ", CkrName(rv),
          "; not retried: fix the PIN source and restart/reload"));
}

absl::StatusOr<SessionPool::Lease> SessionPool::Acquire() {
  if (absl::Status latch = LoginLatch(); !latch.ok()) return latch;
  int index;
  {
    std::unique_lock<std::mutex> lock(mu_);
    CheckForkLocked();
    cv_->wait(lock, [&] { return !free_.empty(); });
    index = TakeLocked();
    ++active_;  // optimistically counted as inside the module (EnterModule)
  }
  Entry& entry = entries_[index];  // owned by this thread until released
  // Fast path, one lock per lease: the session is current and no
  // re-initialization is pending. Counted before checking, as EnterModule.
  // needs_reinit_ first: if it reads a re-init's clear, the epoch read after
  // it sees that re-init's new epoch (both written under mu_, in that order).
  if (!needs_reinit_.load() && entry.open && entry.epoch == epoch()) {
    Lease lease;
    lease.pool_ = this;
    lease.index_ = index;
    lease.session_ = entry.session;
    return lease;
  }
  ExitModule();
  absl::Status status;
  for (int round = 0; round < kEstablishAttempts; ++round) {
    if (!entry.open || entry.epoch != epoch() || needs_reinit_.load()) {
      status = Establish(index);
      if (!status.ok()) break;
    }
    // Count the lease before using the session, then re-check: a
    // re-initialization that drained before we were counted has already set
    // needs_reinit_ (or bumped the epoch), so we never call into a module
    // that is being finalized.
    if (EnterModule() && entry.epoch == epoch()) {
      Lease lease;
      lease.pool_ = this;
      lease.index_ = index;
      lease.session_ = entry.session;
      return lease;
    }
    ExitModule();
    status = absl::UnavailableError(
        "SessionPool: module re-initialized while acquiring a session");
  }
  std::lock_guard<std::mutex> lock(mu_);
  GiveBackLocked(index);
  cv_->notify_all();  // one cv_ for free entries and drains: wake both kinds
  return status;
}

bool SessionPool::EnterModule() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    ++active_;
  }
  return !needs_reinit_.load();
}

void SessionPool::ExitModule() {
  std::lock_guard<std::mutex> lock(mu_);
  --active_;
  cv_->notify_all();
}

void SessionPool::Release(int index, CK_RV broken_rv) {
  Entry& entry = entries_[index];
  if (broken_rv != CKR_OK) {
    if (NeedsModuleReinitRv(broken_rv)) needs_reinit_.store(true);
    if (!needs_reinit_.load() && entry.open && entry.epoch == epoch()) {
      (void)TS_P11(p11(), C_CloseSession, entry.session);
    }
    entry.open = false;
  }
  std::lock_guard<std::mutex> lock(mu_);
  GiveBackLocked(index);
  --active_;
  cv_->notify_all();
}

absl::Status SessionPool::Establish(int index) {
  Entry& entry = entries_[index];
  absl::Status last;
  std::chrono::milliseconds backoff = kFirstBackoff;
  for (int attempt = 0; attempt < kEstablishAttempts; ++attempt) {
    if (attempt > 0) {
      std::this_thread::sleep_for(backoff);
      backoff *= 4;
    }
    // The epoch before the flag: a flag set for a re-init that has since
    // completed then shows as a moved epoch, never as a second re-init.
    const uint64_t seen_epoch = epoch();
    if (needs_reinit_.load()) {
      bool postponed = false;
      last = ReinitializeModule(seen_epoch, index, &postponed);
      // A call still inside the module: waiting again here would only hold
      // the caller (and this entry) longer; the next Acquire retries.
      if (postponed) return last;
      if (!last.ok()) continue;
    }
    // Counted as active while calling into the module (see Acquire).
    struct Exit {
      SessionPool* pool;
      ~Exit() { pool->ExitModule(); }
    } exit{this};
    if (!EnterModule()) {
      last = absl::UnavailableError(
          "SessionPool: module re-initialization pending");
      continue;
    }
    if (entry.open && entry.epoch == epoch()) {
      (void)TS_P11(p11(), C_CloseSession, entry.session);
    }
    entry.open = false;
    CK_SESSION_HANDLE session = CK_INVALID_HANDLE;
    last =
        TS_P11(p11(), C_OpenSession, slot(),
               CKF_SERIAL_SESSION | CKF_RW_SESSION, nullptr, nullptr, &session);
    if (!last.ok()) {
      if (RvOf(last) != CKR_SESSION_COUNT) needs_reinit_.store(true);
      continue;
    }
    CK_RV rv;
    {
      // Checked under the lock so concurrent establishers make at most one
      // C_Login after a PIN failure.
      std::lock_guard<std::mutex> login(*login_mu_);
      last = LoginLatch();
      if (last.ok()) {
        last = TS_P11(p11(), C_Login, session, CKU_USER,
                      reinterpret_cast<CK_UTF8CHAR_PTR>(options_.pin.data()),
                      static_cast<CK_ULONG>(options_.pin.size()));
        rv = RvOf(last);
        if (IsPinFailureRv(rv)) {
          login_latched_rv_.store(rv, std::memory_order_release);
          last = LoginLatch();
        }
      } else {
        rv = login_latched_rv_.load(std::memory_order_acquire);
      }
    }
    if (rv == CKR_USER_ALREADY_LOGGED_IN) last = absl::OkStatus();
    if (!last.ok()) {
      (void)TS_P11(p11(), C_CloseSession, session);
      if (IsPinFailureRv(rv)) {
        healthy_.store(false);
        return last;  // latched: retrying would only lock the user PIN
      }
      if (absl::IsPermissionDenied(last) && rv != CKR_USER_NOT_LOGGED_IN) {
        healthy_.store(false);
        return last;  // wrong or locked PIN: retrying would only lock the token
      }
      // Only ever request a re-init here: storing false would cancel one
      // that another thread's failure asked for.
      if (IsBrokenSessionRv(rv)) needs_reinit_.store(true);
      continue;
    }
    entry.session = session;
    entry.epoch = epoch();
    entry.open = true;
    healthy_.store(true);
    return absl::OkStatus();
  }
  healthy_.store(false);
  absl::Status out = absl::UnavailableError(
      Cat("SessionPool: no usable session after ", kEstablishAttempts,
          " attempts with backoff; last error: ", last.message()));
  // The last CK_RV stays readable (RvOf): CKR_SESSION_COUNT shrinks the pool.
  return WithRvOf(std::move(out), last);
}

absl::Status SessionPool::ReinitializeModule(uint64_t seen_epoch, int own_index,
                                             bool* postponed) {
  // Let leased sessions finish their call before the module goes away under
  // them; never finalize it under one (postpone instead). Sessions this
  // thread holds are idle while it is here. Every thread that needs the
  // re-init drains on its own clock (no queueing behind another's 2 s); once
  // drained, needs_reinit_ (set before any of them got here) keeps new calls
  // out until the epoch moves, so one of them re-initializes and the others
  // find the epoch changed.
  const auto deadline = std::chrono::steady_clock::now() + kReinitDrainTimeout;
  auto drained = [&](std::unique_lock<std::mutex>& lock) {
    const int own = HeldByThisThreadLocked(own_index);
    if (cv_->wait_until(lock, deadline, [&] {
          return epoch() != seen_epoch || active_ <= own;
        })) {
      return absl::OkStatus();
    }
    *postponed = true;
    return absl::UnavailableError(Cat(
        "SessionPool: module re-initialization postponed: ", active_ - own,
        " call(s) still inside the module after ", kReinitDrainTimeout.count(),
        " s (finalizing it under them is unsafe)"));
  };
  std::mutex* recover_mu;
  {
    std::unique_lock<std::mutex> lock(mu_);
    if (absl::Status st = drained(lock); !st.ok()) return st;
    if (epoch() != seen_epoch)
      return absl::OkStatus();  // another thread did it
    recover_mu = recover_mu_.get();
  }
  std::lock_guard<std::mutex> recover(*recover_mu);
  const auto now = std::chrono::steady_clock::now();
  if (!last_reinit_failure_.ok() &&
      now - last_reinit_failed_at_ < kReinitRetryInterval) {
    // Another caller's re-init just failed: the module is not tried again
    // before the interval is over (each try waits its turn on recover_mu).
    return WithRvOf(
        absl::Status(last_reinit_failure_.code(),
                     Cat(last_reinit_failure_.message(), " (re-initialization ",
                         std::chrono::duration_cast<std::chrono::milliseconds>(
                             now - last_reinit_failed_at_)
                             .count(),
                         " ms ago; not retried within ",
                         kReinitRetryInterval.count(), " ms)")),
        last_reinit_failure_);
  }
  {
    std::unique_lock<std::mutex> lock(mu_);
    if (epoch() != seen_epoch) return absl::OkStatus();
    // Calls that raced in before seeing needs_reinit_ leave at once.
    if (absl::Status st = drained(lock); !st.ok()) return st;
    // Nothing to do if another re-init already served this request; only
    // with needs_reinit_ set are new calls kept out of the module.
    if (epoch() != seen_epoch || !needs_reinit_.load()) return absl::OkStatus();
  }
  absl::Status status = module_->Reinitialize();
  CK_SLOT_ID slot = 0;
  if (status.ok()) {
    absl::StatusOr<CK_SLOT_ID> found =
        module_->FindSlot(options_.token_label, options_.token_serial);
    status = found.status();
    if (found.ok()) slot = *found;
  }
  if (!status.ok()) {
    last_reinit_failure_ = status;
    last_reinit_failed_at_ = std::chrono::steady_clock::now();
    return status;
  }
  last_reinit_failure_ = absl::OkStatus();
  slot_.store(slot, std::memory_order_release);
  {
    std::lock_guard<std::mutex> lock(mu_);
    epoch_.fetch_add(1, std::memory_order_acq_rel);
    needs_reinit_.store(false);
  }
  cv_->notify_all();  // threads draining for the same re-init: done
  return absl::OkStatus();
}

bool SessionPool::Healthy() const {
  return login_latched_rv_.load(std::memory_order_acquire) == CKR_OK &&
         healthy_.load() && !needs_reinit_.load();
}

bool SessionPool::Probe() {
  {
    absl::StatusOr<Lease> lease = Acquire();
    if (!lease.ok()) return false;
    if (!lease->CheckLoggedIn()) return false;
  }
  return Healthy();
}

}  // namespace tokensign::hsm
