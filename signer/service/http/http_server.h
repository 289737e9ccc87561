// HttpServer: the daemon's small HTTP/1.1 listener (Boost.Beast) for JWKS,
// health, readiness and Prometheus metrics. HTTP only; no gRPC here.
//
// Contract
// - Routes (GET and HEAD; HEAD answers the same headers without a body):
//     /issuers/{name}/jwks.json  200 application/json from handlers.jwks(name)
//                                with "Cache-Control: public, max-age=N"
//                                (N = options.jwks_max_age_seconds);
//                                404 JSON {"error","message"} when the handler
//                                returns NotFound or the name is not
//                                [A-Za-z0-9._-]{1,128}; 503 JSON for any other
//                                error status.
//     /audit/jwks.json           200 application/json from handlers.audit_jwks()
//                                (the audit keys that sign the audit log's
//                                checkpoints), same Cache-Control; 503 JSON on
//                                an error status.
//     /healthz                   200 "ok" while the listener runs.
//     /readyz                    200 "ok" when handlers.ready() is OK, else
//                                503 with the status message as the body.
//     /metrics                   200 "text/plain; version=0.0.4" with
//                                handlers.metrics() (e.g. Metrics::Serialize).
//   A query string is ignored. Other paths: 404. Other methods on a known
//   path: 405 with "Allow: GET, HEAD". A missing handler makes its route 404.
// - Limits: request header bytes <= max_header_bytes (else 431 and close),
//   body bytes <= max_body_bytes (else 413 and close), any other parse error
//   is 400 and close. Keep-alive per HTTP/1.1 rules.
// - Deadlines (slowloris): a request (its header and the small body allowed)
//   must arrive complete within header_timeout, counted from accept for the
//   first request of a connection and from the request's first byte on a
//   keep-alive connection; else the connection is closed without an answer.
//   A keep-alive connection with no request for idle_timeout is closed.
// - Connection cap: at most max_connections open connections. A connection
//   is idle while it has no complete request (new, waiting on keep-alive, or
//   mid-header) and busy from a complete request until its response is
//   written. A connection accepted at the cap evicts the connection that has
//   been idle longest (closed without an answer); a busy one is never
//   evicted, and only when every connection is busy is the new one closed at
//   once. So idle or slow clients can delay, but not lock out, /healthz,
//   /readyz and the JWKS; no per-address limit is used (behind a proxy or on
//   loopback every client has the same address).
//   A malformed request never affects other connections or the listener.
// - Close reasons: handlers.connection_closed (if set) is told of each
//   connection the listener itself closes because it was evicted, missed the
//   header deadline, or was refused with every connection busy (see
//   HttpConnectionClose); once per connection, by the cause that removed it.
//   Clients closing, idle keep-alive timeouts, errors and Stop() are not
//   reported. It runs on an io_context thread, must be cheap and must not
//   block (e.g. a counter increment).
// - Start() binds and listens synchronously (so errors, e.g. port in use,
//   come back as a Status), then accepts on the caller's io_context; nothing
//   happens until that io_context runs. Port 0 binds an ephemeral port; port()
//   tells which.
// - Stop() closes the acceptor and every open connection (in-flight responses
//   are abandoned) and cancels their timers, so once the io_context has run
//   the posted closes it has no work left from this server. Stop() is
//   idempotent; the destructor calls it.
// - Handlers run on an io_context thread. After Stop() returns, no handler is
//   running and none will be called again, so the objects they reference may
//   be destroyed. A handler must therefore not call Stop() itself.
//
// Thread-safety: Start() once; port() and Stop() may be called from any
// thread, concurrently with the io_context running on any number of threads
// (each connection runs on its own strand). Handlers may be invoked
// concurrently from several io_context threads and must be thread-safe.
#ifndef TOKENSIGN_SIGNER_SERVICE_HTTP_HTTP_SERVER_H_
#define TOKENSIGN_SIGNER_SERVICE_HTTP_HTTP_SERVER_H_

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "boost/asio/io_context.hpp"

namespace tokensign::service {

struct HttpServerOptions {
  // "IPv4:port", "[IPv6]:port" or "localhost:port"; port 0 = ephemeral.
  std::string listen = "127.0.0.1:8080";
  int jwks_max_age_seconds = 300;
  std::size_t max_header_bytes = 8 * 1024;
  std::size_t max_body_bytes = 16 * 1024;
  std::size_t max_connections = 256;
  // Time to receive a complete request (see "Deadlines" above).
  std::chrono::milliseconds header_timeout = std::chrono::seconds(5);
  // Time a keep-alive connection may wait for its next request, and the time
  // allowed to write a response.
  std::chrono::milliseconds idle_timeout = std::chrono::seconds(30);
};

// Why the listener closed a connection on its own (for a metric).
enum class HttpConnectionClose {
  kEvicted,        // idle longest when a new connection came at the cap
  kHeaderTimeout,  // its request was not complete within header_timeout
  kRefused,        // accepted at the cap while every connection was busy
};

// "evicted", "header_timeout" or "refused".
std::string_view HttpConnectionCloseName(HttpConnectionClose reason);

struct HttpHandlers {
  // JWKS JSON of the named issuer; NotFound for an unknown issuer.
  std::function<absl::StatusOr<std::string>(std::string_view issuer)> jwks;
  // JWKS JSON of the audit keys.
  std::function<absl::StatusOr<std::string>()> audit_jwks;
  // OK when ready; otherwise the status message says why not.
  std::function<absl::Status()> ready;
  // Prometheus text exposition.
  std::function<std::string()> metrics;
  // Optional: a connection the listener closed (see "Close reasons" above).
  std::function<void(HttpConnectionClose reason)> connection_closed;
};

// Parses "host:port" as described in HttpServerOptions::listen.
absl::StatusOr<std::pair<std::string, uint16_t>> ParseListenAddress(
    std::string_view listen);

class HttpServer {
 public:
  static absl::StatusOr<std::unique_ptr<HttpServer>> Start(
      boost::asio::io_context& io, HttpServerOptions options,
      HttpHandlers handlers);

  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // The bound port (the ephemeral one when options.listen asked for 0).
  uint16_t port() const;

  void Stop();

  struct State;  // Shared with connections; defined in http_server.cc.

 private:
  explicit HttpServer(std::shared_ptr<State> state);
  std::shared_ptr<State> state_;
};

}  // namespace tokensign::service

#endif  // TOKENSIGN_SIGNER_SERVICE_HTTP_HTTP_SERVER_H_
