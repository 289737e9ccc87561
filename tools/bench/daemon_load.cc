#include "tools/bench/daemon_load.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <string>
#include <thread>
#include <utility>

namespace tokensign::bench {

// What one client thread drives: exactly one of unary/batch/jwks/exchange.
struct DriveSpec {
  const v1::ExchangeTokenRequest* exchange = nullptr;  // set for ExchangeToken
  const v1::SignTokenRequest* unary = nullptr;   // set for SignToken
  const v1::SignTokensRequest* batch = nullptr;  // set for SignTokens
  const v1::GetJwksRequest* jwks = nullptr;      // set for GetJwks
  int in_flight = 0;                             // closed loop; 0 = open loop
  double rate = 0;                               // open loop calls/s
  int max_in_flight = 0;                         // open loop cap
  double seconds = 0;
};

namespace {

using Clock = std::chrono::steady_clock;
constexpr auto kRpcTimeout = std::chrono::seconds(10);
constexpr auto kDrainGrace = std::chrono::seconds(30);

// One outstanding RPC; its address is the CompletionQueue tag.
struct Call {
  grpc::ClientContext ctx;
  v1::SignTokenResponse unary_resp;
  v1::SignTokensResponse batch_resp;
  std::unique_ptr<grpc::ClientAsyncResponseReader<v1::SignTokenResponse>> unary;
  std::unique_ptr<grpc::ClientAsyncResponseReader<v1::SignTokensResponse>>
      batch;
  v1::GetJwksResponse jwks_resp;
  std::unique_ptr<grpc::ClientAsyncResponseReader<v1::GetJwksResponse>> jwks;
  grpc::Status status;
  Clock::time_point start;  // send time (open loop: the scheduled send time)
};

std::string StatusText(const grpc::Status& st) {
  return std::to_string(static_cast<int>(st.error_code())) + ": " +
         st.error_message();
}

// Runs one client thread's share of a load run on its own CompletionQueue.
LoadResult Drive(const std::shared_ptr<grpc::Channel>& channel,
                 const DriveSpec& spec) {
  auto stub = v1::TokenSigner::NewStub(channel);
  grpc::CompletionQueue cq;
  LoadResult out;
  out.seconds = spec.seconds;
  const bool open = spec.in_flight == 0;
  const Clock::time_point start = Clock::now();
  const Clock::time_point end =
      start + std::chrono::duration_cast<Clock::duration>(
                  std::chrono::duration<double>(spec.seconds));
  int outstanding = 0;
  auto issue = [&](Clock::time_point sent) {
    auto* call = new Call;
    call->start = sent;
    call->ctx.set_deadline(std::chrono::system_clock::now() + kRpcTimeout);
    if (spec.batch != nullptr) {
      call->batch = stub->PrepareAsyncSignTokens(&call->ctx, *spec.batch, &cq);
      call->batch->StartCall();
      call->batch->Finish(&call->batch_resp, &call->status, call);
    } else if (spec.exchange != nullptr) {  // answers a SignTokenResponse
      call->unary =
          stub->PrepareAsyncExchangeToken(&call->ctx, *spec.exchange, &cq);
      call->unary->StartCall();
      call->unary->Finish(&call->unary_resp, &call->status, call);
    } else if (spec.jwks != nullptr) {
      call->jwks = stub->PrepareAsyncGetJwks(&call->ctx, *spec.jwks, &cq);
      call->jwks->StartCall();
      call->jwks->Finish(&call->jwks_resp, &call->status, call);
    } else {
      call->unary = stub->PrepareAsyncSignToken(&call->ctx, *spec.unary, &cq);
      call->unary->StartCall();
      call->unary->Finish(&call->unary_resp, &call->status, call);
    }
    ++outstanding;
  };
  auto record = [&](Call* call, Clock::time_point done) {
    bool in_window = open ? call->start < end : done <= end;
    if (!in_window) return;
    if (!call->status.ok()) {
      if (out.errors++ == 0) out.first_error = StatusText(call->status);
      return;
    }
    ++out.calls;
    out.latency_ms.push_back(
        std::chrono::duration<double, std::milli>(done - call->start).count());
    if (spec.batch == nullptr) {
      ++out.items;
      return;
    }
    for (const auto& result : call->batch_resp.results()) {
      if (result.has_response()) {
        ++out.items;
      } else if (out.errors++ == 0) {
        out.first_error = "item " + std::to_string(result.error().code()) +
                          ": " + result.error().message();
      }
    }
  };

  Clock::time_point next_send = start;
  const auto interval =
      open ? std::chrono::duration_cast<Clock::duration>(
                 std::chrono::duration<double>(1.0 / spec.rate))
           : Clock::duration::zero();
  if (!open) {
    for (int i = 0; i < spec.in_flight; ++i) issue(start);
  }
  while (true) {
    Clock::time_point now = Clock::now();
    if (open) {
      while (next_send <= now && next_send < end) {
        if (outstanding < spec.max_in_flight) {
          issue(next_send);
        } else {
          ++out.skipped;
        }
        next_send += interval;
      }
    }
    bool sending = open ? next_send < end : now < end;
    if (!sending && outstanding == 0) break;
    if (now > end + kDrainGrace) {
      if (out.errors++ == 0)
        out.first_error = "calls still outstanding 30 s after the run";
      break;
    }
    Clock::time_point wake = open && sending ? next_send : end + kDrainGrace;
    if (!open && now < end) wake = end;
    void* tag = nullptr;
    bool ok = false;
    // gRPC deadlines are system_clock time points.
    auto st = cq.AsyncNext(&tag, &ok,
                           std::chrono::system_clock::now() + (wake - now));
    if (st == grpc::CompletionQueue::SHUTDOWN) break;
    if (st == grpc::CompletionQueue::TIMEOUT) continue;
    auto* call = static_cast<Call*>(tag);
    --outstanding;
    Clock::time_point done = Clock::now();
    record(call, done);
    delete call;
    if (!open && done < end) issue(done);
  }
  cq.Shutdown();
  void* tag = nullptr;
  bool ok = false;
  while (cq.Next(&tag, &ok)) delete static_cast<Call*>(tag);
  return out;
}

LoadResult RunThreads(
    const std::vector<std::shared_ptr<grpc::Channel>>& channels,
    std::vector<DriveSpec> specs) {
  std::vector<LoadResult> results(specs.size());
  std::vector<std::thread> threads;
  for (size_t i = 0; i < specs.size(); ++i) {
    threads.emplace_back([&, i] { results[i] = Drive(channels[i], specs[i]); });
  }
  for (auto& t : threads) t.join();
  LoadResult total;
  for (auto& r : results) {
    total.calls += r.calls;
    total.items += r.items;
    total.errors += r.errors;
    total.skipped += r.skipped;
    if (total.first_error.empty()) total.first_error = r.first_error;
    total.latency_ms.insert(total.latency_ms.end(), r.latency_ms.begin(),
                            r.latency_ms.end());
    total.seconds = r.seconds;  // threads share the window
  }
  return total;
}

}  // namespace

void LoadResult::Merge(const LoadResult& other) {
  seconds += other.seconds;
  calls += other.calls;
  items += other.items;
  errors += other.errors;
  skipped += other.skipped;
  if (first_error.empty()) first_error = other.first_error;
  latency_ms.insert(latency_ms.end(), other.latency_ms.begin(),
                    other.latency_ms.end());
}

double LoadResult::Percentile(double q) {
  if (latency_ms.empty()) return 0;
  std::sort(latency_ms.begin(), latency_ms.end());
  size_t index = static_cast<size_t>(std::lround(q * (latency_ms.size() - 1)));
  return latency_ms[std::min(index, latency_ms.size() - 1)];
}

v1::SignTokenRequest ScenarioSignRequest(const std::string& issuer) {
  v1::SignTokenRequest req;
  req.set_issuer(issuer);
  req.set_kind(v1::ACCESS_TOKEN);
  req.set_subject("alice");
  req.set_client_id("app");
  req.add_audience("https://api.example");
  req.add_scope("read");
  auto* agent = req.add_actor_chain();
  agent->set_sub("agent-7");
  auto* planner = req.add_actor_chain();
  planner->set_sub("planner");
  req.set_ttl_seconds(600);
  return req;
}

LoadClient::LoadClient(const std::string& target, int client_threads) {
  for (int i = 0; i < std::max(1, client_threads); ++i) {
    grpc::ChannelArguments args;
    args.SetInt("tokensign.bench.channel",
                i);  // distinct args: one connection per thread
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
    channels_.push_back(grpc::CreateCustomChannel(
        target, grpc::InsecureChannelCredentials(), args));
  }
}

grpc::Status LoadClient::SignOnce(const v1::SignTokenRequest& req,
                                  v1::SignTokenResponse* resp) {
  auto stub = v1::TokenSigner::NewStub(channels_[0]);
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + kRpcTimeout);
  return stub->SignToken(&ctx, req, resp);
}

LoadResult LoadClient::RunClosed(const v1::SignTokenRequest& req,
                                 int batch_size, int in_flight,
                                 double seconds) {
  v1::SignTokensRequest batch;
  for (int i = 0; i < batch_size; ++i) *batch.add_requests() = req;
  DriveSpec spec;
  if (batch_size > 0) {
    spec.batch = &batch;
  } else {
    spec.unary = &req;
  }
  return RunClosedSpec(spec, in_flight, seconds);
}

LoadResult LoadClient::RunClosedJwks(const std::string& issuer, int in_flight,
                                     double seconds) {
  v1::GetJwksRequest jwks;
  jwks.set_issuer(issuer);
  DriveSpec spec;
  spec.jwks = &jwks;
  return RunClosedSpec(spec, in_flight, seconds);
}

LoadResult LoadClient::RunClosedExchange(const v1::ExchangeTokenRequest& req,
                                         int in_flight, double seconds) {
  DriveSpec spec;
  spec.exchange = &req;
  return RunClosedSpec(spec, in_flight, seconds);
}

LoadResult LoadClient::RunClosedSpec(const DriveSpec& what, int in_flight,
                                     double seconds) {
  const int n = static_cast<int>(channels_.size());
  std::vector<DriveSpec> specs;
  for (int i = 0; i < n; ++i) {
    DriveSpec spec = what;
    spec.in_flight = in_flight / n + (i < in_flight % n ? 1 : 0);
    spec.seconds = seconds;
    if (spec.in_flight > 0) specs.push_back(spec);
  }
  return RunThreads(channels_, std::move(specs));
}

LoadResult LoadClient::RunOpen(const v1::SignTokenRequest& req, double rate,
                               double seconds, int max_in_flight) {
  const int n = static_cast<int>(channels_.size());
  std::vector<DriveSpec> specs;
  for (int i = 0; i < n; ++i) {
    DriveSpec spec;
    spec.unary = &req;
    spec.rate = rate / n;
    spec.max_in_flight = std::max(1, max_in_flight / n);
    spec.seconds = seconds;
    specs.push_back(spec);
  }
  return RunThreads(channels_, std::move(specs));
}

}  // namespace tokensign::bench
