// crypto::ParseSpki builds the forms tokensign makes (P-256, P-384 with an
// uncompressed point, Ed25519) from their key bytes instead of OpenSSL 3's
// decoder chain (which cost ~0.15 ms per key at every keyset load) and hands
// every other input to d2i_PUBKEY. It must answer exactly as d2i_PUBKEY with
// the whole input consumed: the same key for every SPKI, the same refusal for
// every byte changed (a point off the curve, another OID, a wrong length).
// Test-only; the test thread.
#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#include <string>
#include <vector>

#include "crypto/spki.h"
#include "crypto/ssl_ptr.h"

namespace tokensign::crypto {
namespace {

std::string SpkiOf(EVP_PKEY* key) {
  auto der = SpkiDer(key);
  EXPECT_TRUE(der.ok()) << der.status();
  return der.value_or("");
}

// d2i_PUBKEY's verdict on all of `der` (what ParseSpki gave before).
UniquePkey Reference(const std::string& der) {
  const auto* p = reinterpret_cast<const unsigned char*>(der.data());
  UniquePkey key(d2i_PUBKEY(nullptr, &p, static_cast<long>(der.size())));
  if (key != nullptr &&
      p != reinterpret_cast<const unsigned char*>(der.data()) + der.size()) {
    key.reset();
  }
  return key;
}

void ExpectSameAsReference(const std::string& der, const std::string& what) {
  UniquePkey want = Reference(der);
  auto got = ParseSpki(der);
  ASSERT_EQ(got.ok(), want != nullptr) << what;
  if (want == nullptr) return;
  EXPECT_EQ(EVP_PKEY_eq(got->get(), want.get()), 1) << what;
  EXPECT_EQ(SpkiOf(got->get()), SpkiOf(want.get())) << what;
}

std::vector<UniquePkey> Keys() {
  std::vector<UniquePkey> keys;
  keys.emplace_back(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256"));
  keys.emplace_back(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-384"));
  keys.emplace_back(EVP_PKEY_Q_keygen(nullptr, nullptr, "ED25519"));
  keys.emplace_back(EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", size_t{2048}));
  for (const UniquePkey& k : keys) EXPECT_NE(k, nullptr);
  return keys;
}

TEST(ParseSpki, GivesTheKeyItsSpkiEncodes) {
  for (const UniquePkey& key : Keys()) {
    const std::string der = SpkiOf(key.get());
    auto parsed = ParseSpki(der);
    ASSERT_TRUE(parsed.ok()) << parsed.status();
    EXPECT_EQ(EVP_PKEY_eq(parsed->get(), key.get()), 1);
    EXPECT_EQ(SpkiOf(parsed->get()), der);  // encodes back to the same bytes
    ExpectSameAsReference(der, "unchanged");
  }
}

TEST(ParseSpki, AnswersAsD2iPubkeyForEveryChangedByte) {
  for (const UniquePkey& key : Keys()) {
    if (EVP_PKEY_is_a(key.get(), "RSA")) continue;  // d2i_PUBKEY's path
    const std::string der = SpkiOf(key.get());
    for (size_t i = 0; i < der.size(); ++i) {
      for (unsigned char flip : {0x01, 0x80, 0xff}) {
        std::string bad = der;
        bad[i] = static_cast<char>(bad[i] ^ flip);
        ASSERT_NO_FATAL_FAILURE(ExpectSameAsReference(
            bad, "byte " + std::to_string(i) + " ^ " + std::to_string(flip)));
      }
    }
    ExpectSameAsReference(der + '\0', "a trailing byte");
    ExpectSameAsReference(der.substr(0, der.size() - 1), "one byte short");
  }
}

TEST(ParseSpki, RefusesAPointOffTheCurve) {
  UniquePkey key(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256"));
  ASSERT_NE(key, nullptr);
  std::string der = SpkiOf(key.get());
  der.back() = static_cast<char>(der.back() ^ 0x01);  // y changed
  auto parsed = ParseSpki(der);
  ASSERT_FALSE(parsed.ok());
  EXPECT_EQ(parsed.status().message(),
            "public key: not one DER SubjectPublicKeyInfo");
}

}  // namespace
}  // namespace tokensign::crypto
