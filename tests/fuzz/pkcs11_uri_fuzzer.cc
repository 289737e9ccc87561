// libFuzzer target: the RFC 7512 URI parser (hsm/provider/pkcs11_uri.h), which reads
// URIs from command lines and files others may write.
// Properties checked besides "no crash, no sanitizer report":
// - a URI that parses names its key (object and/or id), and id_hex is lowercase hex;
// - FormatPkcs11Uri of what was parsed parses back to the same token, object, id and type.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstdio>
#include <string_view>

#include "absl/status/statusor.h"
#include "hsm/provider/pkcs11_uri.h"

namespace {

using tokensign::hsm::provider::FormatPkcs11Uri;
using tokensign::hsm::provider::ParsePkcs11Uri;
using tokensign::hsm::provider::PercentDecode;
using tokensign::hsm::provider::Pkcs11Uri;

void Check(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "pkcs11_uri_fuzzer: property violated: %s\n", what);
    std::abort();
  }
}

bool IsLowerHex(std::string_view s) {
  if (s.size() % 2 != 0) return false;
  for (char c : s) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view in(reinterpret_cast<const char*>(data), size);
  (void)PercentDecode(in, "fuzz");
  absl::StatusOr<Pkcs11Uri> uri = ParsePkcs11Uri(in);
  if (!uri.ok()) return 0;
  Check(!uri->object.empty() || !uri->id_hex.empty(), "a parsed URI names its key");
  Check(IsLowerHex(uri->id_hex), "id_hex is lowercase hex");
  const std::string again =
      FormatPkcs11Uri(uri->token, uri->object, uri->id_hex, uri->type);
  absl::StatusOr<Pkcs11Uri> back = ParsePkcs11Uri(again);
  Check(back.ok(), "FormatPkcs11Uri output parses");
  Check(back->token == uri->token, "round trip keeps token");
  Check(back->object == uri->object, "round trip keeps object");
  Check(back->id_hex == uri->id_hex, "round trip keeps id");
  Check(back->type == uri->type, "round trip keeps type");
  return 0;
}
