// Lineage: follow parent_jti across hops (and rotated files), root first.
#include "signer/audit/lineage.h"

#include "gtest/gtest.h"
#include "signer/audit/audit_log.h"
#include "tests/audit/audit_test_util.h"

namespace tokensign::audit {
namespace {

using testing::MakeRecord;
using testing::TempDir;

AuditRecord Hop(const std::string& jti, const std::string& parent,
                std::vector<AuditActor> actors, const std::string& scope) {
  AuditRecord r = MakeRecord(jti, parent);
  r.sub = "alice";
  r.actor_chain = std::move(actors);
  r.scope = {scope};
  return r;
}

class LineageTest : public ::testing::Test {
 protected:
  void SetUp() override {
    path_ = dir_.File("audit.log");
    // Small files so the hops land in different rotated files.
    auto log = AuditLog::Open({.path = path_, .rotate_bytes = 1500});
    ASSERT_TRUE(log.ok()) << log.status();
    auto& l = *log;
    ASSERT_TRUE(l->Append(Hop("root", "", {{"planner", ""}}, "read")).ok());
    for (int i = 0; i < 5; ++i)
      ASSERT_TRUE(l->Append(MakeRecord("noise" + std::to_string(i))).ok());
    ASSERT_TRUE(l->Append(Hop("mid", "root", {{"agent-7", ""}, {"planner", ""}},
                              "read"))
                    .ok());
    AuditRecord denied = Hop("leaf", "mid", {}, "read");
    denied.outcome =
        "denied";  // a denied record with the parent's jti must not match
    denied.jti = "mid";
    denied.parent_jti = "";
    ASSERT_TRUE(l->Append(denied).ok());
    for (int i = 5; i < 10; ++i)
      ASSERT_TRUE(l->Append(MakeRecord("noise" + std::to_string(i))).ok());
    ASSERT_TRUE(l->Append(Hop("leaf", "mid",
                              {{"tool-3", "https://agents.example"},
                               {"agent-7", ""},
                               {"planner", ""}},
                              "read"))
                    .ok());
    ASSERT_TRUE(
        l->Append(Hop("orphan", "elsewhere", {{"agent-9", ""}}, "write")).ok());
    EXPECT_GE(l->stats().rotations, 2);
  }

  TempDir dir_;
  std::string path_;
};

TEST_F(LineageTest, ThreeHopsRootFirstAcrossRotatedFiles) {
  auto hops = Lineage(path_, "leaf");
  ASSERT_TRUE(hops.ok()) << hops.status();
  ASSERT_EQ(hops->size(), 3u);
  EXPECT_EQ((*hops)[0].jti, "root");
  EXPECT_EQ((*hops)[1].jti, "mid");
  EXPECT_EQ((*hops)[1].outcome, "signed");
  EXPECT_EQ((*hops)[2].jti, "leaf");
  EXPECT_NE((*hops)[0].file, (*hops)[2].file);
  EXPECT_EQ((*hops)[2].actors.size(), 3u);
  std::string text = FormatLineage(*hops);
  EXPECT_NE(text.find("1. jti=root sub=alice client=app actors=[planner] "
                      "aud=https://api.example scope=read issuer=main"),
            std::string::npos)
      << text;
  EXPECT_NE(
      text.find("2. jti=mid sub=alice client=app actors=[agent-7 <- planner]"),
      std::string::npos)
      << text;
  EXPECT_NE(
      text.find("3. jti=leaf sub=alice client=app "
                "actors=[tool-3@https://agents.example <- agent-7 <- planner]"),
      std::string::npos)
      << text;
}

TEST_F(LineageTest, RootHasOneHop) {
  auto hops = Lineage(path_, "root");
  ASSERT_TRUE(hops.ok()) << hops.status();
  ASSERT_EQ(hops->size(), 1u);
  EXPECT_TRUE((*hops)[0].parent_jti.empty());
}

TEST_F(LineageTest, MissingParentIsReportedNotAnError) {
  auto hops = Lineage(path_, "orphan");
  ASSERT_TRUE(hops.ok()) << hops.status();
  ASSERT_EQ(hops->size(), 2u);
  EXPECT_FALSE((*hops)[0].in_log);
  EXPECT_EQ((*hops)[0].jti, "elsewhere");
  std::string text = FormatLineage(*hops);
  EXPECT_NE(text.find("1. jti=elsewhere (not in this log"), std::string::npos)
      << text;
  EXPECT_NE(text.find("2. jti=orphan"), std::string::npos) << text;
}

// An actor named "agent-7 <- root" is one hop, and "a@b" is not an issuer: names
// that could be read as separators, or that hide them behind look-alike or
// invisible characters, print quoted and escaped.
TEST(LineageFormatTest, NamesThatLookLikeSeparatorsAreQuoted) {
  TempDir dir;
  const std::string path = dir.File("audit.log");
  {
    auto log = AuditLog::Open({.path = path});
    ASSERT_TRUE(log.ok()) << log.status();
    ASSERT_TRUE(
        (*log)
            ->Append(Hop("fake", "",
                         {{"agent-7 <- root", ""},
                          {"tool@https://evil.example", ""},
                          {"nbsp\u00a0<-\u00a0x", "https://idp.example"},
                          {"rtl\u202eabc", ""}},
                         "read write"))
            .ok());
  }
  auto hops = Lineage(path, "fake");
  ASSERT_TRUE(hops.ok()) << hops.status();
  std::string text = FormatLineage(*hops);
  EXPECT_NE(text.find("actors=[\"agent-7 <- root\" <- "
                      "\"tool@https://evil.example\" <- "
                      "\"nbsp\\u00a0<-\\u00a0x\"@https://idp.example <- "
                      "\"rtl\\u202eabc\"]"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("scope=\"read write\""), std::string::npos) << text;
}

TEST_F(LineageTest, UnknownJtiIsNotFound) {
  EXPECT_EQ(Lineage(path_, "nobody").status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(Lineage(path_, "").status().code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace tokensign::audit
