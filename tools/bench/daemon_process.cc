#include "tools/bench/daemon_process.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>
#include <vector>

extern char** environ;

namespace tokensign::bench {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

// GET /readyz on 127.0.0.1:port; true on an HTTP 200.
bool Ready(int port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bool ok = false;
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0) {
    static constexpr char kRequest[] =
        "GET /readyz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
    if (::write(fd, kRequest, sizeof(kRequest) - 1) == sizeof(kRequest) - 1) {
      char buf[64] = {};
      ssize_t n = ::read(fd, buf, sizeof(buf) - 1);
      ok = n > 12 && std::string(buf, n).find(" 200") != std::string::npos;
    }
  }
  ::close(fd);
  return ok;
}

std::string DefaultBinary() {
  std::error_code ec;
  fs::path self = fs::read_symlink("/proc/self/exe", ec);
  if (ec) return "tokensignd";
  return (self.parent_path().parent_path().parent_path() /
          "signer/service/tokensignd")
      .string();
}

}  // namespace

absl::StatusOr<std::unique_ptr<DaemonProcess>> DaemonProcess::StartDev(
    const std::string& binary_arg, const std::string& module, bool keep_state,
    std::vector<std::string> extra_args) {
  std::string binary = binary_arg.empty() ? DefaultBinary() : binary_arg;
  if (::access(binary.c_str(), X_OK) != 0)
    return absl::NotFoundError("tokensignd not found at " + binary +
                               " (give --tokensignd)");
  std::string tmpl =
      (fs::temp_directory_path() / "tokensign-dbench-XXXXXX").string();
  if (::mkdtemp(tmpl.data()) == nullptr)
    return absl::InternalError("mkdtemp failed");
  std::unique_ptr<DaemonProcess> d(new DaemonProcess);
  d->binary_ = binary;
  d->module_ = module;
  d->state_dir_ = tmpl;
  d->keep_state_ = keep_state;
  if (absl::Status st = d->Spawn(extra_args); !st.ok()) return st;
  return d;
}

absl::Status DaemonProcess::Restart(std::vector<std::string> extra_args) {
  if (absl::Status st = Stop(); !st.ok()) return st;
  grpc_port_ = http_port_ = 0;
  return Spawn(extra_args);
}

absl::Status DaemonProcess::Spawn(const std::vector<std::string>& extra_args) {
  const std::string& tmpl = state_dir_;
  std::string ready_file = tmpl + "/ready.json",
              log_file = tmpl + "/tokensignd.log";
  std::error_code ec;
  fs::remove(ready_file, ec);
  std::vector<std::string> args = {
      binary_,         "--dev",       "--state-dir",   tmpl,
      "--grpc-listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0",
      "--ready-file",  ready_file,    "--module",      module_,
      "--log-level",   "warn"};
  args.insert(args.end(), extra_args.begin(), extra_args.end());
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 1, log_file.c_str(),
                                   O_WRONLY | O_CREAT | O_TRUNC, 0600);
  posix_spawn_file_actions_adddup2(&actions, 1, 2);
  int rc = ::posix_spawn(&pid_, binary_.c_str(), &actions, nullptr,
                         argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (rc != 0) {
    pid_ = -1;
    return absl::InternalError("posix_spawn " + binary_ + " failed");
  }
  auto deadline = Clock::now() + std::chrono::seconds(60);
  while (Clock::now() < deadline) {
    int wstatus = 0;
    if (::waitpid(pid_, &wstatus, WNOHANG) == pid_) {
      pid_ = -1;
      std::ifstream in(log_file);
      std::stringstream text;
      text << in.rdbuf();
      return absl::InternalError("tokensignd exited during start; its log:\n" +
                                 text.str());
    }
    if (grpc_port_ == 0) {
      std::ifstream in(ready_file);
      auto j = nlohmann::json::parse(in, nullptr, false);
      if (!j.is_discarded() && j.contains("grpc_port") &&
          j.contains("http_port")) {
        grpc_port_ = j["grpc_port"].get<int>();
        http_port_ = j["http_port"].get<int>();
      }
    }
    if (http_port_ != 0 && Ready(http_port_)) return absl::OkStatus();
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return absl::DeadlineExceededError(
      "tokensignd not ready (/readyz) after 60 s; log in " + log_file);
}

absl::Status DaemonProcess::Stop() {
  if (pid_ <= 0) return absl::OkStatus();
  ::kill(pid_, SIGTERM);
  auto deadline = Clock::now() + std::chrono::seconds(20);
  int wstatus = 0;
  while (::waitpid(pid_, &wstatus, WNOHANG) == 0) {
    if (Clock::now() > deadline) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, &wstatus, 0);
      pid_ = -1;
      return absl::DeadlineExceededError(
          "tokensignd did not exit 20 s after SIGTERM");
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  pid_ = -1;
  if (!WIFEXITED(wstatus) || WEXITSTATUS(wstatus) != 0)
    return absl::InternalError(
        "tokensignd exited with status " + std::to_string(wstatus) +
        " after SIGTERM; log in " + state_dir_ + "/tokensignd.log");
  return absl::OkStatus();
}

DaemonProcess::~DaemonProcess() {
  (void)Stop();
  if (!keep_state_ && !state_dir_.empty()) {
    std::error_code ec;
    fs::remove_all(state_dir_, ec);
  }
}

CpuTimes ReadCpu(pid_t daemon_pid) {
  CpuTimes t;
  rusage usage{};
  ::getrusage(RUSAGE_SELF, &usage);
  t.self = usage.ru_utime.tv_sec + usage.ru_stime.tv_sec +
           (usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6;
  if (daemon_pid <= 0) return t;
  std::ifstream in("/proc/" + std::to_string(daemon_pid) + "/stat");
  std::string text((std::istreambuf_iterator<char>(in)), {});
  size_t paren = text.rfind(')');
  if (paren == std::string::npos) return t;
  std::istringstream fields(text.substr(paren + 2));  // from field 3 (state)
  std::string field;
  double ticks = 0;
  for (int i = 3; i <= 15 && fields >> field; ++i) {
    if (i >= 14) ticks += std::atof(field.c_str());  // utime, stime
  }
  t.daemon = ticks / static_cast<double>(::sysconf(_SC_CLK_TCK));
  return t;
}

void CellCpu::Add(const CpuTimes& before, const CpuTimes& after) {
  self += after.self - before.self;
  if (before.daemon < 0 || after.daemon < 0) daemon_known = false;
  daemon += after.daemon - before.daemon;
}

}  // namespace tokensign::bench
