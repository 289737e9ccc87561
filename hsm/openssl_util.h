// Transitional: the OpenSSL helpers moved to crypto/ (ssl_ptr.h, spki.h,
// openssl_error.h, ecdsa_encoding.h; namespace tokensign::crypto). This header
// keeps the old hsm:: spellings compiling while work in flight moves over.
#ifndef TOKENSIGN_HSM_OPENSSL_UTIL_H_
#define TOKENSIGN_HSM_OPENSSL_UTIL_H_

#include "crypto/ecdsa_encoding.h"
#include "crypto/openssl_error.h"
#include "crypto/spki.h"
#include "crypto/ssl_ptr.h"

namespace tokensign::hsm {
using crypto::ClearErrors;
using crypto::EcdsaDerToRaw;
using crypto::EcdsaRawToDer;
using crypto::OpenSslError;
using crypto::ParseSpki;
using crypto::SpkiDer;
using crypto::UniqueBn;
using crypto::UniqueMdCtx;
using crypto::UniquePkey;
using crypto::UniquePkeyCtx;
}  // namespace tokensign::hsm

#endif  // TOKENSIGN_HSM_OPENSSL_UTIL_H_
