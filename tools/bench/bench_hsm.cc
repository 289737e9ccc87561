// Mode `hsm`: on one fresh SoftHSM token and one key per algorithm, measures raw C_Sign
// throughput (each thread its own session, cached key handle, ECDSA over a digest computed
// once) against Hsm::Sign (pooled sessions, hashing per call) at 1, 2 and 4 threads,
// alternating short rounds, and prints the ratios:  hsm_vs_raw ES256 t=2 0.97
//   tokensign-bench hsm [seconds_per_cell]
#include <openssl/sha.h>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "crypto/algorithm.h"
#include "tools/bench/bench_util.h"

namespace tokensign::bench {

int RunHsmBench(int argc, char** argv) {
  double seconds = argc >= 2 ? std::atof(argv[1]) : 2.0;
  if (seconds <= 0) seconds = 2.0;
  auto env = OpenBenchHsm();
  if (!env.ok()) return Fail("hsm", "set-up", env.status());
  hsm::Hsm& hsm = *env->hsm;
  const std::string message =
      "eyJhbGciOiJFUzI1NiIsImtpZCI6ImsxIiwidHlwIjoiYXQrand0In0."
      "eyJpc3MiOiJodHRwczovL2lzc3Vlci5leGFtcGxlIiwic3ViIjoidXNlci0xMjMiLCJhY3Qi"
      "Onsic3ViIjoiYWdlbnQtNDIifX0";
  std::string digest(SHA256_DIGEST_LENGTH, '\0');
  SHA256(reinterpret_cast<const unsigned char*>(message.data()), message.size(),
         reinterpret_cast<unsigned char*>(digest.data()));
  std::printf("tokensign-bench hsm: SoftHSM %s, %u hw threads, pool %d sessions, %.1f s/cell\n",
              env->token->module_path().c_str(), std::thread::hardware_concurrency(),
              hsm.pool_size(), seconds);
  std::printf("%-6s %-8s %12s %12s %8s\n", "alg", "threads", "raw/s", "hsm/s", "ratio");
  std::vector<std::string> lines;
  int rc = 0;
  for (crypto::SignAlgorithm alg : {crypto::SignAlgorithm::kES256, crypto::SignAlgorithm::kEdDSA}) {
    bool ecdsa = alg == crypto::SignAlgorithm::kES256;
    auto key = hsm.GenerateKey(ecdsa ? crypto::KeyType::kEcP256 : crypto::KeyType::kEd25519, "bench");
    if (!key.ok()) return Fail("hsm", "GenerateKey", key.status());
    const std::string& raw_input = ecdsa ? digest : message;
    std::string name(crypto::SignAlgorithmName(alg));
    for (int threads : {1, 2, 4}) {
      RatePair rates = MeasurePair(
          threads, seconds,
          [&](int) {
            auto signer = std::make_shared<RawSigner>(std::move(*RawSigner::Create(hsm, key->id, alg)));
            return [signer, &raw_input]() { return !signer->Sign(raw_input).empty(); };
          },
          [&](int) { return [&]() { return hsm.Sign(key->id, alg, message).ok(); }; });
      if (rates.failed) rc = 1;
      std::printf("%-6s %-8d %12.0f %12.0f %8.2f\n", name.c_str(), threads, rates.ceiling,
                  rates.measured, rates.ratio());
      char line[128];
      std::snprintf(line, sizeof(line), "hsm_vs_raw %s t=%d %.2f", name.c_str(), threads,
                    rates.ratio());
      lines.push_back(line);
    }
  }
  for (const std::string& line : lines) std::printf("%s\n", line.c_str());
  return rc;
}

}  // namespace tokensign::bench
