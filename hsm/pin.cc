#include "hsm/pin.h"

#include <fcntl.h>
#include <openssl/crypto.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "crypto/str_cat.h"

namespace tokensign::hsm {
namespace {

std::string Octal(mode_t mode) {
  char buf[8];
  std::snprintf(buf, sizeof(buf), "%04o", static_cast<unsigned>(mode & 07777));
  return buf;
}

// Opens the PIN file for reading (following a symlink: secret mounts are
// symlinks into a data directory; the checks apply to the file opened).
absl::StatusOr<int> OpenPinFile(const std::string& path, std::string* warning) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
  if (fd < 0) {
    return absl::InvalidArgumentError(
        Cat("HsmConfig.pin_file: cannot read ", path, ": ", std::strerror(errno)));
  }
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    int err = errno;
    ::close(fd);
    return absl::InvalidArgumentError(
        Cat("HsmConfig.pin_file: cannot stat ", path, ": ", std::strerror(err)));
  }
  if (absl::Status ok = CheckPinFileStat(path, st, ::geteuid(), warning); !ok.ok()) {
    ::close(fd);
    return ok;
  }
  return fd;
}

}  // namespace

absl::Status CheckPinFileStat(const std::string& path, const struct stat& st,
                              uid_t self, std::string* warning) {
  if (warning != nullptr) warning->clear();
  if (!S_ISREG(st.st_mode)) {
    return absl::FailedPreconditionError(
        Cat("pin_file ", path, ": not a regular file"));
  }
  if (st.st_uid != self && st.st_uid != 0) {
    return absl::FailedPreconditionError(
        Cat("pin_file ", path, ": owned by uid ", st.st_uid,
            ", who could change the PIN it holds; it must belong to this user (uid ",
            self, ") or root: chown ", self, " ", path, " && chmod 600 ", path));
  }
  const bool group_w = (st.st_mode & S_IWGRP) != 0;
  const bool other_w = (st.st_mode & S_IWOTH) != 0;
  if (group_w || other_w) {
    const char* who = group_w && other_w ? "group and others" : group_w ? "group" : "others";
    return absl::FailedPreconditionError(Cat("pin_file ", path, ": mode ",
                                             Octal(st.st_mode), " lets ", who,
                                             " write it; chmod 600 ", path));
  }
  if ((st.st_mode & S_IROTH) != 0 && warning != nullptr) {
    *warning = Cat("pin_file ", path, ": mode ", Octal(st.st_mode),
                   " lets others read the PIN; chmod 600 ", path,
                   " (or 640 with a group that must read it)");
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> CheckPinFile(const HsmConfig& config) {
  if (config.pin_file.empty()) return std::string();
  std::string warning;
  absl::StatusOr<int> fd = OpenPinFile(config.pin_file, &warning);
  if (!fd.ok()) return fd.status();
  ::close(*fd);
  return warning;
}

absl::StatusOr<std::string> ReadPin(const HsmConfig& config, std::string* warning) {
  if (warning != nullptr) warning->clear();
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
    absl::StatusOr<int> fd = OpenPinFile(config.pin_file, warning);
    if (!fd.ok()) return fd.status();
    char buf[4096];
    for (;;) {
      ssize_t n = ::read(*fd, buf, sizeof(buf));
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) {
        int err = errno;
        ::close(*fd);
        return absl::InvalidArgumentError(Cat("HsmConfig.pin_file: cannot read ",
                                              config.pin_file, ": ",
                                              std::strerror(err)));
      }
      if (n == 0) break;
      pin.append(buf, static_cast<size_t>(n));
      if (pin.size() > (1u << 16)) {
        ::close(*fd);
        return absl::InvalidArgumentError(
            Cat("HsmConfig.pin_file: ", config.pin_file, " is larger than 64 KiB"));
      }
    }
    ::close(*fd);
    OPENSSL_cleanse(buf, sizeof(buf));
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
