// Key types and JOSE signature algorithms tokensign supports, and their names.
// Pure value types; thread-safe.
#ifndef TOKENSIGN_CRYPTO_ALGORITHM_H_
#define TOKENSIGN_CRYPTO_ALGORITHM_H_

#include <optional>
#include <string_view>

namespace tokensign::crypto {

enum class KeyType { kEcP256, kEcP384, kEd25519, kRsa };
enum class SignAlgorithm { kES256, kES384, kEdDSA, kPS256, kRS256 };

// "ES256", "ES384", "EdDSA", "PS256", "RS256".
std::string_view SignAlgorithmName(SignAlgorithm alg);
std::optional<SignAlgorithm> ParseSignAlgorithm(std::string_view name);
// "EC-P256", "EC-P384", "Ed25519", "RSA".
std::string_view KeyTypeName(KeyType type);
// The key type an algorithm needs (RSA for both PS256 and RS256).
KeyType KeyTypeFor(SignAlgorithm alg);

}  // namespace tokensign::crypto

#endif  // TOKENSIGN_CRYPTO_ALGORITHM_H_
