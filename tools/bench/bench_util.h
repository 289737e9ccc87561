// Shared pieces of tokensign-bench modes: a fixed-duration multi-thread rate meter, a
// fresh SoftHSM token with the HSM layer and the built-in provider opened on it, and the
// raw C_Sign ceiling operation (the one place outside hsm/ that calls C_Sign directly).
// Thread-safety: MeasureOps runs its workers on its own threads; everything else is
// set-up code for one thread.
#ifndef TOKENSIGN_TOOLS_BENCH_BENCH_UTIL_H_
#define TOKENSIGN_TOOLS_BENCH_BENCH_UTIL_H_

#include <atomic>
#include <chrono>
#include <cstdio>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "crypto/algorithm.h"
#include "hsm/hsm.h"
#include "hsm/hsm_testing.h"
#include "hsm/provider/provider_keys.h"
#include "tests/support/softhsm_token.h"

namespace tokensign::bench {

// Runs `threads` workers for `seconds`; worker t calls make_op(t) once for its operation
// and then the operation until time is up. Returns operations per second, or -1 if any
// operation returned false.
template <typename MakeOp>
double MeasureOps(int threads, double seconds, MakeOp make_op) {
  using Clock = std::chrono::steady_clock;
  std::atomic<bool> stop{false}, failed{false};
  std::atomic<long> total{0};
  std::vector<std::thread> workers;
  auto start = Clock::now();
  for (int t = 0; t < threads; ++t) {
    workers.emplace_back([&, t] {
      auto op = make_op(t);
      long count = 0;
      while (!stop.load(std::memory_order_relaxed)) {
        if (!op()) {
          failed.store(true);
          break;
        }
        ++count;
      }
      total.fetch_add(count);
    });
  }
  std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
  stop.store(true);
  for (auto& worker : workers) worker.join();
  double elapsed = std::chrono::duration<double>(Clock::now() - start).count();
  return failed.load() ? -1 : static_cast<double>(total.load()) / elapsed;
}

// Measures two operations alternately in `rounds` short rounds each (so drift in machine
// load hits both alike) and returns their average rates.
struct RatePair {
  double ceiling = 0;
  double measured = 0;
  bool failed = false;
  double ratio() const { return ceiling > 0 ? measured / ceiling : 0; }
};
template <typename MakeCeiling, typename MakeMeasured>
RatePair MeasurePair(int threads, double seconds, MakeCeiling ceiling,
                     MakeMeasured measured, int rounds = 4) {
  RatePair out;
  for (int round = 0; round < rounds; ++round) {
    double c = MeasureOps(threads, seconds / rounds, ceiling);
    double m = MeasureOps(threads, seconds / rounds, measured);
    if (c < 0 || m < 0) out.failed = true;
    out.ceiling += c / rounds;
    out.measured += m / rounds;
  }
  return out;
}

// A fresh SoftHSM token in a temp dir, the Hsm opened on it and the built-in provider.
struct BenchHsm {
  std::unique_ptr<testing::SoftHsmToken> token;
  std::shared_ptr<hsm::Hsm> hsm;
  std::unique_ptr<hsm::provider::HsmKeyProvider> provider;
};
absl::StatusOr<BenchHsm> OpenBenchHsm();

// The raw ceiling: one C_SignInit + C_Sign on the thread's own session with a cached
// handle. ECDSA signs `input` as a precomputed digest; EdDSA signs it as the message.
// Returns the raw signature (r||s for ECDSA), or an empty string on failure.
class RawSigner {
 public:
  static absl::StatusOr<RawSigner> Create(hsm::Hsm& hsm, std::string_view key_id,
                                          crypto::SignAlgorithm alg);
  RawSigner(RawSigner&& other) noexcept { *this = std::move(other); }
  RawSigner& operator=(RawSigner&& other) noexcept;
  ~RawSigner();  // closes the session
  std::string Sign(const std::string& input);

 private:
  RawSigner() = default;
  CK_FUNCTION_LIST_PTR functions_ = nullptr;
  CK_SESSION_HANDLE session_ = CK_INVALID_HANDLE;
  CK_OBJECT_HANDLE key_ = CK_INVALID_HANDLE;
  CK_MECHANISM_TYPE mechanism_ = CKM_ECDSA;
};

// Prints "what: message" to stderr and returns 1 (for `return Fail(...)`).
int Fail(const char* mode, const char* what, const absl::Status& status);

}  // namespace tokensign::bench

#endif  // TOKENSIGN_TOOLS_BENCH_BENCH_UTIL_H_
