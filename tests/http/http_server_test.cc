#include "signer/service/http/http_server.h"

#include <atomic>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "signer/service/http/metrics.h"
#include "tests/http/http_test_client.h"

namespace tokensign::service {
namespace {

using testing::Response;
using testing::TestClient;
namespace http = boost::beast::http;

constexpr char kDevJwks[] =
    R"({"keys":[{"kty":"EC","crv":"P-256","kid":"k1"}]})";

class HttpServerTest : public ::testing::Test {
 protected:
  // `threads` io_context threads (a test with a blocked handler needs 2).
  void StartServer(HttpServerOptions options = {}, int threads = 1) {
    options.listen = "127.0.0.1:0";
    HttpHandlers handlers;
    handlers.jwks =
        [this](std::string_view issuer) -> absl::StatusOr<std::string> {
      {
        std::lock_guard lock(mu_);
        jwks_calls_.emplace_back(issuer);
      }
      if (issuer == "dev") return std::string(kDevJwks);
      if (issuer == "slow") {  // a request in progress until ReleaseSlow()
        std::unique_lock lock(mu_);
        slow_entered_ = true;
        cv_.notify_all();
        cv_.wait(lock, [this] { return slow_released_; });
        return std::string(kDevJwks);
      }
      if (issuer == "broken") return absl::UnavailableError("hsm: C_Sign down");
      return absl::NotFoundError("issuer: 'x' is not configured");
    };
    handlers.ready = [this]() -> absl::Status {
      if (ready_.load()) return absl::OkStatus();
      return absl::UnavailableError("issuer dev: no active key");
    };
    handlers.metrics = [this] { return metrics_.Serialize(); };
    handlers.connection_closed = [this](HttpConnectionClose reason) {
      ++closed_[static_cast<int>(reason)];
    };
    auto server =
        HttpServer::Start(io_, std::move(options), std::move(handlers));
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
    ASSERT_NE(server_->port(), 0);
    io_thread_ = std::thread([this] { io_.run(); });
    for (int i = 1; i < threads; ++i) {
      extra_threads_.emplace_back([this] { io_.run(); });
    }
  }

  void TearDown() override {
    ReleaseSlow();
    if (server_) server_->Stop();
    if (io_thread_.joinable()) io_thread_.join();  // all work is gone
    for (std::thread& t : extra_threads_) t.join();
  }

  void WaitSlowEntered() {
    std::unique_lock lock(mu_);
    cv_.wait(lock, [this] { return slow_entered_; });
  }
  void ReleaseSlow() {
    std::lock_guard lock(mu_);
    slow_released_ = true;
    cv_.notify_all();
  }

  Response Get(const std::string& target, http::verb method = http::verb::get) {
    TestClient client;
    EXPECT_FALSE(client.Connect(server_->port()));
    Response res;
    EXPECT_FALSE(client.Fetch(method, target, res)) << target;
    return res;
  }

  boost::asio::io_context io_;
  std::unique_ptr<HttpServer> server_;
  std::thread io_thread_;
  std::vector<std::thread> extra_threads_;
  std::atomic<bool> ready_{true};
  Metrics metrics_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool slow_entered_ = false;   // guarded by mu_
  bool slow_released_ = false;  // guarded by mu_
  std::vector<std::string> jwks_calls_;
  // Reports of handlers.connection_closed, by HttpConnectionClose.
  std::atomic<int> closed_[3] = {0, 0, 0};
  int Closed(HttpConnectionClose reason) {
    return closed_[static_cast<int>(reason)].load();
  }
  // A header timeout is reported just after the stream's timer closed the
  // socket, so the client may see the close first: wait for the report (30 s
  // safety net, as TestClient's; not a timing threshold).
  int ClosedEventually(HttpConnectionClose reason, int want) {
    for (int i = 0; i < 30000 && Closed(reason) < want; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    return Closed(reason);
  }
};

// Long enough never to fire during a test: what closes a connection in the
// tests below is the mechanism under test, not a timer.
constexpr std::chrono::hours kNever{1};
constexpr char kSlowRequest[] =
    "GET /issuers/slow/jwks.json HTTP/1.1\r\nHost: x\r\n\r\n";

TEST_F(HttpServerTest, HealthzIsOk) {
  StartServer();
  Response res = Get("/healthz");
  EXPECT_EQ(res.result(), http::status::ok);
  EXPECT_EQ(res.body(), "ok\n");
}

TEST_F(HttpServerTest, JwksBodyAndCacheControl) {
  HttpServerOptions options;
  options.jwks_max_age_seconds = 123;
  StartServer(options);
  Response res = Get("/issuers/dev/jwks.json");
  EXPECT_EQ(res.result(), http::status::ok);
  EXPECT_EQ(res.body(), kDevJwks);
  EXPECT_EQ(res[http::field::content_type], "application/json");
  EXPECT_EQ(res[http::field::cache_control], "public, max-age=123");
  std::lock_guard lock(mu_);
  ASSERT_EQ(jwks_calls_.size(), 1u);
  EXPECT_EQ(jwks_calls_[0], "dev");
}

TEST_F(HttpServerTest, JwksQueryStringIgnored) {
  StartServer();
  Response res = Get("/issuers/dev/jwks.json?x=1");
  EXPECT_EQ(res.result(), http::status::ok);
  EXPECT_EQ(res.body(), kDevJwks);
}

TEST_F(HttpServerTest, UnknownIssuerIs404WithJsonError) {
  StartServer();
  Response res = Get("/issuers/nope/jwks.json");
  EXPECT_EQ(res.result(), http::status::not_found);
  EXPECT_EQ(res[http::field::content_type], "application/json");
  auto body = nlohmann::json::parse(res.body());
  EXPECT_EQ(body["error"], "not_found");
  EXPECT_NE(body["message"].get<std::string>().find("not configured"),
            std::string::npos);
}

TEST_F(HttpServerTest, InvalidIssuerNameIs404WithoutCallingHandler) {
  StartServer();
  Response res = Get("/issuers/a%2Fb/jwks.json");
  EXPECT_EQ(res.result(), http::status::not_found);
  Response res2 = Get("/issuers/a/b/jwks.json");
  EXPECT_EQ(res2.result(), http::status::not_found);
  std::lock_guard lock(mu_);
  EXPECT_TRUE(jwks_calls_.empty());
}

TEST_F(HttpServerTest, JwksHandlerErrorIs503) {
  StartServer();
  Response res = Get("/issuers/broken/jwks.json");
  EXPECT_EQ(res.result(), http::status::service_unavailable);
  EXPECT_EQ(nlohmann::json::parse(res.body())["error"], "unavailable");
}

TEST_F(HttpServerTest, ReadyzToggles) {
  StartServer();
  EXPECT_EQ(Get("/readyz").result(), http::status::ok);
  ready_ = false;
  Response res = Get("/readyz");
  EXPECT_EQ(res.result(), http::status::service_unavailable);
  EXPECT_NE(res.body().find("no active key"), std::string::npos);
  ready_ = true;
  EXPECT_EQ(Get("/readyz").result(), http::status::ok);
}

TEST_F(HttpServerTest, MetricsExposeCounters) {
  StartServer();
  metrics_.CountRequest("SignToken", "OK");
  metrics_.CountRequest("SignToken", "OK");
  metrics_.CountTokenSigned("dev", "access_token");
  Response res = Get("/metrics");
  EXPECT_EQ(res.result(), http::status::ok);
  EXPECT_EQ(res[http::field::content_type].substr(0, 25),
            "text/plain; version=0.0.4");
  EXPECT_NE(res.body().find(
                "tokensign_requests_total{code=\"OK\",method=\"SignToken\"} 2"),
            std::string::npos)
      << res.body();
  EXPECT_NE(res.body().find("tokensign_tokens_signed_total{issuer=\"dev\","
                            "kind=\"access_token\"} 1"),
            std::string::npos);
}

TEST_F(HttpServerTest, UnknownPathIs404AndPostIs405) {
  StartServer();
  EXPECT_EQ(Get("/nope").result(), http::status::not_found);
  Response res = Get("/healthz", http::verb::post);
  EXPECT_EQ(res.result(), http::status::method_not_allowed);
  EXPECT_EQ(res[http::field::allow], "GET, HEAD");
  EXPECT_EQ(Get("/issuers/dev/jwks.json", http::verb::delete_).result(),
            http::status::method_not_allowed);
}

TEST_F(HttpServerTest, HeadHasHeadersButNoBody) {
  StartServer();
  Response res = Get("/issuers/dev/jwks.json", http::verb::head);
  EXPECT_EQ(res.result(), http::status::ok);
  EXPECT_EQ(res[http::field::content_length],
            std::to_string(std::string(kDevJwks).size()));
  EXPECT_TRUE(res.body().empty());
}

TEST_F(HttpServerTest, KeepAliveServesSeveralRequests) {
  StartServer();
  TestClient client;
  ASSERT_FALSE(client.Connect(server_->port()));
  for (int i = 0; i < 3; ++i) {
    Response res;
    ASSERT_FALSE(client.Fetch(http::verb::get, "/healthz", res));
    EXPECT_EQ(res.result(), http::status::ok);
    EXPECT_TRUE(res.keep_alive());
  }
}

TEST_F(HttpServerTest, MalformedRequestIs400AndServerSurvives) {
  StartServer();
  {
    TestClient client;
    ASSERT_FALSE(client.Connect(server_->port()));
    ASSERT_FALSE(client.WriteRaw("GARBAGE \x01\x02 nonsense\r\n\r\n"));
    Response res;
    ASSERT_FALSE(client.Read(res));
    EXPECT_EQ(res.result(), http::status::bad_request);
    EXPECT_TRUE(client.ClosedByPeer());
  }
  {
    TestClient client;  // half a request line, then the client goes away
    ASSERT_FALSE(client.Connect(server_->port()));
    ASSERT_FALSE(client.WriteRaw("GET /heal"));
  }
  EXPECT_EQ(Get("/healthz").result(), http::status::ok);
}

TEST_F(HttpServerTest, OversizedHeaderIs431AndServerSurvives) {
  HttpServerOptions options;
  options.max_header_bytes = 1024;
  StartServer(options);
  TestClient client;
  ASSERT_FALSE(client.Connect(server_->port()));
  ASSERT_FALSE(client.WriteRaw("GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " +
                               std::string(4000, 'a') + "\r\n\r\n"));
  Response res;
  ASSERT_FALSE(client.Read(res));
  EXPECT_EQ(res.result(), http::status::request_header_fields_too_large);
  EXPECT_EQ(Get("/healthz").result(), http::status::ok);
}

TEST_F(HttpServerTest, IdleKeepAliveConnectionIsClosed) {
  HttpServerOptions options;
  options.idle_timeout = std::chrono::milliseconds(100);
  StartServer(options);
  TestClient client;
  ASSERT_FALSE(client.Connect(server_->port()));
  Response res;
  ASSERT_FALSE(client.Fetch(http::verb::get, "/healthz", res));
  ASSERT_TRUE(res.keep_alive());
  EXPECT_TRUE(client.ClosedByPeer());
}

// Slowloris: headers trickle in and stop. Without a header deadline the
// connection would stay open for idle_timeout (an hour here); the client's own
// 30 s safety timeout would then make ClosedByPeer() false.
TEST_F(HttpServerTest, StalledHeadersAreClosedAfterHeaderTimeout) {
  HttpServerOptions options;
  options.header_timeout = std::chrono::milliseconds(20);
  options.idle_timeout = kNever;
  StartServer(options);
  TestClient client;
  ASSERT_FALSE(client.Connect(server_->port()));
  ASSERT_FALSE(client.WriteRaw("GET /healthz HTTP/1.1\r\nHost: x\r\n"));
  EXPECT_TRUE(client.ClosedByPeer());
  TestClient silent;  // connects and never sends a byte
  ASSERT_FALSE(silent.Connect(server_->port()));
  EXPECT_TRUE(silent.ClosedByPeer());
  EXPECT_EQ(Get("/healthz").result(), http::status::ok);
  // Both are reported, nothing else.
  EXPECT_EQ(ClosedEventually(HttpConnectionClose::kHeaderTimeout, 2), 2);
  EXPECT_EQ(Closed(HttpConnectionClose::kEvicted), 0);
  EXPECT_EQ(Closed(HttpConnectionClose::kRefused), 0);
}

// On keep-alive the deadline starts with the next request's first byte.
TEST_F(HttpServerTest, StalledHeadersOnKeepAliveAreClosedAfterHeaderTimeout) {
  HttpServerOptions options;
  options.header_timeout = std::chrono::milliseconds(500);
  options.idle_timeout = kNever;
  StartServer(options);
  TestClient client;
  ASSERT_FALSE(client.Connect(server_->port()));
  Response res;
  ASSERT_FALSE(client.Fetch(http::verb::get, "/healthz", res));
  ASSERT_TRUE(res.keep_alive());
  ASSERT_FALSE(client.WriteRaw("GET /readyz HTTP/1.1\r\n"));
  EXPECT_TRUE(client.ClosedByPeer());
  EXPECT_EQ(ClosedEventually(HttpConnectionClose::kHeaderTimeout, 1), 1);
}

// 260 idle connections used to lock probes and JWKS fetches out: at the cap
// the connection idle longest is evicted, so a new request is answered.
TEST_F(HttpServerTest, IdleConnectionsOverCapAreEvictedOldestFirst) {
  HttpServerOptions options;
  options.max_connections = 4;
  options.header_timeout = kNever;
  options.idle_timeout = kNever;
  StartServer(options);
  std::vector<std::unique_ptr<TestClient>> idle;
  for (int i = 0; i < 8; ++i) {
    idle.push_back(std::make_unique<TestClient>());
    ASSERT_FALSE(idle.back()->Connect(server_->port()));
  }
  TestClient probe;
  ASSERT_FALSE(probe.Connect(server_->port()));
  Response res;
  ASSERT_FALSE(probe.Fetch(http::verb::get, "/healthz", res));
  EXPECT_EQ(res.result(), http::status::ok);
  // 9 connections, cap 4: the five oldest went, the three newest still work.
  for (int i = 0; i < 5; ++i) {
    EXPECT_TRUE(idle[i]->ClosedByPeer()) << "idle connection " << i;
  }
  for (int i = 5; i < 8; ++i) {
    ASSERT_FALSE(idle[i]->Fetch(http::verb::get, "/readyz", res)) << i;
    EXPECT_EQ(res.result(), http::status::ok);
  }
  // Each eviction is reported once, when the new connection is admitted.
  EXPECT_EQ(Closed(HttpConnectionClose::kEvicted), 5);
  EXPECT_EQ(Closed(HttpConnectionClose::kHeaderTimeout), 0);
  EXPECT_EQ(Closed(HttpConnectionClose::kRefused), 0);
}

// A request being answered is never evicted for an idle connection, even when
// it is the oldest connection.
TEST_F(HttpServerTest, SlowRequestInProgressIsNotEvicted) {
  HttpServerOptions options;
  options.max_connections = 2;
  options.header_timeout = kNever;
  options.idle_timeout = kNever;
  StartServer(options, /*threads=*/2);
  TestClient slow;
  ASSERT_FALSE(slow.Connect(server_->port()));
  ASSERT_FALSE(slow.WriteRaw(kSlowRequest));
  WaitSlowEntered();
  TestClient idle;
  ASSERT_FALSE(idle.Connect(server_->port()));
  TestClient probe;
  ASSERT_FALSE(probe.Connect(server_->port()));
  Response res;
  ASSERT_FALSE(probe.Fetch(http::verb::get, "/healthz", res));
  EXPECT_EQ(res.result(), http::status::ok);
  EXPECT_TRUE(idle.ClosedByPeer());
  ReleaseSlow();
  ASSERT_FALSE(slow.Read(res));
  EXPECT_EQ(res.result(), http::status::ok);
  EXPECT_EQ(res.body(), kDevJwks);
}

// Only when every connection is busy is a new one closed at once.
TEST_F(HttpServerTest, ConnectionOverCapWithAllBusyIsClosed) {
  HttpServerOptions options;
  options.max_connections = 1;
  options.header_timeout = kNever;
  options.idle_timeout = kNever;
  StartServer(options, /*threads=*/2);
  TestClient slow;
  ASSERT_FALSE(slow.Connect(server_->port()));
  ASSERT_FALSE(slow.WriteRaw(kSlowRequest));
  WaitSlowEntered();
  TestClient second;
  ASSERT_FALSE(second.Connect(server_->port()));
  EXPECT_TRUE(second.ClosedByPeer());
  EXPECT_EQ(Closed(HttpConnectionClose::kRefused), 1);
  EXPECT_EQ(Closed(HttpConnectionClose::kEvicted), 0);
  ReleaseSlow();
  Response res;
  ASSERT_FALSE(slow.Read(res));
  EXPECT_EQ(res.result(), http::status::ok);
}

TEST_F(HttpServerTest, StopClosesKeepAliveConnectionAndAcceptor) {
  StartServer();
  TestClient client;
  ASSERT_FALSE(client.Connect(server_->port()));
  Response res;
  ASSERT_FALSE(client.Fetch(http::verb::get, "/healthz", res));
  ASSERT_TRUE(res.keep_alive());
  uint16_t port = server_->port();
  server_->Stop();
  EXPECT_TRUE(client.ClosedByPeer());
  io_thread_.join();  // returns only once no socket or timer is left
  // Stop() is not an attack: nothing reported.
  EXPECT_EQ(Closed(HttpConnectionClose::kEvicted) +
                Closed(HttpConnectionClose::kHeaderTimeout) +
                Closed(HttpConnectionClose::kRefused),
            0);
  TestClient late;
  EXPECT_TRUE(late.Connect(port));  // refused: the acceptor is closed
  server_->Stop();                  // idempotent
}

TEST_F(HttpServerTest, PortInUseIsAnError) {
  StartServer();
  boost::asio::io_context other;
  HttpServerOptions options;
  options.listen = "127.0.0.1:" + std::to_string(server_->port());
  auto second = HttpServer::Start(other, options, {});
  ASSERT_FALSE(second.ok());
  EXPECT_NE(second.status().message().find("bind"), std::string::npos);
}

TEST(ParseListenAddressTest, AcceptsAndRejects) {
  auto v4 = ParseListenAddress("127.0.0.1:8080");
  ASSERT_TRUE(v4.ok());
  EXPECT_EQ(v4->first, "127.0.0.1");
  EXPECT_EQ(v4->second, 8080);
  auto v6 = ParseListenAddress("[::1]:0");
  ASSERT_TRUE(v6.ok());
  EXPECT_EQ(v6->first, "::1");
  EXPECT_EQ(ParseListenAddress("localhost:1")->first, "127.0.0.1");
  EXPECT_FALSE(ParseListenAddress("127.0.0.1").ok());
  EXPECT_FALSE(ParseListenAddress("127.0.0.1:70000").ok());
  EXPECT_FALSE(ParseListenAddress("example.com:80").ok());
  EXPECT_FALSE(ParseListenAddress("127.0.0.1:x").ok());
}

}  // namespace
}  // namespace tokensign::service
