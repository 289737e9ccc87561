#include "crypto/algorithm.h"

namespace tokensign::crypto {

std::string_view SignAlgorithmName(SignAlgorithm alg) {
  switch (alg) {
    case SignAlgorithm::kES256:
      return "ES256";
    case SignAlgorithm::kES384:
      return "ES384";
    case SignAlgorithm::kEdDSA:
      return "EdDSA";
    case SignAlgorithm::kPS256:
      return "PS256";
    case SignAlgorithm::kRS256:
      return "RS256";
  }
  return "unknown";
}

std::optional<SignAlgorithm> ParseSignAlgorithm(std::string_view name) {
  for (SignAlgorithm alg :
       {SignAlgorithm::kES256, SignAlgorithm::kES384, SignAlgorithm::kEdDSA,
        SignAlgorithm::kPS256, SignAlgorithm::kRS256}) {
    if (SignAlgorithmName(alg) == name) return alg;
  }
  return std::nullopt;
}

std::string_view KeyTypeName(KeyType type) {
  switch (type) {
    case KeyType::kEcP256:
      return "EC-P256";
    case KeyType::kEcP384:
      return "EC-P384";
    case KeyType::kEd25519:
      return "Ed25519";
    case KeyType::kRsa:
      return "RSA";
  }
  return "unknown";
}

KeyType KeyTypeFor(SignAlgorithm alg) {
  switch (alg) {
    case SignAlgorithm::kES256:
      return KeyType::kEcP256;
    case SignAlgorithm::kES384:
      return KeyType::kEcP384;
    case SignAlgorithm::kEdDSA:
      return KeyType::kEd25519;
    case SignAlgorithm::kPS256:
    case SignAlgorithm::kRS256:
      return KeyType::kRsa;
  }
  return KeyType::kRsa;
}

}  // namespace tokensign::crypto
