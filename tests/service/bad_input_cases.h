// The bad-input matrix's rows (issue 16): what daemon_bad_input_test sends
// to SignToken, SignTokens, ExchangeToken and KeyAdmin, and what each must be
// answered. The cases are built in bad_input_sign_cases.cc (SignToken,
// SignTokens) and bad_input_other_cases.cc (ExchangeToken, KeyAdmin).
// Test-only. Thread-safety: plain functions returning values.
#ifndef TOKENSIGN_TESTS_SERVICE_BAD_INPUT_CASES_H_
#define TOKENSIGN_TESTS_SERVICE_BAD_INPUT_CASES_H_

#include <google/protobuf/message.h>
#include <google/protobuf/struct.pb.h>
#include <grpcpp/grpcpp.h>

#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "tokensign/v1/tokensign.pb.h"

namespace tokensign::testing {

using Code = grpc::StatusCode;

inline constexpr char kSignToken[] = "/tokensign.v1.TokenSigner/SignToken";
inline constexpr char kSignTokens[] = "/tokensign.v1.TokenSigner/SignTokens";
inline constexpr char kExchangeToken[] = "/tokensign.v1.TokenSigner/ExchangeToken";
inline constexpr char kKeyAdmin[] = "/tokensign.v1.KeyAdmin/";

inline constexpr char kSigner[] = "spiffe://test/signer";
inline constexpr char kCustodian[] = "custodian-1";

// One row of the matrix.
struct Case {
  std::string name;
  std::string method;  // full method path
  std::string bytes;   // the request as sent
  Code code;           // the answer's code (or the batch item's)
  std::string field;   // the message starts with "<field>: "
  int item = -1;       // SignTokens answered OK: the item that failed
  std::string cert = "signer";
};

using SignEdit = std::function<void(v1::SignTokenRequest*)>;
using ExchangeEdit = std::function<void(v1::ExchangeTokenRequest*)>;

// A varint-encoded field `number` (wire type 0) with `value`, as a client
// that knows other enum values would send it.
inline std::string VarintField(int number, int64_t value) {
  std::string out(1, static_cast<char>(number << 3));
  auto v = static_cast<uint64_t>(value);
  do {
    char b = static_cast<char>(v & 0x7f);
    v >>= 7;
    if (v != 0) b = static_cast<char>(b | 0x80);
    out.push_back(b);
  } while (v != 0);
  return out;
}

// `levels` Structs nested in `s` under the key "n".
inline void Nest(google::protobuf::Struct* s, int levels) {
  for (int i = 1; i < levels; ++i)
    s = (*s->mutable_fields())["n"].mutable_struct_value();
}

inline Case Admin(std::string name, const std::string& method,
           const google::protobuf::Message& req, Code code, std::string field) {
  return {std::move(name), kKeyAdmin + method, req.SerializeAsString(), code,
          std::move(field), -1, "custodian"};
}

inline std::string Big(size_t n) { return std::string(n, 'x'); }

std::vector<Case> SignTokenCases();
std::vector<Case> SignTokensCases();
// ExchangeToken cases around a valid subject token `parent` (aud
// https://api.example, scope read write, 600 s).
std::vector<Case> ExchangeCases(const std::string& parent);
std::vector<Case> KeyAdminCases();

}  // namespace tokensign::testing

#endif  // TOKENSIGN_TESTS_SERVICE_BAD_INPUT_CASES_H_
