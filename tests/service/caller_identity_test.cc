// Caller identity from the client certificate: the URI SAN when there is one, never a
// CN that the certificate's requester could choose to impersonate another caller.
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "signer/service/grpc_convert.h"
#include "tests/support/softhsm_token.h"

namespace tokensign::service {
namespace {

// A self-signed certificate with `subject` and optional subjectAltName, made by openssl.
std::string MakeCert(const std::string& subject, const std::string& san) {
  char tmpl[] = "/tmp/tokensign-cert-XXXXXX";
  std::string dir = mkdtemp(tmpl);
  std::vector<std::string> argv = {"openssl", "req", "-x509", "-newkey", "ec",
                                   "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                                   "-keyout", dir + "/key.pem", "-out", dir + "/cert.pem",
                                   "-days", "1", "-subj", subject};
  if (!san.empty()) {
    argv.push_back("-addext");
    argv.push_back("subjectAltName=" + san);
  }
  auto result = testing::RunCommand(argv);
  EXPECT_TRUE(result.ok() && result->exit_code == 0)
      << (result.ok() ? result->output : std::string(result.status().message()));
  std::ifstream in(dir + "/cert.pem");
  std::stringstream pem;
  pem << in.rdbuf();
  std::system(("rm -rf '" + dir + "'").c_str());
  return pem.str();
}

TEST(CallerIdentityTest, UriSanWinsAndTheCnIsIgnored) {
  // The requester controls the CN; it must not turn this workload into the custodian.
  std::string pem = MakeCert("/CN=key-custodian-1", "URI:spiffe://example.org/some-svc");
  EXPECT_EQ(IdentityFromCertificate(pem), "spiffe://example.org/some-svc");
}

TEST(CallerIdentityTest, SeveralUriSansAreAmbiguousAndNameNobody) {
  std::string pem = MakeCert("/CN=x", "URI:spiffe://example.org/a,URI:spiffe://example.org/b");
  EXPECT_EQ(IdentityFromCertificate(pem), "");
}

TEST(CallerIdentityTest, CnIsTheIdentityWithoutUriSans) {
  EXPECT_EQ(IdentityFromCertificate(MakeCert("/CN=key-custodian-1", "")), "key-custodian-1");
  // A DNS SAN is not a URI SAN: the CN still names the caller.
  EXPECT_EQ(IdentityFromCertificate(MakeCert("/CN=custodian-2", "DNS:host.example")),
            "custodian-2");
}

TEST(CallerIdentityTest, UriLookingCnCannotPoseAsAUriCaller) {
  std::string pem = MakeCert("/CN=spiffe:\\/\\/example.org\\/authz-server", "");
  EXPECT_EQ(IdentityFromCertificate(pem), "");
}

TEST(CallerIdentityTest, UriSanWithoutColonCannotPoseAsACnCaller) {
  // Regression: URI:custodian-1 used to act as the CN-configured custodian-1.
  EXPECT_EQ(IdentityFromCertificate(MakeCert("/CN=x", "URI:custodian-1")), "");
  EXPECT_EQ(IdentityFromCertificate(MakeCert("/CN=custodian-1", "URI:custodian-1")), "");
  // A certificate with a URI SAN is never named by its CN, even when the SAN names nobody.
  EXPECT_EQ(IdentityFromCertificate(MakeCert("/CN=custodian-1", "URI:spiffe")), "");
}

TEST(CallerIdentityTest, SeveralCnsNameNobody) {
  // Regression: the first CN used to name the caller, whichever the issuer checked.
  EXPECT_EQ(IdentityFromCertificate(MakeCert("/CN=custodian-1/CN=intruder", "")), "");
  EXPECT_EQ(IdentityFromCertificate(MakeCert("/CN=intruder/CN=custodian-1", "")), "");
  EXPECT_EQ(IdentityFromCertificate(MakeCert("/O=corp/CN=custodian-1/OU=ops", "")),
            "custodian-1");
}

TEST(CallerIdentityTest, NamesThatNoConfigCouldHoldAreNobody) {
  // The same rule as config (CallerIdProblem): no URI without a scheme or with
  // a space, no CN with a leading space (openssl itself refuses CNs over 64).
  EXPECT_EQ(IdentityFromCertificate(MakeCert("/CN=x", "URI:1abc:def")), "");
  EXPECT_EQ(IdentityFromCertificate(MakeCert("/CN=x", "URI:spiffe://x/a b")), "");
  EXPECT_EQ(IdentityFromCertificate(MakeCert("/CN= custodian-1", "")), "");
  EXPECT_EQ(IdentityFromCertificate(MakeCert("/CN=" + std::string(64, 'c'), "")),
            std::string(64, 'c'));
}

TEST(CallerIdentityTest, GarbageIsNobody) {
  EXPECT_EQ(IdentityFromCertificate(""), "");
  EXPECT_EQ(IdentityFromCertificate("-----BEGIN CERTIFICATE-----\nAAAA\n"), "");
}

TEST(CallerIdentityTest, CacheAnswersLikeTheParserAndSurvivesEviction) {
  const std::string a = MakeCert("/CN=key-custodian-1", "URI:spiffe://example.org/a");
  const std::string b = MakeCert("/CN=key-custodian-1", "");
  for (int round = 0; round < 2; ++round) {  // second round: from the cache
    EXPECT_EQ(CachedIdentityFromCertificate(a), "spiffe://example.org/a");
    EXPECT_EQ(CachedIdentityFromCertificate(b), "key-custodian-1");
  }
  // More distinct certificates than the cache holds: it is cleared and
  // refilled, never mixing up identities.
  for (int i = 0; i < 3000; ++i) {
    EXPECT_EQ(CachedIdentityFromCertificate("not a certificate " + std::to_string(i)), "");
  }
  EXPECT_EQ(CachedIdentityFromCertificate(a), "spiffe://example.org/a");
  EXPECT_EQ(CachedIdentityFromCertificate(b), "key-custodian-1");
}

}  // namespace
}  // namespace tokensign::service
