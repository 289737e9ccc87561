// DER values of CKA_EC_PARAMS for the curves tokensign makes and reads:
// key generation writes them, KeyStore::Describe recognizes them.
// Thread-safety: constants.
#ifndef TOKENSIGN_HSM_EC_PARAMS_H_
#define TOKENSIGN_HSM_EC_PARAMS_H_

#include <cstddef>
#include <string_view>

namespace tokensign::hsm::ec_params {

// DER of the curve identifiers used in CKA_EC_PARAMS.
inline constexpr unsigned char kP256Oid[] = {0x06, 0x08, 0x2a, 0x86, 0x48,
                                      0xce, 0x3d, 0x03, 0x01, 0x07};
inline constexpr unsigned char kP384Oid[] = {0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x22};
// PrintableString "edwards25519" (what SoftHSM 2.6.1 accepts for Ed25519).
inline constexpr unsigned char kEd25519Name[] = {0x13, 0x0c, 'e', 'd', 'w', 'a', 'r',
                                          'd',  's',  '2', '5', '5', '1', '9'};
// OID 1.3.101.112 (id-Ed25519), accepted as an alternative when reading.
inline constexpr unsigned char kEd25519Oid[] = {0x06, 0x03, 0x2b, 0x65, 0x70};

inline std::string_view AsView(const unsigned char* data, size_t size) {
  return std::string_view(reinterpret_cast<const char*>(data), size);
}

}  // namespace tokensign::hsm::ec_params

#endif  // TOKENSIGN_HSM_EC_PARAMS_H_
