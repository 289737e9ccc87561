#include "tests/support/softhsm_token.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <spawn.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>
#include <thread>

#include "absl/strings/str_cat.h"
#include "hsm/module.h"

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

// p11-kit's client module: TOKENSIGN_P11KIT_CLIENT, else where Debian puts it.
std::string P11KitClientPath() {
  const char* env = getenv("TOKENSIGN_P11KIT_CLIENT");
  if (env != nullptr && *env != '\0') return env;
  for (const char* path :
       {"/usr/lib/x86_64-linux-gnu/pkcs11/p11-kit-client.so",
        "/usr/lib/aarch64-linux-gnu/pkcs11/p11-kit-client.so",
        "/usr/lib64/pkcs11/p11-kit-client.so",
        "/usr/lib/pkcs11/p11-kit-client.so"}) {
    if (access(path, R_OK) == 0) return path;
  }
  return "";
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
  token->softhsm_module_path_ = TOKENSIGN_SOFTHSM_MODULE;
  const char* kind = getenv("TOKENSIGN_TEST_MODULE");
  if (kind != nullptr && std::string(kind) == "p11kit") {
    token->module_kind_ = "p11kit";
  } else if (kind != nullptr && *kind != '\0' &&
             std::string(kind) != "softhsm") {
    return absl::InvalidArgumentError(
        absl::StrCat("TOKENSIGN_TEST_MODULE: '", kind,
                     "' is neither softhsm nor p11kit"));
  }
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
  if (token->module_kind_ == "p11kit") {
    if (absl::Status s = token->StartP11KitServer(); !s.ok()) return s;
  }
  return token;
}

// `p11-kit server -f` on a socket in the temp dir, exporting every token of
// SoftHSM (it reads SOFTHSM2_CONF, set above, once per client connection, so
// tokens added later are seen by connections made after them). The server
// dies with this process (PR_SET_PDEATHSIG) if the destructor never runs.
absl::Status SoftHsmToken::StartP11KitServer() {
  const std::string client = P11KitClientPath();
  if (client.empty()) {
    return absl::NotFoundError(
        "TOKENSIGN_TEST_MODULE=p11kit: p11-kit-client.so not found (Debian "
        "package p11-kit-modules, or set TOKENSIGN_P11KIT_CLIENT)");
  }
  const std::string socket = dir_ + "/p11kit.sock";
  std::vector<std::string> argv = {"p11-kit",     "server",
                                   "-f",          "-n",
                                   socket,        "--provider",
                                   softhsm_module_path_, "pkcs11:"};
  std::vector<char*> args;
  for (std::string& arg : argv) args.push_back(arg.data());
  args.push_back(nullptr);
  const pid_t parent = getpid();
  pid_t pid = fork();
  if (pid < 0) return absl::InternalError("p11-kit server: fork failed");
  if (pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (getppid() != parent) _exit(127);
    int null_fd = open("/dev/null", O_RDWR);
    if (null_fd >= 0) {
      dup2(null_fd, 0);
      dup2(null_fd, 1);  // it prints the shell lines we do not need
    }
    execvp(args[0], args.data());
    _exit(127);
  }
  p11kit_server_pid_ = pid;
  for (int i = 0; i < 1000; ++i) {  // bounded wait (10 s) for the socket
    if (access(socket.c_str(), F_OK) == 0) break;
    int status = 0;
    if (waitpid(pid, &status, WNOHANG) == pid) {
      p11kit_server_pid_ = -1;
      return absl::NotFoundError(absl::StrCat(
          "TOKENSIGN_TEST_MODULE=p11kit: `p11-kit server` exited (status ",
          status, "); is the p11-kit package installed?"));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  if (access(socket.c_str(), F_OK) != 0) {
    return absl::InternalError("p11-kit server: no socket after 10 s");
  }
  setenv("P11_KIT_SERVER_ADDRESS", ("unix:path=" + socket).c_str(), 1);
  module_path_ = client;
  // What the client offers (its own connection, finalized again at once).
  // Under load a fresh server's first connections now and then list no slot
  // for the token (about 1 run in 20 with three suites at once); each
  // connection looks again, so a few are tried (bounded: 5 s). A token still
  // missing then is an error, never "not installed" (which would skip).
  absl::StatusOr<std::unique_ptr<hsm::Module>> module;
  absl::StatusOr<CK_SLOT_ID> slot = absl::UnknownError("not looked up");
  for (int attempt = 0; attempt < 50; ++attempt) {
    if (attempt > 0) std::this_thread::sleep_for(std::chrono::milliseconds(100));
    module = absl::UnknownError("reconnecting");  // finalizes the last one
    module = hsm::Module::Load(module_path_);
    if (!module.ok()) return module.status();
    slot = (*module)->FindSlot(label_, "");
    if (!absl::IsNotFound(slot.status())) {
      if (attempt > 0) {
        std::fprintf(stderr, "p11-kit server: token listed at connection %d\n",
                     attempt + 1);
      }
      break;
    }
  }
  if (absl::IsNotFound(slot.status())) {
    return absl::InternalError(absl::StrCat(
        "p11-kit server does not show the test's token after 50 "
        "connections: ",
        slot.status().message()));
  }
  if (!slot.ok()) return slot.status();
  absl::StatusOr<std::vector<CK_MECHANISM_TYPE>> mechs =
      (*module)->Mechanisms(*slot);
  if (!mechs.ok()) return mechs.status();
  auto has = [&](CK_MECHANISM_TYPE m) {
    return std::find(mechs->begin(), mechs->end(), m) != mechs->end();
  };
  offers_ed25519_ = has(CKM_EC_EDWARDS_KEY_PAIR_GEN) && has(CKM_EDDSA);
  return absl::OkStatus();
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
  if (p11kit_server_pid_ > 0) {
    kill(p11kit_server_pid_, SIGTERM);
    while (waitpid(p11kit_server_pid_, nullptr, 0) < 0 && errno == EINTR) {
    }
  }
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
