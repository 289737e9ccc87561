// RFC 7512 pkcs11: URI parser: a table of valid and invalid URIs.
#include "hsm/provider/pkcs11_uri.h"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <string>

namespace tokensign::hsm::provider {
namespace {

TEST(Pkcs11UriTest, ParsesFullUri) {
  absl::StatusOr<Pkcs11Uri> u = ParsePkcs11Uri(
      "pkcs11:token=My%20Token;object=issuer-a;id=%01%AB%ff;type=private"
      "?pin-source=file:/run/secrets/pin&module-path=/usr/lib/softhsm/libsofthsm2.so");
  ASSERT_TRUE(u.ok()) << u.status();
  EXPECT_EQ(u->token, "My Token");
  EXPECT_EQ(u->object, "issuer-a");
  EXPECT_EQ(u->id_hex, "01abff");
  EXPECT_EQ(u->type, UriObjectType::kPrivate);
  EXPECT_EQ(u->pin_file, "/run/secrets/pin");
  EXPECT_EQ(u->pin_env, "");
  EXPECT_EQ(u->module_path, "/usr/lib/softhsm/libsofthsm2.so");
}

TEST(Pkcs11UriTest, PinSourceForms) {
  auto env = ParsePkcs11Uri("pkcs11:object=k?pin-source=env:MY_PIN");
  ASSERT_TRUE(env.ok()) << env.status();
  EXPECT_EQ(env->pin_env, "MY_PIN");
  auto file3 = ParsePkcs11Uri("pkcs11:object=k?pin-source=file:///etc/pin");
  ASSERT_TRUE(file3.ok()) << file3.status();
  EXPECT_EQ(file3->pin_file, "/etc/pin");
  auto bare = ParsePkcs11Uri("pkcs11:object=k?pin-source=/etc/pin");
  ASSERT_TRUE(bare.ok()) << bare.status();
  EXPECT_EQ(bare->pin_file, "/etc/pin");
  auto value = ParsePkcs11Uri("pkcs11:object=k?pin-value=12%2634");
  ASSERT_TRUE(value.ok()) << value.status();
  EXPECT_EQ(value->pin_value, "12&34");
}

TEST(Pkcs11UriTest, IdOnlyAndPublicType) {
  auto u = ParsePkcs11Uri("PKCS11:id=%00%10;type=public");
  ASSERT_TRUE(u.ok()) << u.status();
  EXPECT_EQ(u->id_hex, "0010");
  EXPECT_EQ(u->type, UriObjectType::kPublic);
  EXPECT_EQ(u->object, "");
}

TEST(Pkcs11UriTest, FormatRoundTrips) {
  std::string s = FormatPkcs11Uri("tok en", "a;b", "00ff", UriObjectType::kPrivate);
  EXPECT_EQ(s, "pkcs11:token=tok%20en;object=a%3Bb;id=%00%FF;type=private");
  auto u = ParsePkcs11Uri(s);
  ASSERT_TRUE(u.ok()) << u.status();
  EXPECT_EQ(u->token, "tok en");
  EXPECT_EQ(u->object, "a;b");
  EXPECT_EQ(u->id_hex, "00ff");
}

struct BadCase {
  const char* uri;
  const char* expected_fragment;  // part of the error message
};

class Pkcs11UriBadTest : public ::testing::TestWithParam<BadCase> {};

TEST_P(Pkcs11UriBadTest, Rejected) {
  absl::StatusOr<Pkcs11Uri> u = ParsePkcs11Uri(GetParam().uri);
  ASSERT_FALSE(u.ok()) << GetParam().uri;
  EXPECT_EQ(u.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(u.status().message().find(GetParam().expected_fragment), std::string::npos)
      << u.status();
}

INSTANTIATE_TEST_SUITE_P(
    Table, Pkcs11UriBadTest,
    ::testing::Values(
        BadCase{"file:/tmp/key.pem", "must start with 'pkcs11:'"},
        BadCase{"pkcs11:", "must name the key"},
        BadCase{"pkcs11:token=t;type=private", "must name the key"},
        BadCase{"pkcs11:object=k;colour=red", "colour: unknown attribute"},
        BadCase{"pkcs11:object=k;x-vendor=1", "x-vendor: unknown attribute"},
        BadCase{"pkcs11:object=%G1", "object: bad percent escape"},
        BadCase{"pkcs11:object=abc%", "object: truncated percent escape"},
        BadCase{"pkcs11:object=abc%4", "object: truncated percent escape"},
        BadCase{"pkcs11:id=%zz", "id: bad percent escape"},
        BadCase{"pkcs11:object=a;object=b", "object: duplicate attribute"},
        BadCase{"pkcs11:object=a;OBJECT=b", "object: duplicate attribute"},
        BadCase{"pkcs11:object=", "object: empty value"},
        BadCase{"pkcs11:object=a;;id=%01", "empty attribute"},
        BadCase{"pkcs11:object", "attribute must be name=value"},
        BadCase{"pkcs11:object=k;type=cert", "type: unsupported type"},
        BadCase{"pkcs11:object=k;pin-value=1234", "is a query attribute"},
        BadCase{"pkcs11:object=k?token=t", "is a path attribute"},
        BadCase{"pkcs11:object=k?pin-source=relative/pin", "pin-source: must be"},
        BadCase{"pkcs11:object=k?pin-source=env:", "env: needs a variable name"},
        BadCase{"pkcs11:object=k?pin-source=env:A&pin-value=1", "not both"},
        BadCase{"pkcs11:object=k?module-path=libsofthsm2.so", "absolute path"},
        BadCase{"pkcs11:object=a b", "must be percent-encoded"},
        BadCase{"pkcs11:object=a/b", "must be percent-encoded"},
        BadCase{"pkcs11:object=k?", "must be followed by attributes"},
        BadCase{"pkcs11:object=k#frag", "'#' is not allowed"}));

// A URI's module-path may only repeat the configured module: any other library is
// refused before anything could dlopen it.
TEST(Pkcs11UriTest, ModulePathMustBeTheConfiguredModule) {
  char dir_template[] = "/tmp/pkcs11-uri-test-XXXXXX";
  ASSERT_NE(mkdtemp(dir_template), nullptr);
  const std::string dir = dir_template;
  const std::string configured = dir + "/libconfigured.so";
  const std::string link = dir + "/libalias.so";
  const std::string other = dir + "/libother.so";
  std::ofstream(configured) << "x";
  std::ofstream(other) << "y";
  ASSERT_EQ(symlink(configured.c_str(), link.c_str()), 0);
  auto check = [&](const std::string& uri) {
    absl::StatusOr<Pkcs11Uri> u = ParsePkcs11Uri(uri);
    EXPECT_TRUE(u.ok()) << u.status();
    return u.ok() ? CheckUriModulePath(*u, configured) : u.status();
  };
  EXPECT_TRUE(check("pkcs11:object=k").ok());
  EXPECT_TRUE(check("pkcs11:object=k?module-path=" + configured).ok());
  EXPECT_TRUE(check("pkcs11:object=k?module-path=" + link).ok());  // the same file
  for (const std::string& bad : {other, dir + "/missing.so", std::string("/tmp/evil.so")}) {
    absl::Status s = check("pkcs11:object=k?module-path=" + bad);
    EXPECT_TRUE(absl::IsPermissionDenied(s)) << s;
    EXPECT_NE(s.message().find("module-path: '" + bad + "' is not the configured PKCS#11 "
                               "module '" + configured + "'"),
              std::string::npos)
        << s;
    EXPECT_NE(s.message().find("openssl.cnf"), std::string::npos) << s;
  }
  std::remove(link.c_str());
  std::remove(configured.c_str());
  std::remove(other.c_str());
  rmdir(dir.c_str());
}

}  // namespace
}  // namespace tokensign::hsm::provider
