// Sha256Hex: lowercase hex SHA-256 of a string, computed with OpenSSL
// directly (not with tokensign's code), so a test's expected `token_sha256`
// of an audit record does not come from the code under test.
// Thread-safety: a pure function.
#ifndef TOKENSIGN_TESTS_SUPPORT_SHA256_HEX_H_
#define TOKENSIGN_TESTS_SUPPORT_SHA256_HEX_H_

#include <openssl/sha.h>

#include <string>

namespace tokensign::testing {

inline std::string Sha256Hex(const std::string& data) {
  unsigned char md[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(data.data()), data.size(), md);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (unsigned char c : md) {
    out.push_back(kHex[c >> 4]);
    out.push_back(kHex[c & 15]);
  }
  return out;
}

}  // namespace tokensign::testing

#endif  // TOKENSIGN_TESTS_SUPPORT_SHA256_HEX_H_
