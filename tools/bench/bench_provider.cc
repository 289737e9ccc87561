// Mode `provider`: on one fresh SoftHSM token and one ES256 key, measures raw C_Sign
// throughput (the ceiling: each thread its own session, cached key handle, digest
// computed once) against EVP_DigestSign through the tokensign provider (the token
// layer's exact call pattern: EVP_DigestSignInit_ex + one-shot EVP_DigestSign size query
// and sign, DER output) at 1 and 2 threads, alternating short rounds, and prints:
//   provider_vs_raw ES256 t=2 0.93
//   tokensign-bench provider [seconds_per_cell]
#include <openssl/evp.h>
#include <openssl/sha.h>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "crypto/algorithm.h"
#include "crypto/ssl_ptr.h"
#include "tools/bench/bench_util.h"

namespace tokensign::bench {
namespace {

// One token-layer style signature through the provider key.
bool EvpSign(EVP_PKEY* key, const std::string& message) {
  crypto::UniqueMdCtx mdctx(EVP_MD_CTX_new());
  EVP_PKEY_CTX* pctx = nullptr;
  const auto* m = reinterpret_cast<const unsigned char*>(message.data());
  unsigned char sig[80];
  size_t len = 0;
  return mdctx != nullptr &&
         EVP_DigestSignInit_ex(mdctx.get(), &pctx, "SHA256", nullptr, nullptr, key,
                               nullptr) == 1 &&
         EVP_DigestSign(mdctx.get(), nullptr, &len, m, message.size()) == 1 &&
         len <= sizeof(sig) && EVP_DigestSign(mdctx.get(), sig, &len, m, message.size()) == 1;
}

}  // namespace

int RunProviderBench(int argc, char** argv) {
  double seconds = argc >= 2 ? std::atof(argv[1]) : 2.0;
  if (seconds <= 0) seconds = 2.0;
  auto env = OpenBenchHsm();
  if (!env.ok()) return Fail("provider", "set-up", env.status());
  hsm::Hsm& hsm = *env->hsm;
  auto key = hsm.GenerateKey(crypto::KeyType::kEcP256, "bench-provider");
  if (!key.ok()) return Fail("provider", "GenerateKey", key.status());
  auto pkey = env->provider->PrivateKey(key->id);
  if (!pkey.ok()) return Fail("provider", "PrivateKey", pkey.status());
  const std::string message =
      "eyJhbGciOiJFUzI1NiIsImtpZCI6ImsxIiwidHlwIjoiYXQrand0In0."
      "eyJpc3MiOiJodHRwczovL2lzc3Vlci5leGFtcGxlIiwic3ViIjoidXNlci0xMjMifQ";
  std::string digest(SHA256_DIGEST_LENGTH, '\0');
  SHA256(reinterpret_cast<const unsigned char*>(message.data()), message.size(),
         reinterpret_cast<unsigned char*>(digest.data()));

  std::printf("tokensign-bench provider: %u hw threads, pool %d sessions, %.1f s/cell\n",
              std::thread::hardware_concurrency(), hsm.pool_size(), seconds);
  std::printf("%-6s %-8s %12s %12s %8s\n", "alg", "threads", "raw/s", "evp/s", "ratio");
  std::vector<std::string> lines;
  int rc = 0;
  EVP_PKEY* evp_key = pkey->get();
  for (int threads : {1, 2}) {
    RatePair rates = MeasurePair(
        threads, seconds,
        [&](int) {
          auto signer = std::make_shared<RawSigner>(
              std::move(*RawSigner::Create(hsm, key->id, crypto::SignAlgorithm::kES256)));
          return [signer, &digest]() { return !signer->Sign(digest).empty(); };
        },
        [&](int) { return [&]() { return EvpSign(evp_key, message); }; });
    if (rates.failed) rc = 1;
    std::printf("%-6s %-8d %12.0f %12.0f %8.2f\n", "ES256", threads, rates.ceiling,
                rates.measured, rates.ratio());
    char line[96];
    std::snprintf(line, sizeof(line), "provider_vs_raw ES256 t=%d %.2f", threads,
                  rates.ratio());
    lines.push_back(line);
  }
  for (const std::string& l : lines) std::printf("%s\n", l.c_str());
  return rc;
}

}  // namespace tokensign::bench
