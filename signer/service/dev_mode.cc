#include "signer/service/dev_mode.h"

#include <fcntl.h>
#include <openssl/rand.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "hsm/token_init.h"

namespace tokensign::service {
namespace {

namespace fs = std::filesystem;

absl::Status Errno(const std::string& what) {
  return absl::InternalError(
      absl::StrCat("dev mode: ", what, ": ", std::strerror(errno)));
}

// Writes `content` to `path` created 0600 (replacing any old file).
absl::Status WritePrivateFile(const std::string& path,
                              const std::string& content) {
  int fd = ::open(path.c_str(),
                  O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) return Errno("open " + path);
  ::fchmod(fd, 0600);
  ssize_t n = ::write(fd, content.data(), content.size());
  bool ok = n == static_cast<ssize_t>(content.size()) && ::fsync(fd) == 0;
  ::close(fd);
  if (!ok) return Errno("write " + path);
  return absl::OkStatus();
}

absl::StatusOr<std::string> RandomPin() {
  unsigned char buf[16];
  if (RAND_bytes(buf, sizeof(buf)) != 1)
    return absl::InternalError("dev mode: RAND_bytes failed");
  static constexpr char kHex[] = "0123456789abcdef";
  std::string pin;
  for (unsigned char b : buf) {
    pin.push_back(kHex[b >> 4]);
    pin.push_back(kHex[b & 15]);
  }
  return pin;
}

}  // namespace

absl::StatusOr<std::string> PrepareDevState(const std::string& dir_arg,
                                            const std::string& module_path) {
  std::error_code ec;
  fs::create_directories(dir_arg, ec);
  if (ec)
    return absl::InternalError(
        absl::StrCat("dev mode: mkdir ", dir_arg, ": ", ec.message()));
  std::string dir = fs::canonical(dir_arg, ec).string();
  if (ec)
    return absl::InternalError(
        absl::StrCat("dev mode: ", dir_arg, ": ", ec.message()));
  ::chmod(dir.c_str(), 0700);
  std::string tokens = dir + "/tokens";
  fs::create_directories(tokens, ec);
  if (ec)
    return absl::InternalError(
        absl::StrCat("dev mode: mkdir ", tokens, ": ", ec.message()));
  ::chmod(tokens.c_str(), 0700);

  std::string conf = dir + "/softhsm2.conf";
  std::string conf_text =
      absl::StrCat("directories.tokendir = ", tokens,
                   "\nobjectstore.backend = file\nlog.level = ERROR\n"
                   "slots.removable = false\n");
  if (absl::Status st = WritePrivateFile(conf, conf_text); !st.ok()) return st;
  ::setenv("SOFTHSM2_CONF", conf.c_str(), 1);

  std::string marker = dir + "/token-initialized";
  if (fs::exists(marker) && fs::exists(dir + "/pin")) return dir;

  auto pin = RandomPin();
  if (!pin.ok()) return pin.status();
  auto so_pin = RandomPin();
  if (!so_pin.ok()) return so_pin.status();
  if (absl::Status st = WritePrivateFile(dir + "/pin", *pin); !st.ok())
    return st;
  if (absl::Status st = WritePrivateFile(dir + "/so-pin", *so_pin); !st.ok())
    return st;
  absl::Status st =
      hsm::InitializeToken(module_path, kDevTokenLabel, *so_pin, *pin);
  if (!st.ok()) {
    return absl::Status(st.code(), absl::StrCat("dev mode: token init in ",
                                                tokens, ": ", st.message()));
  }
  return WritePrivateFile(marker, "tokensign-dev\n").ok()
             ? absl::StatusOr<std::string>(dir)
             : Errno("write " + marker);
}

}  // namespace tokensign::service
