// EvpJwsSigner: prepared sign/verify contexts give the same results as the
// one-shot SignRaw/VerifyRaw for every algorithm, refuse what the one-shot path
// refuses, stay correct when many threads share one key, and Mint signs only
// through the key's signer, refusing one made for another algorithm.
#include "signer/token/evp_jws_signer.h"

#include <gtest/gtest.h>
#include <openssl/err.h>

#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include "crypto/algorithm.h"
#include "crypto/openssl_error.h"
#include "signer/token/jws.h"
#include "signer/token/minter.h"
#include "tests/token/test_keys.h"

namespace tokensign::token {
namespace {

using crypto::SignAlgorithm;
using testing::MakeSigningKey;
using testing::TestSigningKey;

class KeyOpsTest : public ::testing::TestWithParam<SignAlgorithm> {};

TEST_P(KeyOpsTest, SignsWhatVerifyRawAcceptsAndViceVersa) {
  const TestSigningKey key = MakeSigningKey(GetParam());
  auto ops = EvpJwsSigner::Create(key.private_key, key.public_key, GetParam());
  ASSERT_TRUE(ops.ok()) << ops.status();
  const std::string input = "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9";
  for (int i = 0; i < 3; ++i) {  // the second and third reuse pooled contexts
    auto sig = (*ops)->Sign(input);
    ASSERT_TRUE(sig.ok()) << sig.status();
    EXPECT_TRUE(VerifyRaw(key.public_key.get(), GetParam(), input, *sig).ok());
    EXPECT_TRUE((*ops)->Verify(input, *sig).ok());
    auto other = SignRaw(key.private_key.get(), GetParam(), input);
    ASSERT_TRUE(other.ok()) << other.status();
    EXPECT_TRUE((*ops)->Verify(input, *other).ok());
  }
}

TEST_P(KeyOpsTest, RejectsTamperedInputAndSignature) {
  const TestSigningKey key = MakeSigningKey(GetParam());
  auto ops = EvpJwsSigner::Create(key.private_key, key.public_key, GetParam());
  ASSERT_TRUE(ops.ok()) << ops.status();
  auto sig = (*ops)->Sign("a.b");
  ASSERT_TRUE(sig.ok()) << sig.status();
  absl::Status wrong_input = (*ops)->Verify("a.c", *sig);
  EXPECT_EQ(wrong_input.code(), absl::StatusCode::kUnauthenticated)
      << wrong_input;
  std::string flipped = *sig;
  flipped[flipped.size() / 2] ^= 0x01;
  EXPECT_EQ((*ops)->Verify("a.b", flipped).code(),
            absl::StatusCode::kUnauthenticated);
  absl::Status short_sig = (*ops)->Verify("a.b", sig->substr(1));
  EXPECT_EQ(short_sig.code(), absl::StatusCode::kInvalidArgument) << short_sig;
  EXPECT_NE(short_sig.message().find("signature: "), std::string::npos);
  // A failed verify leaves the pool usable.
  EXPECT_TRUE((*ops)->Verify("a.b", *sig).ok());
}

INSTANTIATE_TEST_SUITE_P(
    EveryAlgorithm, KeyOpsTest,
    ::testing::Values(SignAlgorithm::kES256, SignAlgorithm::kES384,
                      SignAlgorithm::kEdDSA, SignAlgorithm::kRS256,
                      SignAlgorithm::kPS256),
    [](const ::testing::TestParamInfo<SignAlgorithm>& info) {
      return std::string(crypto::SignAlgorithmName(info.param));
    });

TEST(KeyOpsCreateTest, RefusesAKeyThatDoesNotFitTheAlgorithm) {
  const TestSigningKey p256 = MakeSigningKey(SignAlgorithm::kES256);
  const TestSigningKey p384 = MakeSigningKey(SignAlgorithm::kES384);
  auto wrong_curve =
      EvpJwsSigner::Create(p256.private_key, p256.public_key, SignAlgorithm::kES384);
  EXPECT_EQ(wrong_curve.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(wrong_curve.status().message().find("ES384"), std::string::npos)
      << wrong_curve.status();
  auto wrong_public =
      EvpJwsSigner::Create(p256.private_key, p384.public_key, SignAlgorithm::kES256);
  EXPECT_EQ(wrong_public.status().code(), absl::StatusCode::kInvalidArgument);
  auto no_key = EvpJwsSigner::Create(nullptr, nullptr, SignAlgorithm::kES256);
  EXPECT_EQ(no_key.status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(KeyOpsCreateTest, WithoutAPublicKeyVerifyIsAPreconditionFailure) {
  const TestSigningKey key = MakeSigningKey(SignAlgorithm::kES256);
  auto ops = EvpJwsSigner::Create(key.private_key, nullptr, SignAlgorithm::kES256);
  ASSERT_TRUE(ops.ok()) << ops.status();
  auto sig = (*ops)->Sign("a.b");
  ASSERT_TRUE(sig.ok()) << sig.status();
  EXPECT_EQ((*ops)->Verify("a.b", *sig).code(),
            absl::StatusCode::kFailedPrecondition);
}

TEST(KeyOpsThreadsTest, ManyThreadsShareOneKey) {
  const TestSigningKey key = MakeSigningKey(SignAlgorithm::kES256);
  auto ops = EvpJwsSigner::Create(key.private_key, key.public_key,
                            SignAlgorithm::kES256);
  ASSERT_TRUE(ops.ok()) << ops.status();
  constexpr int kThreads = 8;
  constexpr int kEach = 150;
  std::atomic<int> good{0}, bad{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kEach; ++i) {
        const std::string input =
            "h.p" + std::to_string(t) + "-" + std::to_string(i);
        auto sig = (*ops)->Sign(input);
        // Checked by the one-shot path too, so a context mixed up between
        // threads cannot pass by verifying its own mistake.
        if (sig.ok() && (*ops)->Verify(input, *sig).ok() &&
            VerifyRaw(key.public_key.get(), SignAlgorithm::kES256, input, *sig)
                .ok() &&
            !(*ops)->Verify(input + "x", *sig).ok()) {
          ++good;
        } else {
          ++bad;
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(bad.load(), 0);
  EXPECT_EQ(good.load(), kThreads * kEach);
}

TEST(KeyOpsMintTest, MintSignsThroughTheKeysSignerOnly) {
  TestSigningKey key = MakeSigningKey(SignAlgorithm::kES256);
  IssuerPolicy policy;
  policy.iss = "https://issuer.example";
  policy.allowed_audiences = {"https://api.example"};
  policy.allowed_scopes = {"read"};
  TokenRequest req;
  req.kind = TokenKind::kAccessToken;
  req.subject = "alice";
  req.client_id = "app";
  req.audience = {"https://api.example"};
  req.scope = {"read"};
  auto minted = Mint(policy, key, req, absl::Now());
  ASSERT_TRUE(minted.ok()) << minted.status();
  auto claims = VerifyCompact(minted->token, key.public_key.get(),
                              {SignAlgorithm::kES256, key.kid, "at+jwt"});
  EXPECT_TRUE(claims.ok()) << claims.status();

  // A signer made for another key and algorithm is refused, not used: the
  // token would carry alg ES256 and a signature of another kind.
  const TestSigningKey other = MakeSigningKey(SignAlgorithm::kES384);
  key.signer = other.signer;
  auto refused = Mint(policy, key, req, absl::Now());
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(refused.status().message().find("does not fit alg ES256"),
            std::string::npos)
      << refused.status();
  // No signer at all: refused before any work.
  key.signer = nullptr;
  EXPECT_EQ(Mint(policy, key, req, absl::Now()).status().code(),
            absl::StatusCode::kFailedPrecondition);
}

// The tokensign provider's failures reach callers with their own code (an HSM
// that is down is Unavailable, so clients retry) and message, not as OpenSSL's
// generic "operation fail"; they travel in OpenSSL's error queue, so they are
// taken once and stale ones never leak into a later error.
TEST(OpenSslErrorTest, RaisedStatusDecidesCodeAndMessageOnce) {
  crypto::ClearErrors();
  crypto::RaiseStatusError(
      absl::UnavailableError("C_Sign: CKR_DEVICE_REMOVED (0x32)"));
  // OpenSSL adds its own error on top, as EVP does when a provider fails.
  ERR_raise(ERR_LIB_EVP, ERR_R_OPERATION_FAIL);
  absl::Status st = crypto::OpenSslError("EVP_PKEY_sign(ES256)");
  EXPECT_EQ(st.code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(st.message(), "EVP_PKEY_sign(ES256): C_Sign: CKR_DEVICE_REMOVED (0x32)");
  absl::Status next = crypto::OpenSslError("EVP_Digest");  // taken once
  EXPECT_EQ(next.code(), absl::StatusCode::kInternal);
  EXPECT_EQ(next.message(), "EVP_Digest: (no OpenSSL error queued)");

  crypto::RaiseStatusError(absl::UnavailableError("stale"));
  crypto::ClearErrors();
  EXPECT_EQ(crypto::OpenSslError("x").code(), absl::StatusCode::kInternal);

  // Another library's ERR_LIB_USER error is not mistaken for a raised Status.
  ERR_raise_data(ERR_LIB_USER, 0x7a00 + 14, "not tokensign");
  EXPECT_EQ(crypto::OpenSslError("y").code(), absl::StatusCode::kInternal);
}

}  // namespace
}  // namespace tokensign::token
