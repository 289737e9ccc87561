#include "tests/support/softhsm_token.h"

#include <fcntl.h>
#include <spawn.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <random>

#include "absl/strings/str_cat.h"

extern char** environ;

namespace tokensign::testing {
namespace {

#ifndef TOKENSIGN_SOFTHSM_MODULE
#define TOKENSIGN_SOFTHSM_MODULE "/usr/lib/softhsm/libsofthsm2.so"
#endif

std::string RandomHex(int bytes) {
  std::random_device rd;
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (int i = 0; i < bytes; ++i) {
    unsigned value = rd() & 0xff;
    out.push_back(kHex[value >> 4]);
    out.push_back(kHex[value & 0xf]);
  }
  return out;
}

}  // namespace

absl::StatusOr<CommandResult> RunCommand(const std::vector<std::string>& argv) {
  if (argv.empty()) return absl::InvalidArgumentError("RunCommand: empty argv");
  char out_template[] = "/tmp/tokensign-cmd-XXXXXX";
  int out_fd = mkstemp(out_template);
  if (out_fd < 0) return absl::InternalError("RunCommand: mkstemp failed");
  unlink(out_template);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, out_fd, 1);
  posix_spawn_file_actions_adddup2(&actions, out_fd, 2);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  std::vector<char*> args;
  for (const std::string& arg : argv)
    args.push_back(const_cast<char*>(arg.c_str()));
  args.push_back(nullptr);
  pid_t pid = 0;
  int rc = posix_spawnp(&pid, args[0], &actions, nullptr, args.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (rc != 0) {
    close(out_fd);
    return absl::NotFoundError(
        absl::StrCat("RunCommand: cannot start ", argv[0]));
  }
  int wstatus = 0;
  while (waitpid(pid, &wstatus, 0) < 0 && errno == EINTR) {
  }
  CommandResult result;
  result.exit_code = WIFEXITED(wstatus) ? WEXITSTATUS(wstatus) : 128;
  lseek(out_fd, 0, SEEK_SET);
  char buf[4096];
  ssize_t n;
  while ((n = read(out_fd, buf, sizeof(buf))) > 0) result.output.append(buf, n);
  close(out_fd);
  return result;
}

absl::StatusOr<std::unique_ptr<SoftHsmToken>> SoftHsmToken::Create() {
  std::unique_ptr<SoftHsmToken> token(new SoftHsmToken());
  const char* tmp = getenv("TMPDIR");
  std::string templ =
      absl::StrCat(tmp ? tmp : "/tmp", "/tokensign-softhsm-XXXXXX");
  if (mkdtemp(templ.data()) == nullptr) {
    return absl::InternalError(
        absl::StrCat("SoftHsmToken: mkdtemp(", templ, ") failed"));
  }
  token->dir_ = templ;
  token->module_path_ = TOKENSIGN_SOFTHSM_MODULE;
  token->conf_path_ = token->dir_ + "/softhsm2.conf";
  std::filesystem::create_directory(token->dir_ + "/tokens");
  {
    std::ofstream conf(token->conf_path_);
    conf << "directories.tokendir = " << token->dir_ << "/tokens\n"
         << "objectstore.backend = file\n"
         << "log.level = ERROR\n"
         << "slots.removable = false\n";
    if (!conf)
      return absl::InternalError("SoftHsmToken: cannot write softhsm2.conf");
  }
  setenv("SOFTHSM2_CONF", token->conf_path_.c_str(), 1);
  token->pin_ = "u" + RandomHex(8);
  token->so_pin_ = "s" + RandomHex(8);
  setenv(kPinEnv, token->pin_.c_str(), 1);
  token->label_ = "ts-test-" + RandomHex(4);
  if (absl::Status s = token->InitToken(token->label_); !s.ok()) return s;
  return token;
}

absl::Status SoftHsmToken::InitToken(const std::string& label) {
  absl::StatusOr<CommandResult> run =
      RunCommand({"softhsm2-util", "--init-token", "--free", "--label", label,
                  "--pin", pin_, "--so-pin", so_pin_});
  if (!run.ok()) return run.status();
  if (run->exit_code != 0) {
    return absl::InternalError(
        absl::StrCat("softhsm2-util --init-token failed (", run->exit_code,
                     "): ", run->output));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> SoftHsmToken::AddToken() {
  std::string label = "ts-test-" + RandomHex(4);
  if (absl::Status s = InitToken(label); !s.ok()) return s;
  return label;
}

SoftHsmToken::~SoftHsmToken() {
  std::error_code ec;
  if (!dir_.empty()) std::filesystem::remove_all(dir_, ec);
}

hsm::HsmConfig SoftHsmToken::config() const {
  hsm::HsmConfig config;
  config.module_path = module_path_;
  config.token_label = label_;
  config.pin_env = kPinEnv;
  return config;
}

}  // namespace tokensign::testing
