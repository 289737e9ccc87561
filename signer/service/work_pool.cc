#include "signer/service/work_pool.h"

#include <boost/asio/post.hpp>
#include <thread>

namespace tokensign::service {

WorkPool::WorkPool(int threads, int max_queue,
                   std::function<void(int)> on_depth,
                   std::chrono::milliseconds test_delay)
    : threads_(threads > 0
                   ? threads
                   : static_cast<int>(std::thread::hardware_concurrency())),
      max_queue_(max_queue),
      on_depth_(std::move(on_depth)),
      test_delay_(test_delay),
      pool_(static_cast<size_t>(threads_ > 0 ? threads_ : 2)) {}

WorkPool::~WorkPool() { Drain(); }

bool WorkPool::TrySubmit(std::function<void()> task) {
  if (stopped_.load(std::memory_order_acquire)) return false;
  int d = depth_.fetch_add(1, std::memory_order_acq_rel);
  if (d >= max_queue_) {
    depth_.fetch_sub(1, std::memory_order_acq_rel);
    return false;
  }
  Post(std::move(task));
  return true;
}

bool WorkPool::TrySubmitAll(std::vector<std::function<void()>> tasks) {
  if (tasks.empty()) return !stopped_.load(std::memory_order_acquire);
  if (stopped_.load(std::memory_order_acquire)) return false;
  const int n = static_cast<int>(tasks.size());
  int d = depth_.fetch_add(n, std::memory_order_acq_rel);
  if (d > max_queue_ - n) {  // d + n > max_queue_, without overflow
    depth_.fetch_sub(n, std::memory_order_acq_rel);
    return false;
  }
  for (std::function<void()>& task : tasks) Post(std::move(task));
  return true;
}

bool WorkPool::Schedule(std::function<void()> task) {
  if (stopped_.load(std::memory_order_acquire)) return false;
  boost::asio::post(pool_, std::move(task));
  return true;
}

// The caller has already counted the task in depth_.
void WorkPool::Post(std::function<void()> task) {
  if (on_depth_) on_depth_(+1);
  boost::asio::post(pool_, [this, task = std::move(task)]() {
    if (test_delay_.count() > 0) std::this_thread::sleep_for(test_delay_);
    task();
    depth_.fetch_sub(1, std::memory_order_acq_rel);
    if (on_depth_) on_depth_(-1);
  });
}

void WorkPool::Drain() {
  std::call_once(drained_, [this] {
    stopped_.store(true, std::memory_order_release);
    pool_.join();
  });
}

}  // namespace tokensign::service
