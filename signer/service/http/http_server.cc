#include "signer/service/http/http_server.h"

#include <atomic>
#include <exception>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <unordered_map>
#include <utility>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "boost/asio/ip/tcp.hpp"
#include "boost/asio/post.hpp"
#include "boost/asio/strand.hpp"
#include "boost/beast/core.hpp"
#include "boost/beast/http.hpp"
#include "crypto/str_cat.h"
#include "nlohmann/json.hpp"

namespace tokensign::service {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using Strand = asio::strand<asio::io_context::executor_type>;

class Session;

}  // namespace

struct HttpServer::State {
  State(asio::io_context& io_in, HttpServerOptions options_in,
        HttpHandlers handlers_in)
      : io(io_in),
        options(std::move(options_in)),
        handlers(std::move(handlers_in)),
        strand(asio::make_strand(io_in)),
        acceptor(strand) {}

  asio::io_context& io;
  const HttpServerOptions options;
  const HttpHandlers handlers;
  Strand strand;  // serializes everything on the acceptor
  tcp::acceptor acceptor;
  uint16_t port = 0;

  std::atomic<bool> stopped{false};
  // Shared while a handler runs; Stop() takes it exclusively so that once it
  // returns no handler is running or will run.
  std::shared_mutex handler_mu;

  // Every open connection, and since when it is idle (a tick of idle_clock;
  // 0 = busy: a complete request is being answered).
  struct Entry {
    std::weak_ptr<Session> session;
    uint64_t idle_since = 0;
  };
  std::mutex sessions_mu;
  std::unordered_map<Session*, Entry> sessions;
  uint64_t idle_clock = 0;  // guarded by sessions_mu

  // Admits a new (idle) connection unless stopped. At the cap it evicts the
  // connection idle longest and returns it in *evicted (the caller closes it
  // on its strand and reports it; it is already out of the map); when every
  // connection is busy the new one is refused.
  bool Register(const std::shared_ptr<Session>& s,
                std::shared_ptr<Session>* evicted) {
    std::lock_guard lock(sessions_mu);
    if (stopped.load()) return false;
    if (sessions.size() >= options.max_connections) {
      auto oldest = sessions.end();
      for (auto it = sessions.begin(); it != sessions.end(); ++it) {
        if (it->second.idle_since == 0) continue;
        if (oldest == sessions.end() ||
            it->second.idle_since < oldest->second.idle_since) {
          oldest = it;
        }
      }
      if (oldest == sessions.end()) return false;
      *evicted = oldest->second.session.lock();  // null if already dying
      sessions.erase(oldest);
    }
    sessions.emplace(s.get(), Entry{s, ++idle_clock});
    return true;
  }
  // The connection waits for a request again (keep-alive).
  void MarkIdle(Session* s) {
    std::lock_guard lock(sessions_mu);
    if (auto it = sessions.find(s); it != sessions.end()) {
      it->second.idle_since = ++idle_clock;
    }
  }
  // The connection has a complete request. False when it was evicted (or the
  // server stopped) meanwhile: the request must not be answered.
  bool MarkBusy(Session* s) {
    std::lock_guard lock(sessions_mu);
    auto it = sessions.find(s);
    if (it == sessions.end()) return false;
    it->second.idle_since = 0;
    return true;
  }
  // True when `s` was still registered (it was not evicted meanwhile).
  bool Unregister(Session* s) {
    std::lock_guard lock(sessions_mu);
    return sessions.erase(s) > 0;
  }

  // Tells handlers.connection_closed; never after Stop() has returned.
  void ReportClose(HttpConnectionClose reason) {
    if (!handlers.connection_closed) return;
    std::shared_lock lock(handler_mu);
    if (stopped.load()) return;
    try {
      handlers.connection_closed(reason);
    } catch (...) {  // a throwing observer must not take the listener down
    }
  }
};

namespace {

// Debian's abseil has its own string_view type, distinct from std's
// (AbslView, crypto/str_cat.h, goes the other way).
std::string_view ToStd(absl::string_view s) { return {s.data(), s.size()}; }

bool ValidIssuerName(std::string_view name) {
  if (name.empty() || name.size() > 128) return false;
  for (char c : name) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
    if (!ok) return false;
  }
  return true;
}

std::string JsonError(std::string_view error, std::string_view message) {
  nlohmann::json j = {{"error", error}, {"message", message}};
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

// What a route produced, before it becomes an http::response.
struct Reply {
  http::status status = http::status::ok;
  std::string content_type = "text/plain; charset=utf-8";
  std::string body;
  std::string cache_control;
  bool allow_header = false;
  bool force_close = false;
};

Reply TextReply(http::status status, std::string body) {
  Reply r;
  r.status = status;
  r.body = std::move(body);
  return r;
}

Reply JsonReply(http::status status, std::string body) {
  Reply r;
  r.status = status;
  r.content_type = "application/json";
  r.body = std::move(body);
  return r;
}

class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(tcp::socket socket, std::shared_ptr<HttpServer::State> state)
      : stream_(std::move(socket)), state_(std::move(state)) {}
  ~Session() { state_->Unregister(this); }

  auto executor() { return stream_.get_executor(); }

  void Start() {
    asio::dispatch(executor(), [self = shared_from_this()] {
      self->ReadRequest(self->state_->options.header_timeout);
    });
  }

  // Runs on the session's strand.
  void Close() {
    if (closed_) return;
    closed_ = true;
    beast::error_code ec;
    stream_.socket().shutdown(tcp::socket::shutdown_both, ec);
    stream_.close();  // also cancels the stream's timer
    state_->Unregister(this);
  }

 private:
  // Keep-alive: waits up to idle_timeout for the next request's first bytes
  // (unless a pipelined request is already buffered), then reads it.
  void WaitForRequest() {
    if (closed_) return;
    state_->MarkIdle(this);
    if (buffer_.size() > 0) {
      return ReadRequest(state_->options.header_timeout);
    }
    stream_.expires_after(state_->options.idle_timeout);
    stream_.async_read_some(
        buffer_.prepare(1024),
        [self = shared_from_this()](beast::error_code ec, std::size_t n) {
          if (self->closed_) return;
          if (ec) return self->Close();  // EOF, idle timeout, reset, Stop()
          self->buffer_.commit(n);
          self->ReadRequest(self->state_->options.header_timeout);
        });
  }

  // Reads one complete request within `deadline`.
  void ReadRequest(std::chrono::milliseconds deadline) {
    if (closed_) return;
    parser_.emplace();
    parser_->header_limit(
        static_cast<std::uint32_t>(state_->options.max_header_bytes));
    parser_->body_limit(state_->options.max_body_bytes);
    stream_.expires_after(deadline);
    http::async_read(
        stream_, buffer_, *parser_,
        [self = shared_from_this()](beast::error_code ec, std::size_t) {
          self->OnRead(ec);
        });
  }

  void OnRead(beast::error_code ec) {
    if (closed_) return;
    if (ec == http::error::header_limit) {
      return Send(false, http::status::request_header_fields_too_large,
                  TextReply(http::status::request_header_fields_too_large,
                            "request header too large\n"),
                  /*close=*/true);
    }
    if (ec == http::error::body_limit) {
      return Send(false, http::status::payload_too_large,
                  TextReply(http::status::payload_too_large,
                            "request body too large\n"),
                  /*close=*/true);
    }
    if (ec && ec != http::error::end_of_stream &&
        ec != http::error::partial_message &&
        ec.category() ==
            http::make_error_code(http::error::bad_target).category()) {
      return Send(false, http::status::bad_request,
                  TextReply(http::status::bad_request, "bad request\n"),
                  /*close=*/true);
    }
    if (ec == beast::error::timeout) {
      // The stream closed the socket when its timer fired. Reported unless an
      // eviction took the connection out first (and reported it); Close()
      // below then finds it unregistered.
      if (state_->Unregister(this)) {
        state_->ReportClose(HttpConnectionClose::kHeaderTimeout);
      }
      return Close();
    }
    if (ec) return Close();  // EOF, reset, abort by Stop()
    // Evicted while the request was arriving: the connection is being closed.
    if (!state_->MarkBusy(this)) return Close();

    http::request<http::string_body> req = parser_->release();
    bool head = req.method() == http::verb::head;
    Reply reply = Route(req);
    bool close = !req.keep_alive() || reply.force_close;
    http::status status = reply.status;
    Send(head, status, std::move(reply), close, req.version());
  }

  Reply Route(const http::request<http::string_body>& req) {
    std::string_view target(req.target().data(), req.target().size());
    if (size_t q = target.find('?'); q != std::string_view::npos) {
      target = target.substr(0, q);
    }
    enum class Kind { kNone, kJwks, kAuditJwks, kHealth, kReady, kMetrics };
    Kind kind = Kind::kNone;
    std::string_view issuer;
    constexpr std::string_view kPrefix = "/issuers/";
    constexpr std::string_view kSuffix = "/jwks.json";
    if (target == "/healthz") {
      kind = Kind::kHealth;
    } else if (target == "/readyz") {
      kind = Kind::kReady;
    } else if (target == "/metrics") {
      kind = Kind::kMetrics;
    } else if (target == "/audit/jwks.json") {
      kind = Kind::kAuditJwks;
    } else if (target.size() > kPrefix.size() + kSuffix.size() &&
               target.starts_with(kPrefix) && target.ends_with(kSuffix)) {
      kind = Kind::kJwks;
      issuer = target.substr(kPrefix.size(),
                             target.size() - kPrefix.size() - kSuffix.size());
    } else {
      return TextReply(http::status::not_found, "not found\n");
    }
    if (req.method() != http::verb::get && req.method() != http::verb::head) {
      Reply r =
          TextReply(http::status::method_not_allowed, "method not allowed\n");
      r.allow_header = true;
      return r;
    }
    if (kind == Kind::kHealth) return TextReply(http::status::ok, "ok\n");

    // The remaining routes call the daemon's handlers.
    std::shared_lock lock(state_->handler_mu);
    if (state_->stopped.load()) {
      Reply r = TextReply(http::status::service_unavailable, "stopping\n");
      r.force_close = true;
      return r;
    }
    const HttpHandlers& h = state_->handlers;
    try {
      switch (kind) {
        case Kind::kReady: {
          if (!h.ready) break;
          absl::Status s = h.ready();
          if (s.ok()) return TextReply(http::status::ok, "ok\n");
          return TextReply(http::status::service_unavailable,
                           absl::StrCat(s.message(), "\n"));
        }
        case Kind::kMetrics: {
          if (!h.metrics) break;
          Reply r = TextReply(http::status::ok, h.metrics());
          r.content_type = "text/plain; version=0.0.4; charset=utf-8";
          return r;
        }
        case Kind::kJwks: {
          if (!h.jwks) break;
          if (!ValidIssuerName(issuer)) {
            return JsonReply(http::status::not_found,
                             JsonError("not_found", "issuer: unknown name"));
          }
          absl::StatusOr<std::string> jwks = h.jwks(issuer);
          if (absl::IsNotFound(jwks.status())) {
            return JsonReply(
                http::status::not_found,
                JsonError("not_found", ToStd(jwks.status().message())));
          }
          if (!jwks.ok()) {
            return JsonReply(
                http::status::service_unavailable,
                JsonError("unavailable", ToStd(jwks.status().message())));
          }
          Reply r = JsonReply(http::status::ok, *std::move(jwks));
          r.cache_control = absl::StrCat("public, max-age=",
                                         state_->options.jwks_max_age_seconds);
          return r;
        }
        case Kind::kAuditJwks: {
          if (!h.audit_jwks) break;
          absl::StatusOr<std::string> jwks = h.audit_jwks();
          if (!jwks.ok()) {
            return JsonReply(
                http::status::service_unavailable,
                JsonError("unavailable", ToStd(jwks.status().message())));
          }
          Reply r = JsonReply(http::status::ok, *std::move(jwks));
          r.cache_control = absl::StrCat("public, max-age=",
                                         state_->options.jwks_max_age_seconds);
          return r;
        }
        default:
          break;
      }
    } catch (...) {  // a throwing handler must not take the listener down
      return TextReply(http::status::internal_server_error, "internal error\n");
    }
    return TextReply(http::status::not_found, "not found\n");
  }

  void Send(bool head, http::status status, Reply reply, bool close,
            unsigned version = 11) {
    res_ = {};
    res_.version(version == 10 ? 10 : 11);
    res_.result(status);
    res_.set(http::field::server, "tokensign");
    res_.set(http::field::content_type, reply.content_type);
    if (!reply.cache_control.empty()) {
      res_.set(http::field::cache_control, reply.cache_control);
    } else {
      res_.set(http::field::cache_control, "no-store");
    }
    if (reply.allow_header) res_.set(http::field::allow, "GET, HEAD");
    res_.keep_alive(!close);
    res_.content_length(reply.body.size());
    if (!head) res_.body() = std::move(reply.body);
    stream_.expires_after(state_->options.idle_timeout);
    http::async_write(
        stream_, res_,
        [self = shared_from_this(), close](beast::error_code ec, std::size_t) {
          if (ec || close) return self->Close();
          self->WaitForRequest();
        });
  }

  beast::tcp_stream stream_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  http::response<http::string_body> res_;
  std::shared_ptr<HttpServer::State> state_;
  bool closed_ = false;
};

void Accept(const std::shared_ptr<HttpServer::State>& state) {
  state->acceptor.async_accept(
      asio::make_strand(state->io),
      [state](beast::error_code ec, tcp::socket socket) {
        if (state->stopped.load() || !state->acceptor.is_open()) return;
        if (!ec) {
          auto session = std::make_shared<Session>(std::move(socket), state);
          std::shared_ptr<Session> evicted;
          if (state->Register(session, &evicted)) {
            // Reported before the close, so whoever sees the close (or the
            // new connection's answer) also sees the count.
            if (evicted != nullptr) {
              state->ReportClose(HttpConnectionClose::kEvicted);
              asio::post(evicted->executor(), [evicted] { evicted->Close(); });
            }
            session->Start();
          } else {
            // At the cap and every connection busy (or stopped: not reported).
            state->ReportClose(HttpConnectionClose::kRefused);
            session->Close();
          }
        }
        // Errors such as EMFILE are per connection: keep accepting.
        Accept(state);
      });
}

}  // namespace

std::string_view HttpConnectionCloseName(HttpConnectionClose reason) {
  switch (reason) {
    case HttpConnectionClose::kEvicted:
      return "evicted";
    case HttpConnectionClose::kHeaderTimeout:
      return "header_timeout";
    case HttpConnectionClose::kRefused:
      return "refused";
  }
  return "unknown";
}

absl::StatusOr<std::pair<std::string, uint16_t>> ParseListenAddress(
    std::string_view listen) {
  size_t colon = listen.rfind(':');
  if (colon == std::string_view::npos) {
    return absl::InvalidArgumentError(
        absl::StrCat("http listen: '", AbslView(listen),
                     "' must be host:port (no ':' found)"));
  }
  std::string host(listen.substr(0, colon));
  uint32_t port = 0;
  if (!absl::SimpleAtoi(AbslView(listen.substr(colon + 1)), &port) ||
      port > 65535) {
    return absl::InvalidArgumentError(
        absl::StrCat("http listen: port in '", AbslView(listen),
                     "' must be a number 0..65535"));
  }
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  if (host == "localhost") host = "127.0.0.1";
  beast::error_code ec;
  asio::ip::make_address(host, ec);
  if (ec) {
    return absl::InvalidArgumentError(absl::StrCat(
        "http listen: host '", host, "' must be an IP address or 'localhost'"));
  }
  return std::make_pair(host, static_cast<uint16_t>(port));
}

absl::StatusOr<std::unique_ptr<HttpServer>> HttpServer::Start(
    asio::io_context& io, HttpServerOptions options, HttpHandlers handlers) {
  if (options.max_connections == 0 || options.max_header_bytes == 0 ||
      options.header_timeout.count() <= 0 ||
      options.idle_timeout.count() <= 0 || options.jwks_max_age_seconds < 0) {
    return absl::InvalidArgumentError(
        "http options: max_connections, max_header_bytes, header_timeout and "
        "idle_timeout must be > 0 and jwks_max_age_seconds >= 0");
  }
  auto addr = ParseListenAddress(options.listen);
  if (!addr.ok()) return addr.status();
  tcp::endpoint endpoint(asio::ip::make_address(addr->first), addr->second);

  auto state =
      std::make_shared<State>(io, std::move(options), std::move(handlers));
  beast::error_code ec;
  auto fail = [&](std::string_view step) {
    return absl::UnavailableError(
        absl::StrCat("http listen ", state->options.listen, ": ", AbslView(step),
                     ": ", ec.message()));
  };
  state->acceptor.open(endpoint.protocol(), ec);
  if (ec) return fail("open");
  state->acceptor.set_option(asio::socket_base::reuse_address(true), ec);
  if (ec) return fail("SO_REUSEADDR");
  state->acceptor.bind(endpoint, ec);
  if (ec) return fail("bind");
  state->acceptor.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) return fail("listen");
  state->port = state->acceptor.local_endpoint(ec).port();
  if (ec) return fail("local_endpoint");

  asio::post(state->strand, [state] { Accept(state); });
  return std::unique_ptr<HttpServer>(new HttpServer(std::move(state)));
}

HttpServer::HttpServer(std::shared_ptr<State> state)
    : state_(std::move(state)) {}

HttpServer::~HttpServer() { Stop(); }

uint16_t HttpServer::port() const { return state_->port; }

void HttpServer::Stop() {
  {
    std::unique_lock lock(state_->handler_mu);
    if (state_->stopped.exchange(true)) return;
  }
  std::vector<std::shared_ptr<Session>> sessions;
  {
    std::lock_guard lock(state_->sessions_mu);
    for (auto& [ptr, entry] : state_->sessions) {
      if (auto s = entry.session.lock()) sessions.push_back(std::move(s));
    }
  }
  asio::post(state_->strand, [state = state_] {
    beast::error_code ec;
    state->acceptor.close(ec);
  });
  for (auto& s : sessions) {
    asio::post(s->executor(), [s] { s->Close(); });
  }
}

}  // namespace tokensign::service
