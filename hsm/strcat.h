// Transitional: the string_view bridge moved to crypto/str_cat.h (namespace
// tokensign: Cat, AbslView, Prefix, AsciiLower, found unqualified from
// tokensign::hsm). Include crypto/str_cat.h.
#ifndef TOKENSIGN_HSM_STRCAT_H_
#define TOKENSIGN_HSM_STRCAT_H_

#include "crypto/str_cat.h"

#endif  // TOKENSIGN_HSM_STRCAT_H_
