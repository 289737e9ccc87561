#include "tools/bench/daemon_peer.h"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <thread>
#include <vector>

#include "tools/bench/daemon_process.h"

extern char** environ;

namespace tokensign::bench {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

}  // namespace

absl::StatusOr<std::unique_ptr<P11KitPeer>> P11KitPeer::Start(
    const std::string& provider, const std::string& token_label,
    const std::string& pin_file, const std::string& client,
    const std::string& p11kit) {
  if (::access(client.c_str(), R_OK) != 0) {
    return absl::NotFoundError("p11-kit peer: no client module at " + client +
                               " (Debian: apt-get install p11-kit-modules)");
  }
  std::string tmpl =
      (fs::temp_directory_path() / "tokensign-p11peer-XXXXXX").string();
  if (::mkdtemp(tmpl.data()) == nullptr)
    return absl::InternalError("p11-kit peer: mkdtemp failed");
  std::unique_ptr<P11KitPeer> peer(new P11KitPeer);
  peer->dir_ = tmpl;
  const std::string socket = tmpl + "/pkcs11", log = tmpl + "/server.log";
  // -f: stays this child (no daemonizing), so SIGTERM to it ends the server.
  std::vector<std::string> args = {p11kit,     "server",   "-f",
                                   "-n",       socket,     "--provider",
                                   provider,   "pkcs11:token=" + token_label};
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 1, log.c_str(),
                                   O_WRONLY | O_CREAT | O_TRUNC, 0600);
  posix_spawn_file_actions_adddup2(&actions, 1, 2);
  int rc = ::posix_spawnp(&peer->server_pid_, p11kit.c_str(), &actions,
                          nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (rc != 0) {
    peer->server_pid_ = -1;
    return absl::NotFoundError("p11-kit peer: cannot run " + p11kit +
                               " server (Debian: apt-get install p11-kit)");
  }
  auto deadline = Clock::now() + std::chrono::seconds(10);
  std::error_code ec;
  while (!fs::exists(socket, ec)) {
    int wstatus = 0;
    if (::waitpid(peer->server_pid_, &wstatus, WNOHANG) == peer->server_pid_) {
      peer->server_pid_ = -1;
      std::ifstream in(log);
      std::string text((std::istreambuf_iterator<char>(in)), {});
      return absl::InternalError("p11-kit peer: p11-kit server exited: " +
                                 text);
    }
    if (Clock::now() > deadline) {
      return absl::DeadlineExceededError(
          "p11-kit peer: no socket from p11-kit server after 10 s; log in " +
          log);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  // The client module reads the server's address from the environment.
  const std::string address = "unix:path=" + socket;
  ::setenv("P11_KIT_SERVER_ADDRESS", address.c_str(), 1);
  hsm::HsmConfig config;
  config.module_path = client;
  config.token_label = token_label;
  config.pin_file = pin_file;
  config.pool_size = 1;  // the bench's signers open sessions of their own
  auto opened = hsm::Hsm::Open(config);
  if (!opened.ok()) {
    return absl::Status(opened.status().code(),
                        "p11-kit peer: open " + client + " on " + address +
                            ": " + std::string(opened.status().message()));
  }
  peer->hsm_ = std::move(*opened);
  return peer;
}

P11KitPeer::~P11KitPeer() {
  hsm_.reset();  // closes the client's sessions before the server goes
  if (server_pid_ > 0) {
    ::kill(server_pid_, SIGTERM);
    auto deadline = Clock::now() + std::chrono::seconds(5);
    int wstatus = 0;
    while (::waitpid(server_pid_, &wstatus, WNOHANG) == 0) {
      if (Clock::now() > deadline) {
        ::kill(server_pid_, SIGKILL);
        ::waitpid(server_pid_, &wstatus, 0);
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  }
  std::error_code ec;
  if (!dir_.empty()) fs::remove_all(dir_, ec);
}

double P11KitPeer::ServerCpu() const {
  if (server_pid_ <= 0) return -1;
  double total = ReadCpu(server_pid_).daemon;
  if (total < 0) return -1;
  // p11-kit server forks one child per connection: that child signs.
  const std::string pid = std::to_string(server_pid_);
  std::ifstream children("/proc/" + pid + "/task/" + pid + "/children");
  pid_t child = 0;
  while (children >> child) {
    double c = ReadCpu(child).daemon;
    if (c > 0) total += c;
  }
  return total;
}

}  // namespace tokensign::bench
