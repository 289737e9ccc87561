// Transitional: the algorithm names moved to crypto/algorithm.h (namespace
// tokensign::crypto). This header keeps the old spelling hsm::SignAlgorithm
// compiling while work in flight moves over; include crypto/algorithm.h.
#ifndef TOKENSIGN_HSM_ALGORITHM_H_
#define TOKENSIGN_HSM_ALGORITHM_H_

#include "crypto/algorithm.h"

namespace tokensign::hsm {
using crypto::KeyType;
using crypto::KeyTypeFor;
using crypto::KeyTypeName;
using crypto::ParseSignAlgorithm;
using crypto::SignAlgorithm;
using crypto::SignAlgorithmName;
}  // namespace tokensign::hsm

#endif  // TOKENSIGN_HSM_ALGORITHM_H_
