// Token Status List tokens: the draft's bit layout (entry i at bit i * bits,
// least significant first) after zlib inflation, the checks against the
// issuer's configured lists, and the signed token's header and claims.
#include "signer/token/status_list.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <zlib.h>

#include "crypto/algorithm.h"
#include "signer/token/jws.h"
#include "tests/token/test_keys.h"

namespace tokensign::token {
namespace {

using ::testing::StartsWith;

// base64url(zlib(bytes)) -> bytes.
std::string Inflate(const std::string& lst, size_t size) {
  absl::StatusOr<std::string> z = Base64UrlDecode(lst);
  EXPECT_TRUE(z.ok());
  std::string out(size, '\0');
  uLongf len = size;
  EXPECT_EQ(uncompress(reinterpret_cast<Bytef*>(out.data()), &len,
                       reinterpret_cast<const Bytef*>(z->data()), z->size()),
            Z_OK);
  out.resize(len);
  return out;
}

TEST(StatusList, BitLayoutMatchesTheDraft) {
  // The draft's example (section 4.1): 16 one-bit entries with 0, 3, 4, 5,
  // 7, 8, 9, 13, 15 set are the bytes 0xB9 0xA3.
  std::vector<StatusEntry> set;
  for (int64_t i : {0, 3, 4, 5, 7, 8, 9, 13, 15}) set.push_back({i, 1});
  absl::StatusOr<std::string> lst = EncodeStatusList(1, 16, set);
  ASSERT_TRUE(lst.ok()) << lst.status();
  EXPECT_EQ(Inflate(*lst, 2), std::string("\xB9\xA3", 2));
  // Two bits: entry 0 = 1, 1 = 2, 2 = 0, 3 = 3, 5 = 1 -> 0b11'00'10'01, 0b0100.
  lst = EncodeStatusList(2, 8, {{0, 1}, {1, 2}, {3, 3}, {5, 1}});
  ASSERT_TRUE(lst.ok());
  EXPECT_EQ(Inflate(*lst, 2), std::string("\xC9\x04", 2));
}

TEST(StatusList, SignedAndChecked) {
  testing::TestSigningKey key = testing::MakeSigningKey(crypto::SignAlgorithm::kES256);
  IssuerPolicy p;
  p.iss = "https://issuer.example";
  p.status_lists = {{"https://issuer.example/status/1", 100, 2}};
  StatusListRequest r;
  r.uri = "https://issuer.example/status/1";
  r.entries = {{7, 1}, {99, 2}};
  absl::StatusOr<SignedStatusList> s =
      SignStatusList(p, key, r, absl::FromUnixSeconds(1767225600));
  ASSERT_TRUE(s.ok()) << s.status();
  absl::StatusOr<nlohmann::json> claims = VerifyCompact(
      s->token, key.public_key.get(), {key.alg, key.kid, "statuslist+jwt"});
  ASSERT_TRUE(claims.ok()) << claims.status();
  EXPECT_EQ((*claims)["sub"], r.uri);
  EXPECT_EQ((*claims)["iss"], p.iss);
  EXPECT_EQ((*claims)["exp"], 1767225600 + 86400);
  EXPECT_EQ((*claims)["ttl"], 300);
  EXPECT_EQ((*claims)["status_list"]["bits"], 2);
  std::string bytes =
      Inflate((*claims)["status_list"]["lst"].get<std::string>(), 25);
  ASSERT_EQ(bytes.size(), 25u);
  EXPECT_EQ(static_cast<unsigned char>(bytes[1]), 0x01 << 6);  // entry 7
  EXPECT_EQ(static_cast<unsigned char>(bytes[24]), 0x02 << 6);  // entry 99
  EXPECT_EQ(s->set_entries, 2);

  auto refusal = [&](StatusListRequest bad) {
    absl::StatusOr<SignedStatusList> x = SignStatusList(p, key, bad, absl::Now());
    EXPECT_FALSE(x.ok());
    return std::string(x.status().message());
  };
  StatusListRequest bad = r;
  bad.uri = "https://elsewhere.example/s";
  EXPECT_THAT(refusal(bad), StartsWith("uri: \"https://elsewhere.example/s\""));
  bad = r;
  bad.entries = {{100, 1}};
  EXPECT_THAT(refusal(bad), StartsWith("entries[0].idx: 100 is outside"));
  bad.entries = {{1, 4}};
  EXPECT_THAT(refusal(bad), StartsWith("entries[0].status: 4 does not fit 2"));
  bad.entries = {{1, 1}, {1, 2}};
  EXPECT_THAT(refusal(bad), StartsWith("entries[1].idx: 1 is listed twice"));
}

}  // namespace
}  // namespace tokensign::token
