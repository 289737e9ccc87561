// RawCall: one unary gRPC call with arbitrary request bytes, as any client
// could send them (GenericStub), and WithBytes to put bytes the C++ API
// refuses (invalid UTF-8) into a request, for the daemon tests of malformed
// and hostile input. Test-only. Thread-safety: each call is independent.
#ifndef TOKENSIGN_TESTS_SERVICE_RAW_CALL_H_
#define TOKENSIGN_TESTS_SERVICE_RAW_CALL_H_

#include <grpcpp/generic/generic_stub.h>
#include <google/protobuf/message.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <chrono>
#include <future>
#include <memory>
#include <string>
#include <vector>

namespace tokensign::testing {

struct RawReply {
  grpc::Status status;
  std::string body;  // the response bytes when the call succeeded
};

// Calls `method` (e.g. "/tokensign.v1.TokenSigner/SignToken") with `bytes` as
// the request message and waits at most `deadline`.
inline RawReply RawCall(const std::shared_ptr<grpc::Channel>& ch,
                        const std::string& method, const std::string& bytes,
                        std::chrono::seconds deadline) {
  grpc::GenericStub stub(ch);
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + deadline);
  grpc::Slice slice(bytes);
  grpc::ByteBuffer req(&slice, 1), resp;
  std::promise<grpc::Status> done;
  stub.UnaryCall(&ctx, method, grpc::StubOptions(), &req, &resp,
                 [&done](grpc::Status st) { done.set_value(std::move(st)); });
  RawReply r;
  r.status = done.get_future().get();
  std::vector<grpc::Slice> slices;
  if (r.status.ok() && resp.Dump(&slices).ok()) {
    for (const grpc::Slice& s : slices)
      r.body.append(reinterpret_cast<const char*>(s.begin()), s.size());
  }
  return r;
}

// `msg` serialized, with the (unique) string `marker` replaced by `bytes` of
// the same length, so the length prefix stays right (invalid UTF-8 cannot be
// set through the C++ API).
inline std::string WithBytes(const google::protobuf::Message& msg,
                             const std::string& marker,
                             const std::string& bytes) {
  std::string wire = msg.SerializeAsString();
  size_t at = wire.find(marker);
  EXPECT_NE(at, std::string::npos);
  if (at == std::string::npos) return wire;
  EXPECT_EQ(wire.find(marker, at + 1), std::string::npos);
  EXPECT_EQ(marker.size(), bytes.size());
  return wire.replace(at, marker.size(), bytes);
}

}  // namespace tokensign::testing

#endif  // TOKENSIGN_TESTS_SERVICE_RAW_CALL_H_
