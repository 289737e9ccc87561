// Mode `hsm`: on one fresh SoftHSM token and one key per algorithm, measures
// raw C_Sign throughput (each thread its own session, cached key handle, ECDSA
// over a digest computed once) against Hsm::Sign (pooled sessions, hashing per
// call) at 1, 2 and 4 threads, fixed duration each, and prints the ratios:
// hsm_vs_raw ES256 t=2 0.97 This file is the one place outside hsm/ that calls
// C_Sign directly (the ceiling).
//   tokensign-bench hsm [seconds_per_cell]
#include <openssl/sha.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include "hsm/hsm.h"
#include "hsm/hsm_impl.h"
#include "tests/support/softhsm_token.h"

namespace {

using tokensign::hsm::Hsm;
using tokensign::hsm::KeyType;
using tokensign::hsm::SignAlgorithm;
using Clock = std::chrono::steady_clock;

// Runs `threads` workers for `seconds`; each calls op(thread_index) until time
// is up. Returns operations per second, or -1 if any op failed.
template <typename MakeOp>
double Measure(int threads, double seconds, MakeOp make_op) {
  std::atomic<bool> stop{false};
  std::atomic<bool> failed{false};
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
  if (failed.load()) return -1;
  return static_cast<double>(total.load()) / elapsed;
}

}  // namespace

int RunHsmBench(int argc, char** argv) {
  double seconds = argc >= 2 ? std::atof(argv[1]) : 2.0;
  if (seconds <= 0) seconds = 2.0;
  auto token = tokensign::testing::SoftHsmToken::Create();
  if (!token.ok()) {
    std::fprintf(stderr, "hsm bench: %s\n",
                 std::string(token.status().message()).c_str());
    return 1;
  }
  auto hsm = Hsm::Open((*token)->config());
  if (!hsm.ok()) {
    std::fprintf(stderr, "hsm bench: %s\n",
                 std::string(hsm.status().message()).c_str());
    return 1;
  }
  tokensign::hsm::HsmImpl& impl = (*hsm)->impl();
  CK_FUNCTION_LIST_PTR fl = impl.RawFunctionList();
  const std::string message =
      "eyJhbGciOiJFUzI1NiIsImtpZCI6ImsxIiwidHlwIjoiYXQrand0In0."
      "eyJpc3MiOiJodHRwczovL2lzc3Vlci5leGFtcGxlIiwic3ViIjoidXNlci0xMjMiLCJhY3Qi"
      "Onsic3Vi"
      "IjoiYWdlbnQtNDIifX0";
  std::printf(
      "tokensign-bench hsm: SoftHSM %s, %u hw threads, pool %d sessions, %.1f "
      "s/cell\n",
      (*token)->module_path().c_str(), std::thread::hardware_concurrency(),
      impl.pool().size(), seconds);
  std::printf("%-6s %-8s %12s %12s %8s\n", "alg", "threads", "raw/s", "hsm/s",
              "ratio");
  std::vector<std::string> ratio_lines;
  int rc = 0;
  for (SignAlgorithm alg : {SignAlgorithm::kES256, SignAlgorithm::kEdDSA}) {
    bool ecdsa = alg == SignAlgorithm::kES256;
    auto key = (*hsm)->GenerateKey(ecdsa ? KeyType::kEcP256 : KeyType::kEd25519,
                                   "bench");
    if (!key.ok()) {
      std::fprintf(stderr, "hsm bench: %s\n",
                   std::string(key.status().message()).c_str());
      return 1;
    }
    auto handles = impl.Handles(key->id);
    if (!handles.ok()) return 1;
    CK_OBJECT_HANDLE priv = handles->private_key;
    unsigned char digest[SHA256_DIGEST_LENGTH];
    SHA256(reinterpret_cast<const unsigned char*>(message.data()),
           message.size(), digest);
    for (int threads : {1, 2, 4}) {
      // Alternate short raw and hsm rounds so drift in machine load hits both
      // alike.
      constexpr int kRounds = 4;
      double raw = 0, layer = 0;
      for (int round = 0; round < kRounds; ++round) {
        double raw_round = Measure(threads, seconds / kRounds, [&](int) {
          CK_SESSION_HANDLE session = CK_INVALID_HANDLE;
          fl->C_OpenSession(impl.slot(), CKF_SERIAL_SESSION | CKF_RW_SESSION,
                            nullptr, nullptr, &session);
          return [=, &message]() mutable {
            CK_MECHANISM mech{ecdsa ? CKM_ECDSA : CKM_EDDSA, nullptr, 0};
            unsigned char sig[64];
            CK_ULONG sig_len = sizeof(sig);
            if (fl->C_SignInit(session, &mech, priv) != CKR_OK) return false;
            CK_BYTE_PTR data = ecdsa ? digest
                                     : reinterpret_cast<CK_BYTE_PTR>(
                                           const_cast<char*>(message.data()));
            CK_ULONG len = ecdsa ? sizeof(digest) : message.size();
            return fl->C_Sign(session, data, len, sig, &sig_len) == CKR_OK;
          };
        });
        double layer_round = Measure(threads, seconds / kRounds, [&](int) {
          return [&]() { return (*hsm)->Sign(key->id, alg, message).ok(); };
        });
        if (raw_round < 0 || layer_round < 0) rc = 1;
        raw += raw_round / kRounds;
        layer += layer_round / kRounds;
      }
      double ratio = raw > 0 ? layer / raw : 0;
      std::printf("%-6s %-8d %12.0f %12.0f %8.2f\n",
                  std::string(tokensign::hsm::SignAlgorithmName(alg)).c_str(),
                  threads, raw, layer, ratio);
      char line[128];
      std::snprintf(line, sizeof(line), "hsm_vs_raw %s t=%d %.2f",
                    std::string(tokensign::hsm::SignAlgorithmName(alg)).c_str(),
                    threads, ratio);
      ratio_lines.push_back(line);
    }
  }
  for (const std::string& line : ratio_lines) std::printf("%s\n", line.c_str());
  return rc;
}
