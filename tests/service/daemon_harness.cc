#include "tests/service/daemon_harness.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

namespace tokensign::testing {
namespace {

constexpr int kWaitSteps = 600;  // x 50 ms: generous; the machine is shared
constexpr auto kStep = std::chrono::milliseconds(50);

pid_t Spawn(const std::vector<std::string>& args,
            const std::vector<std::string>& env, const std::string& log) {
  pid_t pid = fork();
  if (pid != 0) return pid;
  for (const std::string& e : env) putenv(strdup(e.c_str()));
  FILE* f = freopen(log.c_str(), "w", stdout);
  if (f != nullptr) dup2(fileno(stdout), 2);
  std::vector<char*> argv;
  std::string bin = TOKENSIGND_PATH;
  argv.push_back(bin.data());
  std::vector<std::string> copy = args;
  for (std::string& a : copy) argv.push_back(a.data());
  argv.push_back(nullptr);
  execv(bin.c_str(), argv.data());
  _exit(127);
}

}  // namespace

std::string ReadAll(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void WriteAll(const std::string& path, const std::string& content) {
  std::ofstream out(path, std::ios::trunc);
  out << content;
}

int Shell(const std::string& cmd, std::string* out) {
  FILE* p = popen(cmd.c_str(), "r");
  if (p == nullptr) return -1;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof(buf), p)) > 0) {
    if (out != nullptr) out->append(buf, n);
  }
  int st = pclose(p);
  return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

v1::SignTokenRequest ScenarioRequest(const std::string& issuer) {
  v1::SignTokenRequest r;
  r.set_issuer(issuer);
  r.set_kind(v1::ACCESS_TOKEN);
  r.set_subject("alice");
  r.set_client_id("app");
  r.add_audience("https://api.example");
  r.add_scope("read");
  r.add_actor_chain()->set_sub("agent-7");
  r.add_actor_chain()->set_sub("planner");
  r.set_ttl_seconds(600);
  return r;
}

DaemonHarness::DaemonHarness() {
  char tmpl[] = "/tmp/tokensign-e2e-XXXXXX";
  char* d = mkdtemp(tmpl);
  if (d != nullptr) dir_ = d;
}

DaemonHarness::~DaemonHarness() {
  for (pid_t pid : pids_) {
    if (kill(pid, 0) == 0) {
      kill(pid, SIGKILL);
      waitpid(pid, nullptr, 0);
    }
  }
  std::error_code ec;
  if (!dir_.empty()) std::filesystem::remove_all(dir_, ec);
}

DaemonProcess DaemonHarness::Start(const std::vector<std::string>& args_in,
                                   const std::vector<std::string>& env) {
  static int counter = 0;
  DaemonProcess d;
  std::string ready = Path("ready-" + std::to_string(++counter) + ".json");
  d.log_path = Path("tokensignd-" + std::to_string(counter) + ".log");
  std::vector<std::string> args = args_in;
  auto has = [&](const std::string& flag) {
    return std::find(args.begin(), args.end(), flag) != args.end();
  };
  if (!has("--grpc-listen"))
    args.insert(args.end(), {"--grpc-listen", "127.0.0.1:0"});
  if (!has("--http-listen"))
    args.insert(args.end(), {"--http-listen", "127.0.0.1:0"});
  args.insert(args.end(), {"--ready-file", ready});
  d.pid = Spawn(args, env, d.log_path);
  pids_.push_back(d.pid);
  for (int i = 0; i < kWaitSteps; ++i) {
    if (std::filesystem::exists(ready)) {
      auto j = nlohmann::json::parse(ReadAll(ready), nullptr, false);
      if (!j.is_discarded()) {
        d.grpc_port = j["grpc_port"].get<int>();
        d.http_port = j["http_port"].get<int>();
        return d;
      }
    }
    int status = 0;
    if (waitpid(d.pid, &status, WNOHANG) == d.pid) {
      ADD_FAILURE() << "tokensignd exited early: " << ReadAll(d.log_path);
      d.pid = -1;
      return d;
    }
    std::this_thread::sleep_for(kStep);
  }
  ADD_FAILURE() << "tokensignd did not become ready: " << ReadAll(d.log_path);
  return d;
}

int DaemonHarness::RunToExit(const std::vector<std::string>& args,
                             std::string* output) {
  std::string log = Path("run-to-exit.log");
  pid_t pid = Spawn(args, {}, log);
  int status = 0;
  waitpid(pid, &status, 0);
  *output = ReadAll(log);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

void DaemonHarness::Signal(const DaemonProcess& d, int signo) {
  kill(d.pid, signo);
}

int DaemonHarness::Stop(DaemonProcess& d, int signo) {
  if (d.pid <= 0) return -1;
  kill(d.pid, signo);
  int status = 0;
  waitpid(d.pid, &status, 0);
  d.pid = -1;
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

void DaemonHarness::InitDevState(const std::string& state) {
  DaemonProcess d = Start({"--dev", "--state-dir", state});
  ASSERT_GT(d.pid, 0);
  ASSERT_EQ(Stop(d, SIGTERM), 0);
}

void DaemonHarness::MakeCerts() {
  std::string script = R"(set -e
cd ")" + dir_ + R"("
gen() { openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout $1.key -out $1.csr -subj "$2" 2>/dev/null; }
sign() { openssl x509 -req -in $1.csr -CA $2.pem -CAkey $2.key -CAcreateserial -out $1.pem -days 2 -extfile $1.ext 2>/dev/null; }
for ca in ca rogue-ca; do
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout $ca.key -out $ca.pem -days 2 -subj "/CN=$ca" 2>/dev/null
done
gen server /CN=localhost; printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\n' > server.ext; sign server ca
gen signer /CN=signer; printf 'subjectAltName=URI:spiffe://test/signer\n' > signer.ext; sign signer ca
gen custodian /CN=custodian-1; printf 'basicConstraints=CA:FALSE\n' > custodian.ext; sign custodian ca
gen stranger /CN=stranger; printf 'basicConstraints=CA:FALSE\n' > stranger.ext; sign stranger ca
gen rogue /CN=custodian-1; printf 'basicConstraints=CA:FALSE\n' > rogue.ext; sign rogue rogue-ca
)";
  WriteAll(Path("certs.sh"), script);
  std::string out;
  ASSERT_EQ(Shell("bash " + Path("certs.sh") + " 2>&1", &out), 0) << out;
}

std::shared_ptr<grpc::Channel> DaemonHarness::Insecure(const DaemonProcess& d) {
  return grpc::CreateChannel("127.0.0.1:" + std::to_string(d.grpc_port),
                             grpc::InsecureChannelCredentials());
}

std::shared_ptr<grpc::Channel> DaemonHarness::Tls(const DaemonProcess& d,
                                                  const std::string& name) {
  grpc::SslCredentialsOptions ssl;
  ssl.pem_root_certs = ReadAll(Path("ca.pem"));
  if (!name.empty()) {
    ssl.pem_cert_chain = ReadAll(Path(name + ".pem"));
    ssl.pem_private_key = ReadAll(Path(name + ".key"));
  }
  grpc::ChannelArguments args;
  args.SetSslTargetNameOverride("localhost");
  args.SetInt("grpc.use_local_subchannel_pool",
              1);  // no connection sharing across certs
  return grpc::CreateCustomChannel("127.0.0.1:" + std::to_string(d.grpc_port),
                                   grpc::SslCredentials(ssl), args);
}

std::string DaemonHarness::HttpGet(const DaemonProcess& d,
                                   const std::string& path, int* code) {
  std::string out;
  Shell("curl -s -o " + Path("http-body") +
            " -w '%{http_code}' http://127.0.0.1:" +
            std::to_string(d.http_port) + path,
        &out);
  if (code != nullptr) *code = std::atoi(out.c_str());
  return ReadAll(Path("http-body"));
}

std::vector<nlohmann::json> DaemonHarness::AuditLines(const std::string& path) {
  std::vector<nlohmann::json> lines;
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) {
    auto j = nlohmann::json::parse(line, nullptr, false);
    if (!j.is_discarded()) lines.push_back(j);
  }
  return lines;
}

std::string PyJwtVerify(DaemonHarness& h, const std::string& token,
                        const std::string& jwks, const std::string& alg,
                        const std::string& iss) {
  WriteAll(h.Path("token"), token);
  WriteAll(h.Path("jwks.json"), jwks);
  WriteAll(h.Path("verify.py"), R"(import json, sys, jwt
token = open(sys.argv[1]).read().strip()
jwks = json.load(open(sys.argv[2]))
hdr = jwt.get_unverified_header(token)
key = next(k for k in jwks["keys"] if k["kid"] == hdr["kid"])
alg = sys.argv[3] or key["alg"]
c = jwt.decode(token, jwt.PyJWK(key).key, algorithms=[alg],
               audience="https://api.example", issuer=sys.argv[4])
print(hdr["alg"], hdr["typ"], c["sub"])
)");
  std::string out;
  Shell(std::string(kSystemPython) + " " + h.Path("verify.py") + " " +
            h.Path("token") + " " + h.Path("jwks.json") + " '" + alg + "' '" +
            iss + "' 2>&1",
        &out);
  while (!out.empty() && out.back() == '\n') out.pop_back();
  return out;
}

}  // namespace tokensign::testing
