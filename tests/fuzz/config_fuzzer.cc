// libFuzzer target: the TOML config loader (signer/service/config.h ParseConfig).
// A config is written by an operator, but the loader must still refuse any bytes
// cleanly (an error naming the key), never crash or throw.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "signer/service/config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  (void)tokensign::service::ParseConfig(text, "fuzz.toml");
  return 0;
}
