// Mode `provider`: on one fresh SoftHSM token and one ES256 key, measures raw C_Sign
// throughput (the ceiling: each thread its own session, cached key handle, digest
// computed once) against EVP_DigestSign through the tokensign provider (the token
// layer's exact call pattern: EVP_DigestSignInit_ex + one-shot EVP_DigestSign size query
// and sign, DER output) at 1 and 2 threads, alternating short rounds, and prints:
//   provider_vs_raw ES256 t=2 0.93
//   tokensign-bench provider [seconds_per_cell]
#include <openssl/evp.h>
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
#include "hsm/provider/provider_keys.h"
#include "tests/support/softhsm_token.h"

namespace {

using Clock = std::chrono::steady_clock;

template <typename MakeOp>
double MeasureOps(int threads, double seconds, MakeOp make_op) {
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
  for (auto& w : workers) w.join();
  double elapsed = std::chrono::duration<double>(Clock::now() - start).count();
  return failed.load() ? -1 : static_cast<double>(total.load()) / elapsed;
}

int Fail(const char* what, const absl::Status& s) {
  std::fprintf(stderr, "provider bench: %s: %s\n", what, std::string(s.message()).c_str());
  return 1;
}

}  // namespace

int RunProviderBench(int argc, char** argv) {
  double seconds = argc >= 2 ? std::atof(argv[1]) : 2.0;
  if (seconds <= 0) seconds = 2.0;
  auto token = tokensign::testing::SoftHsmToken::Create();
  if (!token.ok()) return Fail("token", token.status());
  auto opened = tokensign::hsm::Hsm::Open((*token)->config());
  if (!opened.ok()) return Fail("Hsm::Open", opened.status());
  std::shared_ptr<tokensign::hsm::Hsm> hsm(std::move(*opened));
  auto provider = tokensign::hsm::provider::HsmKeyProvider::Create(hsm);
  if (!provider.ok()) return Fail("HsmKeyProvider::Create", provider.status());
  auto key = hsm->GenerateKey(tokensign::hsm::KeyType::kEcP256, "bench-provider");
  if (!key.ok()) return Fail("GenerateKey", key.status());
  auto pkey = (*provider)->PrivateKey(key->id);
  if (!pkey.ok()) return Fail("PrivateKey", pkey.status());
  tokensign::hsm::HsmImpl& impl = hsm->impl();
  CK_FUNCTION_LIST_PTR fl = impl.RawFunctionList();
  auto handles = impl.Handles(key->id);
  if (!handles.ok()) return Fail("Handles", handles.status());
  CK_OBJECT_HANDLE priv = handles->private_key;
  const std::string message =
      "eyJhbGciOiJFUzI1NiIsImtpZCI6ImsxIiwidHlwIjoiYXQrand0In0."
      "eyJpc3MiOiJodHRwczovL2lzc3Vlci5leGFtcGxlIiwic3ViIjoidXNlci0xMjMifQ";
  unsigned char digest[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(message.data()), message.size(), digest);

  std::printf("tokensign-bench provider: %u hw threads, pool %d sessions, %.1f s/cell\n",
              std::thread::hardware_concurrency(), impl.pool().size(), seconds);
  std::printf("%-6s %-8s %12s %12s %8s\n", "alg", "threads", "raw/s", "evp/s", "ratio");
  std::vector<std::string> lines;
  int rc = 0;
  EVP_PKEY* evp_key = pkey->get();
  for (int threads : {1, 2}) {
    constexpr int kRounds = 4;
    double raw = 0, evp = 0;
    for (int round = 0; round < kRounds; ++round) {
      double r = MeasureOps(threads, seconds / kRounds, [&](int) {
        CK_SESSION_HANDLE session = CK_INVALID_HANDLE;
        fl->C_OpenSession(impl.slot(), CKF_SERIAL_SESSION | CKF_RW_SESSION, nullptr, nullptr,
                          &session);
        return [=]() mutable {
          CK_MECHANISM mech{CKM_ECDSA, nullptr, 0};
          unsigned char sig[64];
          CK_ULONG sig_len = sizeof(sig);
          if (fl->C_SignInit(session, &mech, priv) != CKR_OK) return false;
          return fl->C_Sign(session, digest, sizeof(digest), sig, &sig_len) == CKR_OK;
        };
      });
      double e = MeasureOps(threads, seconds / kRounds, [&](int) {
        return [&message, evp_key]() {
          EVP_MD_CTX* mdctx = EVP_MD_CTX_new();
          EVP_PKEY_CTX* pctx = nullptr;
          const auto* m = reinterpret_cast<const unsigned char*>(message.data());
          unsigned char sig[80];
          size_t len = 0;
          bool ok = EVP_DigestSignInit_ex(mdctx, &pctx, "SHA256", nullptr, nullptr, evp_key,
                                          nullptr) == 1 &&
                    EVP_DigestSign(mdctx, nullptr, &len, m, message.size()) == 1 &&
                    len <= sizeof(sig) &&
                    EVP_DigestSign(mdctx, sig, &len, m, message.size()) == 1;
          EVP_MD_CTX_free(mdctx);
          return ok;
        };
      });
      if (r < 0 || e < 0) rc = 1;
      raw += r / kRounds;
      evp += e / kRounds;
    }
    double ratio = raw > 0 ? evp / raw : 0;
    std::printf("%-6s %-8d %12.0f %12.0f %8.2f\n", "ES256", threads, raw, evp, ratio);
    char line[96];
    std::snprintf(line, sizeof(line), "provider_vs_raw ES256 t=%d %.2f", threads, ratio);
    lines.push_back(line);
  }
  for (const std::string& l : lines) std::printf("%s\n", l.c_str());
  return rc;
}
