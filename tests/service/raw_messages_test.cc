// ParseRequest / ParseBatch / DiagnoseMalformed: they accept exactly what
// protobuf's own parser accepts (at the nesting limit too), name the field and
// the rule when it refuses, survive a request nested far beyond the limit, and
// let one bad batch item fail alone.
#include "signer/service/raw_messages.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "absl/strings/match.h"

namespace tokensign::service {
namespace {

grpc::ByteBuffer Buffer(const std::string& bytes) {
  grpc::Slice slice(bytes);
  return grpc::ByteBuffer(&slice, 1);
}

v1::SignTokenRequest Request() {
  v1::SignTokenRequest r;
  r.set_issuer("dev");
  r.set_kind(v1::ACCESS_TOKEN);
  r.set_subject("alice");
  r.add_actor_chain()->set_sub("agent-7");
  return r;
}

// Request() with extra_claims nesting `levels` Structs.
v1::SignTokenRequest Nested(int levels) {
  v1::SignTokenRequest r = Request();
  google::protobuf::Struct* s = r.mutable_extra_claims();
  for (int i = 1; i < levels; ++i)
    s = (*s->mutable_fields())["n"].mutable_struct_value();
  return r;
}

std::string Varint(uint64_t v) {
  std::string out;
  while (v >= 0x80) {
    out.push_back(static_cast<char>((v & 0x7F) | 0x80));
    v >>= 7;
  }
  out.push_back(static_cast<char>(v));
  return out;
}

TEST(RawMessagesTest, AgreesWithTheParserAtTheNestingLimit) {
  int accepted = 0, refused = 0;
  // Struct k sits 3k-2 messages deep: 34 levels are the deepest the parser's
  // limit of 100 allows.
  for (int levels = 30; levels <= 38; ++levels) {
    SCOPED_TRACE(levels);
    const std::string wire = Nested(levels).SerializeAsString();
    v1::SignTokenRequest direct;
    const bool parses = direct.ParseFromString(wire);
    v1::SignTokenRequest out;
    absl::Status st = ParseRequest(Buffer(wire), &out);
    EXPECT_EQ(st.ok(), parses) << st;
    // The diagnosis walks the same limit: it finds nothing in what the parser
    // accepts, and names the nesting in what it refuses.
    v1::SignTokenRequest diag;
    absl::Status why = DiagnoseMalformed(wire, &diag);
    EXPECT_EQ(why.code(), absl::StatusCode::kInvalidArgument);
    if (parses) {
      ++accepted;
      EXPECT_TRUE(absl::StrContains(why.message(), "refused by the protobuf"))
          << why;
    } else {
      ++refused;
      EXPECT_TRUE(absl::StartsWith(st.message(), "extra_claims: nested deeper"))
          << st;
      EXPECT_EQ(out.issuer(), "dev");  // salvaged for the audit record
      EXPECT_EQ(out.subject(), "alice");
    }
  }
  EXPECT_EQ(accepted, 5);  // 30..34
  EXPECT_EQ(refused, 4);   // 35..38
}

TEST(RawMessagesTest, NestedFarBeyondTheLimitIsDiagnosedWithoutRecursingDeep) {
  // 300000 Struct -> fields entry -> Value -> Struct levels (~1.5 MB), built
  // inside out as wire bytes: the walk stops at the limit.
  constexpr int kMessages = 300000;
  std::vector<std::string> headers;
  headers.reserve(kMessages);
  size_t inner = 0;
  for (int i = 0; i < kMessages; ++i) {
    // Struct.fields = 1, fields entry value = 2, Value.struct_value = 5.
    // The outermost header (the last built) is the Struct's fields tag.
    static constexpr char kTags[] = {0x0A, 0x12, 0x2A};
    std::string h(1, kTags[(kMessages - 1 - i) % 3]);
    h += Varint(inner);
    inner += h.size();
    headers.push_back(std::move(h));
  }
  std::string wire = Request().SerializeAsString();
  wire += std::string(1, static_cast<char>(0x7A)) + Varint(inner);  // field 15
  for (auto it = headers.rbegin(); it != headers.rend(); ++it) wire += *it;
  v1::SignTokenRequest out;
  absl::Status st = ParseRequest(Buffer(wire), &out);
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(absl::StartsWith(st.message(), "extra_claims: nested deeper"))
      << st;
}

TEST(RawMessagesTest, NamesTheFieldAndTheRule) {
  v1::SignTokenRequest r = Request();
  r.add_audience("https://api.example");
  r.add_audience("https://b\xFF.example");
  v1::SignTokenRequest out;
  absl::Status st = ParseRequest(Buffer(r.SerializeAsString()), &out);
  EXPECT_EQ(st.message(),
            "audience[1]: invalid UTF-8 in a string field (not a valid "
            "tokensign.v1.SignTokenRequest)");

  // A string inside a Struct is named by the request field holding it.
  r = Request();
  (*r.mutable_rctx()->mutable_fields())["k\xC3"].set_string_value("v");
  st = ParseRequest(Buffer(r.SerializeAsString()), &out);
  EXPECT_EQ(st.message(),
            "rctx: invalid UTF-8 in a string field (not a valid "
            "tokensign.v1.SignTokenRequest)");

  // Wire data cut short.
  std::string wire = Request().SerializeAsString();
  wire.resize(wire.size() - 3);
  st = ParseRequest(Buffer(wire), &out);
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(absl::StrContains(st.message(), "malformed protobuf wire data"))
      << st;
  EXPECT_TRUE(absl::EndsWith(st.message(),
                             "(not a valid tokensign.v1.SignTokenRequest)"));
}

TEST(RawMessagesTest, BadBatchItemFailsAlone) {
  v1::SignTokensRequest batch;
  for (int i = 0; i < 3; ++i) *batch.add_requests() = Request();
  batch.mutable_requests(1)->set_subject("b\xFFob");
  std::vector<absl::Status> items;
  v1::SignTokensRequest out;
  ASSERT_TRUE(ParseBatch(Buffer(batch.SerializeAsString()), &out, &items).ok());
  ASSERT_EQ(out.requests_size(), 3);
  ASSERT_EQ(items.size(), 3u);
  EXPECT_TRUE(items[0].ok());
  EXPECT_EQ(items[1].message(),
            "subject: invalid UTF-8 in a string field (not a valid "
            "tokensign.v1.SignTokenRequest)");
  EXPECT_TRUE(items[2].ok());
  EXPECT_EQ(out.requests(0).SerializeAsString(),
            Request().SerializeAsString());
  EXPECT_EQ(out.requests(2).SerializeAsString(),
            Request().SerializeAsString());
  EXPECT_EQ(out.requests(1).issuer(), "dev");  // salvaged
  EXPECT_EQ(out.requests(1).subject(), "");

  // A valid batch takes the fast path: every item OK.
  batch.mutable_requests(1)->set_subject("bob");
  ASSERT_TRUE(ParseBatch(Buffer(batch.SerializeAsString()), &out, &items).ok());
  EXPECT_EQ(items, std::vector<absl::Status>(3, absl::OkStatus()));
  EXPECT_EQ(out.requests(1).subject(), "bob");

  // Broken framing outside any item fails the whole call.
  std::string wire = batch.SerializeAsString() + "\x0A\x7F";
  EXPECT_EQ(ParseBatch(Buffer(wire), &out, &items).code(),
            absl::StatusCode::kInvalidArgument);
}

// proto3 enums are open: a value the enum does not define parses, and must
// still be refused, naming the field (RotateKey's mode 7 once became a planned
// rotation); the request is kept for the audit record.
TEST(RawMessagesTest, RefusesEnumValuesTheEnumDoesNotDefine) {
  v1::RotateKeyRequest rotate;
  rotate.set_issuer("dev");
  const std::string wire = rotate.SerializeAsString();
  v1::RotateKeyRequest out;
  absl::Status st = ParseRequest(Buffer(wire + "\x18\x07"), &out);  // mode 7
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(st.message(),
            "mode: 7 is not a RotationMode (allowed: PLANNED, EMERGENCY)");
  EXPECT_EQ(out.issuer(), "dev");
  // -2 (ten varint bytes on the wire).
  st = ParseRequest(Buffer(wire + "\x18" + Varint(static_cast<uint64_t>(-2))),
                    &out);
  EXPECT_EQ(st.message(),
            "mode: -2 is not a RotationMode (allowed: PLANNED, EMERGENCY)");
  // Defined values, the unset one included, are accepted.
  for (int mode = 0; mode <= 2; ++mode) {
    rotate.set_mode(static_cast<v1::RotationMode>(mode));
    EXPECT_TRUE(ParseRequest(Buffer(rotate.SerializeAsString()), &out).ok());
    EXPECT_EQ(out.mode(), mode);
  }
  v1::SignTokenRequest sign = Request();
  sign.clear_kind();
  v1::SignTokenRequest sign_out;
  st = ParseRequest(Buffer(sign.SerializeAsString() + "\x10\x07"), &sign_out);
  EXPECT_EQ(st.message(),
            "kind: 7 is not a TokenKind (allowed: ACCESS_TOKEN, "
            "TRANSACTION_TOKEN)");
  v1::ExchangeTokenRequest exchange;
  exchange.set_issuer("dev");
  v1::ExchangeTokenRequest exchange_out;
  st = ParseRequest(Buffer(exchange.SerializeAsString() + "\x18\x09"),
                    &exchange_out);
  EXPECT_EQ(st.message(),
            "kind: 9 is not a TokenKind (allowed: ACCESS_TOKEN, "
            "TRANSACTION_TOKEN)");
}

TEST(RawMessagesTest, ResponsesRoundTrip) {
  v1::SignTokenResponse resp;
  resp.set_token(std::string(5000, 'x'));  // larger than one inlined slice
  resp.set_kid("kid-1");
  grpc::ByteBuffer bb;
  ASSERT_TRUE(SerializeResponse(resp, &bb).ok());
  std::vector<grpc::Slice> slices;
  ASSERT_TRUE(bb.Dump(&slices).ok());
  std::string wire;
  for (const grpc::Slice& s : slices)
    wire.append(reinterpret_cast<const char*>(s.begin()), s.size());
  EXPECT_EQ(wire, resp.SerializeAsString());
}

}  // namespace
}  // namespace tokensign::service
