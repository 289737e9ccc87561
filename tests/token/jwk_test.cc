// JWK export, RFC 7638 thumbprints (RFC known answers) and the JWKS document.
#include "signer/token/jwk.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "crypto/algorithm.h"
#include "crypto/ssl_ptr.h"
#include "signer/token/jws.h"
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
using testing::PublicOnly;

// RFC 7638 §3.1 example RSA key.
constexpr char kRfc7638N[] =
    "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFF"
    "xuhDR1L6tSoc_"
    "BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_"
    "RN5w6Cf0h4QyQ5v-65YGjQR0_"
    "FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qN"
    "Lyrdkt-"
    "bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-"
    "kEgU8awapJzKnqDKgw";

TEST(JwkKat, Rfc7638Section31Thumbprint) {
  const nlohmann::json jwk = {{"kty", "RSA"},
                              {"n", kRfc7638N},
                              {"e", "AQAB"},
                              {"alg", "RS256"},
                              {"kid", "2011-04-29"}};
  EXPECT_EQ(*JwkThumbprint(jwk), "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs");
  // The same through an EVP_PKEY: export must give back n and e exactly.
  crypto::UniquePkey key = KeyFromJwk(jwk);
  ASSERT_NE(key, nullptr);
  absl::StatusOr<nlohmann::json> members = PublicJwkMembers(key.get());
  ASSERT_TRUE(members.ok()) << members.status();
  EXPECT_EQ(*members,
            (nlohmann::json{{"kty", "RSA"}, {"n", kRfc7638N}, {"e", "AQAB"}}));
  EXPECT_EQ(*JwkThumbprint(static_cast<const EVP_PKEY*>(key.get())),
            "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs");
}

TEST(JwkKat, Rfc8037A3Ed25519Thumbprint) {
  const nlohmann::json jwk = {
      {"kty", "OKP"},
      {"crv", "Ed25519"},
      {"x", "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}};
  EXPECT_EQ(*JwkThumbprint(jwk), "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k");
  crypto::UniquePkey key = KeyFromJwk(jwk);
  ASSERT_NE(key, nullptr);
  EXPECT_EQ(*PublicJwkMembers(key.get()), jwk);
  EXPECT_EQ(*JwkThumbprint(static_cast<const EVP_PKEY*>(key.get())),
            "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k");
  // From the private key (RFC 8037 A.1 d) too: the public part is derived.
  crypto::UniquePkey priv =
      KeyFromJwk({{"kty", "OKP"},
                  {"crv", "Ed25519"},
                  {"d", "nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A"}});
  EXPECT_EQ(*JwkThumbprint(static_cast<const EVP_PKEY*>(priv.get())),
            "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k");
}

TEST(Jwk, EcCoordinatesHaveFixedLength) {
  // About 1 key in 128 has a coordinate with a leading zero byte; 600 keys make
  // it very likely that the padding path runs, and every key must give 32/48
  // bytes.
  for (SignAlgorithm alg : {SignAlgorithm::kES256, SignAlgorithm::kES384}) {
    const size_t want = alg == SignAlgorithm::kES256 ? 32 : 48;
    const int n = alg == SignAlgorithm::kES256 ? 600 : 100;
    for (int i = 0; i < n; ++i) {
      crypto::UniquePkey key = GenerateKey(alg);
      absl::StatusOr<nlohmann::json> jwk = PublicJwkMembers(key.get());
      ASSERT_TRUE(jwk.ok()) << jwk.status();
      ASSERT_EQ((*jwk)["kty"], "EC");
      ASSERT_EQ((*jwk)["crv"],
                alg == SignAlgorithm::kES256 ? "P-256" : "P-384");
      ASSERT_EQ(B64((*jwk)["x"].get<std::string>()).size(), want);
      ASSERT_EQ(B64((*jwk)["y"].get<std::string>()).size(), want);
      ASSERT_EQ(jwk->size(), 4u);
    }
  }
}

TEST(Jwk, RsaMembersAreMinimal) {
  TestSigningKey key = MakeSigningKey(SignAlgorithm::kRS256);
  absl::StatusOr<nlohmann::json> jwk = PublicJwkMembers(key.public_key.get());
  ASSERT_TRUE(jwk.ok());
  const std::string n = B64((*jwk)["n"].get<std::string>());
  EXPECT_EQ(n.size(), 256u);
  EXPECT_NE(n[0], '\0');
  EXPECT_EQ((*jwk)["e"], "AQAB");
}

TEST(Jwk, PublishedJwkAndJwks) {
  std::vector<testing::TestSigningKey> keys;
  std::vector<JwksEntry> entries;
  for (SignAlgorithm alg :
       {SignAlgorithm::kES256, SignAlgorithm::kES384, SignAlgorithm::kEdDSA,
        SignAlgorithm::kPS256, SignAlgorithm::kRS256}) {
    keys.push_back(MakeSigningKey(alg));
    entries.push_back({keys.back().public_key.get(), alg, keys.back().kid});
  }
  absl::StatusOr<nlohmann::json> jwks = BuildJwks(entries);
  ASSERT_TRUE(jwks.ok()) << jwks.status();
  ASSERT_EQ((*jwks)["keys"].size(), 5u);
  for (size_t i = 0; i < entries.size(); ++i) {
    const nlohmann::json& jwk = (*jwks)["keys"][i];
    EXPECT_EQ(jwk["kid"], entries[i].kid);
    EXPECT_EQ(jwk["alg"], std::string(crypto::SignAlgorithmName(entries[i].alg)));
    EXPECT_EQ(jwk["use"], "sig");
    EXPECT_FALSE(jwk.contains("d"));
    // kid is the thumbprint of the published key itself.
    EXPECT_EQ(*JwkThumbprint(jwk), entries[i].kid);
  }
  // The private key exports only public members too.
  absl::StatusOr<nlohmann::json> from_private =
      PublicJwkMembers(keys[0].private_key.get());
  EXPECT_FALSE(from_private->contains("d"));

  // A bad entry is named.
  entries[1].alg = SignAlgorithm::kEdDSA;
  absl::StatusOr<nlohmann::json> bad = BuildJwks(entries);
  ASSERT_FALSE(bad.ok());
  EXPECT_THAT(bad.status().message(), HasSubstr("keys[1]"));
  EXPECT_THAT(bad.status().message(), HasSubstr("does not fit alg EdDSA"));
  entries[1].alg = SignAlgorithm::kES384;
  entries[2].kid.clear();
  EXPECT_THAT(BuildJwks(entries).status().message(), HasSubstr("keys[2]: kid"));
}

TEST(Jwk, ThumbprintRejectsIncompleteJwks) {
  EXPECT_THAT(JwkThumbprint(
                  nlohmann::json{{"kty", "EC"}, {"crv", "P-256"}, {"x", "AA"}})
                  .status()
                  .message(),
              HasSubstr("jwk.y"));
  EXPECT_THAT(JwkThumbprint(nlohmann::json{{"kty", "oct"}, {"k", "AA"}})
                  .status()
                  .message(),
              HasSubstr("jwk.kty"));
  EXPECT_FALSE(JwkThumbprint(nlohmann::json::array()).ok());
  EXPECT_FALSE(PublicJwkMembers(nullptr).ok());
}

}  // namespace
}  // namespace tokensign::token
