// Compact JWS: RFC known answers, round trips per algorithm, strict parsing.
#include "signer/token/jws.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>

#include "absl/strings/escaping.h"
#include "crypto/algorithm.h"
#include "crypto/ssl_ptr.h"
#include "tests/token/test_keys.h"

namespace tokensign::token {
namespace {

using crypto::SignAlgorithm;
using testing::B64;
using testing::GenerateKey;
using ::testing::HasSubstr;
using testing::KeyFromJwk;
using testing::MakeSigningKey;
using testing::TestSigningKey;

// RFC 8037 A.1 / A.4: Ed25519 key and the signature of "Example of Ed25519
// signing" with the protected header {"alg":"EdDSA"}.
TEST(JwsKat, Rfc8037A4Ed25519) {
  crypto::UniquePkey key =
      KeyFromJwk({{"kty", "OKP"},
                  {"crv", "Ed25519"},
                  {"d", "nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A"},
                  {"x", "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}});
  ASSERT_NE(key, nullptr);
  absl::StatusOr<std::string> jws =
      SignCompactWithHeader(key.get(), SignAlgorithm::kEdDSA,
                            R"({"alg":"EdDSA"})", "Example of Ed25519 signing");
  ASSERT_TRUE(jws.ok()) << jws.status();
  EXPECT_EQ(*jws,
            "eyJhbGciOiJFZERTQSJ9.RXhhbXBsZSBvZiBFZDI1NTE5IHNpZ25pbmc."
            "hgyY0il_MGCjP0JzlnLWG1PPOt7-"
            "09PGcvMg3AIbQR6dWbhijcNR4ki4iylGjg5BhVsPt9g7sVvpAr_"
            "MuM0KAg");
  // A.5: verification with the public key alone.
  crypto::UniquePkey pub =
      KeyFromJwk({{"kty", "OKP"},
                  {"crv", "Ed25519"},
                  {"x", "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}});
  const std::string input =
      "eyJhbGciOiJFZERTQSJ9.RXhhbXBsZSBvZiBFZDI1NTE5IHNpZ25pbmc";
  EXPECT_TRUE(VerifyRaw(pub.get(), SignAlgorithm::kEdDSA, input,
                        B64(jws->substr(input.size() + 1)))
                  .ok());
}

// RFC 7520 §3.4 key, §4.1 RS256 signature (PKCS#1 v1.5 is deterministic).
constexpr char kRfc7520N[] =
    "n4EPtAOCc9AlkeQHPzHStgAbgs7bTZLwUBZdR8_KuKPEHLd4rHVTeT-O-"
    "XV2jRojdNhxJWTDvNd7nqQ0VEiZQHz_"
    "AJmSCpMaJMRBSFKrKb2wqVwGU_NsYOYL-"
    "QtiWN2lbzcEe6XC0dApr5ydQLrHqkHHig3RBordaZ6Aj-"
    "oBHqFEHYpPe7Tpe-"
    "OfVfHd1E6cS6M1FZcD1NNLYD5lFHpPI9bTwJlsde3uhGqC0ZCuEHg8lhzwOHrtIQbS0FVbb9k3"
    "-"
    "tVTU4fg_3L_vniUFAKwuCLqKnS2BYwdq_mzSnbLY7h_qixoR7jig3__"
    "kRhuaxwUkRz5iaiQkqgc5gHdrNP5zw";

TEST(JwsKat, Rfc7520Section41Rs256) {
  nlohmann::json jwk = {
      {"kty", "RSA"},
      {"n", kRfc7520N},
      {"e", "AQAB"},
      {"d",
       "bWUC9B-EFRIo8kpGfh0ZuyGPvMNKvYWNtB_ikiH9k20eT-O1q_"
       "I78eiZkpXxXQ0UTEs2LsNRS-"
       "8uJbvQ-A1irkwMSMkK1J3XTGgdrhCku9gRldY7sNA_AKZGh-Q661_42rINLRCe8W-"
       "nZ34ui_qOfkLnK9QWDDqpaIsA-"
       "bMwWWSDFu2MUBYwkHTMEzLYGqOe04noqeq1hExBTHBOBdkMXiuFhUq1BU6l-"
       "DqEiWxqg82sXt2h-"
       "LMnT3046AOYJoRioz75tSUQfGCshWTBnP5uDjd18kKhyv07lhfSJdrPdM5Plyl21hsFf4L_"
       "mHCuoFau7gdsPfHPxxjVOcOpBrQzwQ"},
      {"p",
       "3Slxg_DwTXJcb6095RoXygQCAZ5RnAvZlno1yhHtnUex_fp7AZ_9nRaO7HX_-"
       "SFfGQeutao2TDjDAWU4Vupk8rw9JR0A"
       "zZ0N2fvuIAmr_WCsmGpeNqQnev1T7IyEsnh8UMt-"
       "n5CafhkikzhEsrmndH6LxOrvRJlsPp6Zv8bUq0k"},
      {"q",
       "uKE2dh-cTf6ERF4k4e_jy78GfPYUIaUyoSSJuBzp3Cubk3OCqs6grT8bR_"
       "cu0Dm1MZwWmtdqDyI95HrUeq3MP15vMMON"
       "8lHTeZu2lmKvwqW7anV5UzhM1iZ7z4yMkuUwFWoBvyY898EXvRD-"
       "hdqRxHlSqAZ192zB3pVFJ0s7pFc"},
      {"dp",
       "B8PVvXkvJrj2L-GYQ7v3y9r6Kw5g9SahXBwsWUzp19TVlgI-YV85q1NIb1rxQtD-IsXXR3-"
       "TanevuRPRt5OBOdiMGQp8"
       "pbt26gljYfKU_E9xn-RULHz0-ed9E9gXLKD4VGngpz-PfQ_"
       "q29pk5xWHoJp009Qf1HvChixRX59ehik"},
      {"dq",
       "CLDmDGduhylc9o7r84rEUVn7pzQ6PF83Y-iBZx5NT-"
       "TpnOZKF1pErAMVeKzFEl41DlHHqqBLSM0W1sOFbwTxYWZDm6sI"
       "6og5iTbwQGIC3gnJKbi_7k_vJgGHwHxgPaX2PnvP-zyEkDERuf-ry4c_"
       "Z11Cq9AqC2yeL6kdKT1cYF8"},
      {"qi",
       "3PiqvXQN0zwMeE-sBvZgi289XP9XCQF3VWqPzMKnIgQp7_Tugo6-"
       "NZBKCQsMf3HaEGBjTVJs_jcK8-TRXvaKe-"
       "7ZMaQj8VfBdYkssbu0NKDDhjJ-"
       "GtiseaDVWt7dcH0cfwxgFUHpQh7FoCrjFJ6h6ZEpMF6xmujs4qMpPz8aaI4"}};
  crypto::UniquePkey key = KeyFromJwk(jwk);
  ASSERT_NE(key, nullptr);
  const std::string payload =
      "It\xe2\x80\x99s a dangerous business, Frodo, going out your door. You "
      "step onto the "
      "road, and if you don't keep your feet, there\xe2\x80\x99s no knowing "
      "where you might "
      "be swept off to.";
  absl::StatusOr<std::string> jws = SignCompactWithHeader(
      key.get(), SignAlgorithm::kRS256,
      R"({"alg":"RS256","kid":"bilbo.baggins@hobbiton.example"})", payload);
  ASSERT_TRUE(jws.ok()) << jws.status();
  EXPECT_EQ(*jws,
            "eyJhbGciOiJSUzI1NiIsImtpZCI6ImJpbGJvLmJhZ2dpbnNAaG9iYml0b24uZXhhbX"
            "BsZSJ9."
            "SXTigJlzIGEgZGFuZ2Vyb3VzIGJ1c2luZXNzLCBGcm9kbywgZ29pbmcgb3V0IHlvdX"
            "IgZG9vci4gWW91IH"
            "N0ZXAgb250byB0aGUgcm9hZCwgYW5kIGlmIHlvdSBkb24ndCBrZWVwIHlvdXIgZmVl"
            "dCwgdGhlcmXigJlz"
            "IG5vIGtub3dpbmcgd2hlcmUgeW91IG1pZ2h0IGJlIHN3ZXB0IG9mZiB0by4."
            "MRjdkly7_-"
            "oTPTS3AXP41iQIGKa80A0ZmTuV5MEaHoxnW2e5CZ5NlKtainoFmKZopdHM1O2U4mwz"
            "JdQx996ivp"
            "83xuglII7PNDi84wnB-BDkoBwA78185hX-Es4JIwmDLJK3lfWRa-"
            "XtL0RnltuYv746iYTh_qHRD68BNt1uSNCr"
            "UCTJDt5aAE6x8wW1Kt9eRo4QPocSadnHXFxnt8Is9UzpERV0ePPQdLuW3IS_"
            "de3xyIrDaLGdjluPxUAhb6L2a"
            "Xic1U12podGU0KLUQSE_oI-ZnmKJ3F4uOZDnd6QZWJushZ41Axf_"
            "fcIe8u9ipH84ogoree7vjbU5y18kDquDg");
}

struct AlgCase {
  SignAlgorithm alg;
  size_t sig_len;
};

class JwsRoundTrip : public ::testing::TestWithParam<AlgCase> {};

TEST_P(JwsRoundTrip, SignsVerifiesAndRejectsTampering) {
  const AlgCase c = GetParam();
  TestSigningKey key = MakeSigningKey(c.alg);
  const std::string payload = R"({"sub":"alice","n":1})";
  for (int i = 0; i < 50;
       ++i) {  // many ECDSA signatures: r/s with leading zeros occur
    absl::StatusOr<std::string> raw =
        SignRaw(key.private_key.get(), c.alg, payload);
    ASSERT_TRUE(raw.ok()) << raw.status();
    ASSERT_EQ(raw->size(), c.sig_len);
    ASSERT_TRUE(VerifyRaw(key.public_key.get(), c.alg, payload, *raw).ok());
  }
  absl::StatusOr<std::string> jws =
      SignCompact(key.private_key.get(), c.alg, key.kid, "at+jwt", payload);
  ASSERT_TRUE(jws.ok()) << jws.status();
  const JwsExpectation expect{c.alg, key.kid, "at+jwt"};
  absl::StatusOr<nlohmann::json> claims =
      VerifyCompact(*jws, key.public_key.get(), expect);
  ASSERT_TRUE(claims.ok()) << claims.status();
  EXPECT_EQ((*claims)["sub"], "alice");
  // Header is exactly alg, kid, typ in that order.
  EXPECT_EQ(
      B64(jws->substr(0, jws->find('.'))),
      absl::StrCat(R"({"alg":")", std::string(crypto::SignAlgorithmName(c.alg)),
                   R"(","kid":")", key.kid, R"(","typ":"at+jwt"})"));

  // Tampered payload: Unauthenticated.
  const size_t d1 = jws->find('.');
  const size_t d2 = jws->find('.', d1 + 1);
  std::string tampered = jws->substr(0, d1 + 1) +
                         Base64UrlEncode(R"({"sub":"mallory","n":1})") +
                         jws->substr(d2);
  EXPECT_EQ(
      VerifyCompact(tampered, key.public_key.get(), expect).status().code(),
      absl::StatusCode::kUnauthenticated);
  // Wrong typ / kid expected.
  EXPECT_THAT(VerifyCompact(*jws, key.public_key.get(),
                            {c.alg, key.kid, "txntoken+jwt"})
                  .status()
                  .message(),
              HasSubstr("jws.header.typ"));
  EXPECT_THAT(
      VerifyCompact(*jws, key.public_key.get(), {c.alg, "other", "at+jwt"})
          .status()
          .message(),
      HasSubstr("jws.header.kid"));
  // Truncated signature.
  EXPECT_THAT(VerifyCompact(jws->substr(0, jws->size() - 4),
                            key.public_key.get(), expect)
                  .status()
                  .message(),
              HasSubstr("signature"));
  // Another key of the same type does not verify.
  crypto::UniquePkey other = GenerateKey(c.alg);
  EXPECT_EQ(VerifyCompact(*jws, other.get(), expect).status().code(),
            absl::StatusCode::kUnauthenticated);
}

INSTANTIATE_TEST_SUITE_P(AllAlgorithms, JwsRoundTrip,
                         ::testing::Values(AlgCase{SignAlgorithm::kES256, 64},
                                           AlgCase{SignAlgorithm::kES384, 96},
                                           AlgCase{SignAlgorithm::kEdDSA, 64},
                                           AlgCase{SignAlgorithm::kPS256, 256},
                                           AlgCase{SignAlgorithm::kRS256, 256}),
                         [](const auto& info) {
                           return std::string(
                               crypto::SignAlgorithmName(info.param.alg));
                         });

TEST(JwsKeys, RefusesMismatchedKeysWithClearMessage) {
  TestSigningKey p256 = MakeSigningKey(SignAlgorithm::kES256);
  TestSigningKey p384 = MakeSigningKey(SignAlgorithm::kES384);
  TestSigningKey ed = MakeSigningKey(SignAlgorithm::kEdDSA);
  TestSigningKey rsa = MakeSigningKey(SignAlgorithm::kRS256);
  struct Case {
    EVP_PKEY* key;
    SignAlgorithm alg;
    const char* needs;
  } cases[] = {
      {p384.private_key.get(), SignAlgorithm::kES256, "EC P-256"},
      {p256.private_key.get(), SignAlgorithm::kES384, "EC P-384"},
      {p256.private_key.get(), SignAlgorithm::kEdDSA, "Ed25519"},
      {ed.private_key.get(), SignAlgorithm::kRS256, "RSA key of at least 2048"},
      {rsa.private_key.get(), SignAlgorithm::kES256, "EC P-256"},
  };
  for (const Case& c : cases) {
    absl::StatusOr<std::string> s = SignRaw(c.key, c.alg, "x");
    ASSERT_FALSE(s.ok());
    EXPECT_EQ(s.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(s.status().message(), HasSubstr("does not fit alg"));
    EXPECT_THAT(s.status().message(), HasSubstr(c.needs));
  }
  crypto::UniquePkey small = GenerateKey(SignAlgorithm::kRS256, 1024);
  for (SignAlgorithm alg : {SignAlgorithm::kRS256, SignAlgorithm::kPS256}) {
    absl::StatusOr<std::string> s = SignRaw(small.get(), alg, "x");
    ASSERT_FALSE(s.ok());
    EXPECT_THAT(s.status().message(), HasSubstr("RSA key of 1024 bits"));
    EXPECT_THAT(s.status().message(), HasSubstr("at least 2048"));
  }
  EXPECT_FALSE(CheckKeyForAlgorithm(nullptr, SignAlgorithm::kES256).ok());
}

TEST(JwsParse, RejectsForeignHeadersAndShapes) {
  TestSigningKey key = MakeSigningKey(SignAlgorithm::kES256);
  const JwsExpectation expect{SignAlgorithm::kES256, key.kid, "at+jwt"};
  auto sign_with_header = [&](const std::string& header) {
    return *SignCompactWithHeader(key.private_key.get(), SignAlgorithm::kES256,
                                  header, "{}");
  };
  const std::string kid = key.kid;
  struct Case {
    std::string jws;
    const char* want;
  } cases[] = {
      {sign_with_header(R"({"alg":"ES256","kid":")" + kid +
                        R"(","typ":"at+jwt","jku":"x"})"),
       "jws.header.jku"},
      {sign_with_header(R"({"alg":"none","kid":")" + kid +
                        R"(","typ":"at+jwt"})"),
       "jws.header.alg"},
      {sign_with_header(R"({"alg":"HS256","kid":")" + kid +
                        R"(","typ":"at+jwt"})"),
       "jws.header.alg"},
      {sign_with_header(R"({"typ":"at+jwt","alg":"ES256","kid":")" + kid +
                        R"("})"),
       "canonical"},
      {sign_with_header(R"({"alg":"ES256","kid":")" + kid +
                        R"(","typ":["at+jwt"]})"),
       "jws.header.typ"},
      {"a.b", "compact"},
      {"a.b.c.d", "compact"},
      {"e30=.e30.AAAA", "jws.header: not base64url"},
      {Base64UrlEncode("[1]") + ".e30.AAAA", "jws.header: not a JSON object"},
  };
  for (const Case& c : cases) {
    absl::StatusOr<nlohmann::json> r =
        VerifyCompact(c.jws, key.public_key.get(), expect);
    ASSERT_FALSE(r.ok()) << c.want;
    EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument)
        << r.status();
    EXPECT_THAT(r.status().message(), HasSubstr(c.want));
  }
  // Payload that is not a JSON object.
  absl::StatusOr<std::string> arr = SignCompact(
      key.private_key.get(), SignAlgorithm::kES256, key.kid, "at+jwt", "[1,2]");
  EXPECT_THAT(
      VerifyCompact(*arr, key.public_key.get(), expect).status().message(),
      HasSubstr("jws.payload: not a JSON object"));
}

TEST(Base64Url, EncodesWithoutPaddingAndDecodesStrictly) {
  EXPECT_EQ(Base64UrlEncode("\xfb\xff"), "-_8");
  EXPECT_EQ(*Base64UrlDecode("-_8"), "\xfb\xff");
  EXPECT_EQ(*Base64UrlDecode(""), "");
  EXPECT_FALSE(Base64UrlDecode("-_8=").ok());
  EXPECT_FALSE(Base64UrlDecode("+/8").ok());
  EXPECT_FALSE(Base64UrlDecode("ab cd").ok());
  EXPECT_FALSE(Base64UrlDecode("abcde").ok());
  EXPECT_THAT(Base64UrlDecode("a=", "cnf.jkt").status().message(),
              HasSubstr("cnf.jkt"));
}

// Found by tests/fuzz/jwks_fuzzer: the unused low bits of the last character
// were ignored, so "AQ" and "AR" both decoded to 0x01 and a signed token had
// several texts that all verified (each with its own SHA-256 in the audit
// log). Only the canonical encoding is accepted now.
TEST(Base64Url, AcceptsOnlyTheCanonicalEncoding) {
  EXPECT_EQ(*Base64UrlDecode("AQ"), "\x01");
  EXPECT_EQ(*Base64UrlDecode("AAE"), std::string("\0\x01", 2));
  for (const char* bad : {"AR", "AS", "Af", "AAF", "AAH", "_9"}) {
    absl::StatusOr<std::string> d = Base64UrlDecode(bad, "jws.signature");
    ASSERT_FALSE(d.ok()) << bad;
    EXPECT_THAT(d.status().message(),
                HasSubstr("jws.signature: not base64url in canonical form"));
  }
  // A token whose signature's last character differs only in unused bits
  // does not verify.
  TestSigningKey key = MakeSigningKey(SignAlgorithm::kES256);
  std::string jws = *SignCompact(key.private_key.get(), SignAlgorithm::kES256,
                                 key.kid, "at+jwt", R"({"sub":"alice"})");
  const JwsExpectation expect{SignAlgorithm::kES256, key.kid, "at+jwt"};
  ASSERT_TRUE(VerifyCompact(jws, key.public_key.get(), expect).ok());
  ASSERT_EQ(jws.size() - jws.rfind('.') - 1, 86u);  // 64 bytes: 4 unused bits
  std::string twin = jws;
  // The canonical last character is A, Q, g or w (value 0, 16, 32, 48); the
  // next one differs only in an unused bit.
  twin.back() = static_cast<char>(twin.back() + 1);
  std::string same;
  ASSERT_TRUE(absl::WebSafeBase64Unescape(twin.substr(twin.rfind('.') + 1), &same));
  ASSERT_EQ(same, *Base64UrlDecode(jws.substr(jws.rfind('.') + 1)));
  absl::StatusOr<nlohmann::json> v = VerifyCompact(twin, key.public_key.get(), expect);
  ASSERT_FALSE(v.ok());
  EXPECT_EQ(v.status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace tokensign::token
