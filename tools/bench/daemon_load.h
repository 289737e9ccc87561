// Load generator for `tokensign-bench daemon`: an async gRPC C++ client (one
// CompletionQueue per client thread) that keeps N SignToken, SignTokens,
// ExchangeToken (or GetJwks, the gRPC floor) calls
// in flight for a fixed time (closed loop), or sends at a fixed rate (open
// loop, latency measured from the scheduled send time so a stalled server
// cannot hide queueing delay). Thread-safety: a LoadClient may run one Run* at
// a time; each Run* uses its own threads.
#ifndef TOKENSIGN_TOOLS_BENCH_DAEMON_LOAD_H_
#define TOKENSIGN_TOOLS_BENCH_DAEMON_LOAD_H_

#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>
#include <vector>

#include "tokensign/v1/tokensign.grpc.pb.h"

namespace tokensign::bench {

struct DriveSpec;  // one client thread's share of a run (daemon_load.cc)

// What one load run measured. Latencies are per RPC (a whole batch for
// SignTokens).
struct LoadResult {
  double seconds = 0;  // measured window
  long calls = 0;      // RPCs completed OK inside the window
  long items = 0;      // tokens signed OK inside the window
  long errors = 0;     // failed RPCs or failed batch items
  long skipped =
      0;  // open loop: sends skipped because max in flight was reached
  std::string first_error;  // e.g. "RESOURCE_EXHAUSTED: queue full"
  std::vector<double> latency_ms;

  double calls_per_s() const { return seconds > 0 ? calls / seconds : 0; }
  double items_per_s() const { return seconds > 0 ? items / seconds : 0; }
  // Adds another run (rates then cover both windows).
  void Merge(const LoadResult& other);
  // q in [0,1]; sorts latency_ms.
  double Percentile(double q);
};

// DOMAIN.md's scenario: alice via app, agent-7 acting for planner,
// https://api.example, read, 600 s, access token of issuer `issuer`.
v1::SignTokenRequest ScenarioSignRequest(const std::string& issuer);

class LoadClient {
 public:
  // `target` is host:port; plaintext (dev daemons listen plaintext on
  // loopback).
  LoadClient(const std::string& target, int client_threads);

  // One blocking SignToken, for set-up (kid, token size) and as a liveness
  // check.
  grpc::Status SignOnce(const v1::SignTokenRequest& req,
                        v1::SignTokenResponse* resp);

  // Closed loop: `in_flight` RPCs outstanding (spread over the client threads)
  // for `seconds`; batch_size 0 = SignToken, else SignTokens with that many
  // items.
  LoadResult RunClosed(const v1::SignTokenRequest& req, int batch_size,
                       int in_flight, double seconds);
  // Closed loop of GetJwks (answered from memory, no HSM, no audit): what a
  // unary call costs client and daemon in gRPC alone, the floor under any
  // SignToken rate.
  LoadResult RunClosedJwks(const std::string& issuer, int in_flight,
                           double seconds);
  // Closed loop of ExchangeToken with `req` (one subject token exchanged
  // over and over): SignToken's work plus the verify of the parent.
  LoadResult RunClosedExchange(const v1::ExchangeTokenRequest& req,
                               int in_flight, double seconds);
  // Open loop: unary SignToken at `rate` calls/s for `seconds`, at most
  // `max_in_flight`.
  LoadResult RunOpen(const v1::SignTokenRequest& req, double rate,
                     double seconds, int max_in_flight);

 private:
  LoadResult RunClosedSpec(const DriveSpec& what, int in_flight,
                           double seconds);

  std::vector<std::shared_ptr<grpc::Channel>>
      channels_;  // one per client thread
};

}  // namespace tokensign::bench

#endif  // TOKENSIGN_TOOLS_BENCH_DAEMON_LOAD_H_
