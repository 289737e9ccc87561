#include "hsm/pin.h"

#include <cstdlib>
#include <fstream>
#include <sstream>

#include "hsm/strcat.h"

namespace tokensign::hsm {

absl::StatusOr<std::string> ReadPin(const HsmConfig& config) {
  if (!config.pin_value.empty()) {
    if (!config.pin_env.empty() || !config.pin_file.empty()) {
      return absl::InvalidArgumentError(
          "HsmConfig.pin_value: set either pin_value or pin_env/pin_file, not both");
    }
    return config.pin_value;
  }
  if (config.pin_env.empty() == config.pin_file.empty()) {
    return absl::InvalidArgumentError(
        "HsmConfig.pin_env/pin_file: exactly one must be set");
  }
  std::string pin;
  if (!config.pin_env.empty()) {
    const char* value = std::getenv(config.pin_env.c_str());
    if (value == nullptr) {
      return absl::InvalidArgumentError(
          Cat("HsmConfig.pin_env: environment variable ", config.pin_env,
              " is not set"));
    }
    pin = value;
  } else {
    std::ifstream in(config.pin_file, std::ios::binary);
    if (!in) {
      return absl::InvalidArgumentError(
          Cat("HsmConfig.pin_file: cannot read ", config.pin_file));
    }
    std::ostringstream buf;
    buf << in.rdbuf();
    pin = buf.str();
    while (!pin.empty() && (pin.back() == '\n' || pin.back() == '\r')) {
      pin.pop_back();
    }
  }
  if (pin.empty()) {
    return absl::InvalidArgumentError(
        "HsmConfig.pin_env/pin_file: the PIN is empty");
  }
  return pin;
}

}  // namespace tokensign::hsm
