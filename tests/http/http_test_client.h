// A tiny blocking HTTP/1.1 client for the listener tests, built on Beast.
// Every operation has a 30 s safety timeout so a broken server fails the test
// instead of hanging it (this is not a performance threshold).
//
// Thread-safety: one client per thread.
#ifndef TOKENSIGN_TESTS_HTTP_HTTP_TEST_CLIENT_H_
#define TOKENSIGN_TESTS_HTTP_HTTP_TEST_CLIENT_H_

#include <chrono>
#include <cstdint>
#include <string>

#include "boost/asio/connect.hpp"
#include "boost/asio/io_context.hpp"
#include "boost/asio/ip/tcp.hpp"
#include "boost/beast/core.hpp"
#include "boost/beast/http.hpp"

namespace tokensign::service::testing {

namespace beast = boost::beast;
namespace http = beast::http;

using Response = http::response<http::string_body>;

class TestClient {
 public:
  beast::error_code Connect(uint16_t port) {
    boost::asio::ip::tcp::endpoint ep(
        boost::asio::ip::make_address("127.0.0.1"), port);
    stream_.expires_after(kSafety);
    beast::error_code result;
    stream_.async_connect(ep, [&](beast::error_code ec) { result = ec; });
    Run();
    return result;
  }

  beast::error_code WriteRaw(const std::string& bytes) {
    stream_.expires_after(kSafety);
    beast::error_code result;
    boost::asio::async_write(
        stream_, boost::asio::buffer(bytes),
        [&](beast::error_code ec, std::size_t) { result = ec; });
    Run();
    return result;
  }

  // Reads one response; `head` skips the body as a HEAD response has none.
  beast::error_code Read(Response& out, bool head = false) {
    http::response_parser<http::string_body> parser;
    parser.skip(head);
    stream_.expires_after(kSafety);
    beast::error_code result;
    http::async_read(stream_, buffer_, parser,
                     [&](beast::error_code ec, std::size_t) { result = ec; });
    Run();
    if (!result) out = parser.release();
    return result;
  }

  // GET (or another method) with keep-alive; returns the read error.
  beast::error_code Fetch(http::verb method, const std::string& target,
                          Response& out) {
    http::request<http::string_body> req(method, target, 11);
    req.set(http::field::host, "127.0.0.1");
    req.keep_alive(true);
    req.prepare_payload();
    stream_.expires_after(kSafety);
    beast::error_code result;
    http::async_write(stream_, req,
                      [&](beast::error_code ec, std::size_t) { result = ec; });
    Run();
    if (result) return result;
    return Read(out, method == http::verb::head);
  }

  // True when the server closed the connection (EOF or reset) rather than
  // answering or hitting the safety timeout.
  bool ClosedByPeer() {
    char byte;
    stream_.expires_after(kSafety);
    beast::error_code result;
    stream_.async_read_some(
        boost::asio::buffer(&byte, 1),
        [&](beast::error_code ec, std::size_t) { result = ec; });
    Run();
    return result == boost::asio::error::eof ||
           result == boost::asio::error::connection_reset;
  }

 private:
  static constexpr std::chrono::seconds kSafety{30};
  void Run() {
    io_.restart();
    io_.run();
  }

  boost::asio::io_context io_;
  beast::tcp_stream stream_{io_};
  beast::flat_buffer buffer_;
};

}  // namespace tokensign::service::testing

#endif  // TOKENSIGN_TESTS_HTTP_HTTP_TEST_CLIENT_H_
