// Entry point of the loadable module tokensign-provider.so (`openssl ... -provider
// tokensign`). The module opens its own Hsm from TOKENSIGN_* environment variables,
// the openssl.cnf provider section, or the pkcs11: URI (see README.md).
#include <openssl/core.h>

#include "hsm/provider/provider_internal.h"

extern "C" __attribute__((visibility("default"))) int OSSL_provider_init(
    const OSSL_CORE_HANDLE* handle, const OSSL_DISPATCH* in, const OSSL_DISPATCH** out,
    void** provctx) {
  return tokensign::hsm::provider::ProviderInit(handle, in, out, provctx);
}
