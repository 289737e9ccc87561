// WorkPool: a bounded Boost.Asio thread pool for the daemon's blocking work
// (HSM signing, audit fsync waits). gRPC handlers return at once and hand their
// work here.
//
// Contract: TrySubmit() accepts a task while fewer than `max_queue` tasks are
// queued or running, else returns false (the caller answers
// RESOURCE_EXHAUSTED). TrySubmitAll() admits a group of tasks (a batch's
// items) all or none, counting each task: it enters only if depth + group
// size stays <= `max_queue` (a batch is never half-refused and never takes the
// depth past `max_queue`; a group larger than `max_queue` is never admitted).
// Concurrent submitters may be refused spuriously while another's reservation
// is being undone; never admitted beyond the bound. Drain() waits for every accepted task to finish
// and stops the threads; TrySubmit after Drain returns false. An optional test
// hook (TOKENSIGN_TEST_WORK_DELAY_MS, read by the daemon) delays each task.
//
// Thread-safety: TrySubmit, TrySubmitAll, Schedule, depth and Drain are safe
// from any thread.
#ifndef TOKENSIGN_SIGNER_SERVICE_WORK_POOL_H_
#define TOKENSIGN_SIGNER_SERVICE_WORK_POOL_H_

#include <atomic>
#include <boost/asio/thread_pool.hpp>
#include <chrono>
#include <functional>
#include <mutex>
#include <vector>

namespace tokensign::service {

class WorkPool {
 public:
  // `on_depth` (may be empty) is told +1 / -1 as tasks enter and leave (queue
  // metric).
  WorkPool(int threads, int max_queue, std::function<void(int)> on_depth = {},
           std::chrono::milliseconds test_delay = std::chrono::milliseconds(0));
  ~WorkPool();
  WorkPool(const WorkPool&) = delete;
  WorkPool& operator=(const WorkPool&) = delete;

  bool TrySubmit(std::function<void()> task);
  bool TrySubmitAll(std::vector<std::function<void()>> tasks);
  // Runs the daemon's own periodic work (HSM probe, keyset refresh) on the
  // same threads, outside the admission bound: not counted against
  // max_queue (a round never refuses a caller, and callers never starve a
  // round), not delayed by the test hook. Its caller keeps at most one such
  // task queued. False once Drain() has begun.
  bool Schedule(std::function<void()> task);
  int depth() const { return depth_.load(std::memory_order_relaxed); }
  int threads() const { return threads_; }
  int max_queue() const { return max_queue_; }
  // True once Drain() has begun (new work is refused).
  bool stopping() const { return stopped_.load(std::memory_order_acquire); }
  void Drain();

 private:
  void Post(std::function<void()> task);

  const int threads_;
  const int max_queue_;
  std::function<void(int)> on_depth_;
  std::chrono::milliseconds test_delay_;
  std::atomic<int> depth_{0};
  std::atomic<bool> stopped_{false};
  std::once_flag drained_;
  boost::asio::thread_pool pool_;
};

}  // namespace tokensign::service

#endif  // TOKENSIGN_SIGNER_SERVICE_WORK_POOL_H_
