// VerifyAuditChain: every kind of tampering is found at the right line.
#include "signer/audit/audit_verify.h"

#include <utility>

#include "gtest/gtest.h"
#include "signer/audit/audit_format.h"
#include "signer/audit/audit_log.h"
#include "tests/audit/audit_test_util.h"

namespace tokensign::audit {
namespace {

using testing::MakeRecord;
using testing::ReadAll;
using testing::ReadLines;
using testing::TempDir;
using testing::WriteLines;

class AuditVerifyTest : public ::testing::Test {
 protected:
  void SetUp() override {
    path_ = dir_.File("audit.log");
    auto log = AuditLog::Open({.path = path_});
    ASSERT_TRUE(log.ok()) << log.status();
    for (int i = 1; i <= 10; ++i) {
      ASSERT_TRUE((*log)->Append(MakeRecord("j" + std::to_string(i))).ok());
    }
    lines_ = ReadLines(
        path_);  // line N (1-based) = lines_[N-1]; record jN on line N+1
    ASSERT_EQ(lines_.size(), 11u);
  }

  ChainBreak Break() {
    auto r = VerifyAuditChain(path_);
    EXPECT_TRUE(r.ok()) << r.status();
    if (!r.ok()) return {};
    EXPECT_FALSE(r->ok) << FormatVerifyReport(*r);
    if (!r->first_break) return {};
    EXPECT_EQ(r->first_break->file, path_);
    return *r->first_break;
  }

  TempDir dir_;
  std::string path_;
  std::vector<std::string> lines_;
};

TEST_F(AuditVerifyTest, IntactChainIsOk) {
  auto r = VerifyAuditChain(path_);
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(r->ok);
  EXPECT_EQ(r->records, 10);
  EXPECT_NE(FormatVerifyReport(*r).find("OK: 1 file(s), 11 lines, 10 records"),
            std::string::npos)
      << FormatVerifyReport(*r);
}

TEST_F(AuditVerifyTest, EditedByteInMiddleLineIsFoundAtThatLine) {
  lines_[5][lines_[5].find("user-j5") + 5] = 'k';  // line 6
  WriteLines(path_, lines_);
  ChainBreak b = Break();
  EXPECT_EQ(b.kind, BreakKind::kHashMismatch);
  EXPECT_EQ(b.line, 6) << b.detail;
  EXPECT_NE(b.detail.find("altered"), std::string::npos);
}

// The altered line is not among the lines reported verified (issue 12: line 3
// altered used to report "verified before the break: 3 lines").
TEST_F(AuditVerifyTest, AlteredLineIsNotCountedAsVerified) {
  lines_[2][lines_[2].find("user-j2") + 5] = 'k';  // line 3 = seq 2
  WriteLines(path_, lines_);
  auto r = VerifyAuditChain(path_);
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_TRUE(r->first_break.has_value());
  EXPECT_EQ(r->first_break->line, 3) << r->first_break->detail;
  EXPECT_EQ(r->lines, 2);    // genesis + line 2
  EXPECT_EQ(r->records, 1);  // j1
  EXPECT_EQ(r->last_seq, 1);
  EXPECT_EQ(r->head_sha256, Sha256Hex(lines_[1]));
  EXPECT_NE(FormatVerifyReport(*r).find("verified before the break: 2 lines"),
            std::string::npos)
      << FormatVerifyReport(*r);
}

TEST_F(AuditVerifyTest, EditedPrevFieldIsFoundAtThatLine) {
  std::string& l = lines_[5];
  size_t p = l.find("\"prev\":\"") + 8;
  l[p] = l[p] == '0' ? '1' : '0';
  WriteLines(path_, lines_);
  ChainBreak b = Break();
  EXPECT_EQ(b.kind, BreakKind::kHashMismatch);
  EXPECT_EQ(b.line, 6) << b.detail;
}

TEST_F(AuditVerifyTest, EditedGenesisIsFound) {
  lines_[0].replace(lines_[0].find("tokensign"), 9, "tokensigX");
  WriteLines(path_, lines_);
  ChainBreak b = Break();
  EXPECT_EQ(b.kind, BreakKind::kHashMismatch);
  EXPECT_EQ(b.line, 1) << b.detail;
}

TEST_F(AuditVerifyTest, DeletedLineIsASeqGap) {
  lines_.erase(lines_.begin() + 5);  // drop line 6 (seq 5)
  WriteLines(path_, lines_);
  ChainBreak b = Break();
  EXPECT_EQ(b.kind, BreakKind::kSeqGap);
  EXPECT_EQ(b.line, 6) << b.detail;
  EXPECT_NE(b.detail.find("expected seq 5, found 6"), std::string::npos)
      << b.detail;
}

TEST_F(AuditVerifyTest, SwappedLinesAreReordered) {
  std::swap(lines_[4], lines_[5]);  // lines 5 and 6
  WriteLines(path_, lines_);
  ChainBreak b = Break();
  EXPECT_EQ(b.kind, BreakKind::kReordered);
  EXPECT_EQ(b.line, 5) << b.detail;
}

TEST_F(AuditVerifyTest, TruncatedMidLineIsATornTail) {
  std::string all = ReadAll(path_);
  size_t line8 = 0;
  for (int i = 0; i < 7; ++i) line8 = all.find('\n', line8) + 1;
  testing::WriteAll(path_, all.substr(0, line8 + 30));  // cut inside line 8
  ChainBreak b = Break();
  EXPECT_EQ(b.kind, BreakKind::kTornTail);
  EXPECT_EQ(b.line, 8) << b.detail;
}

TEST_F(AuditVerifyTest, UnparsableLineIsFound) {
  lines_[3] = lines_[3].substr(0, 40);  // newline-terminated garbage on line 4
  WriteLines(path_, lines_);
  ChainBreak b = Break();
  EXPECT_EQ(b.kind, BreakKind::kUnparsable);
  EXPECT_EQ(b.line, 4) << b.detail;
}

TEST_F(AuditVerifyTest, DeletedGenesisIsMissingGenesis) {
  lines_.erase(lines_.begin());
  WriteLines(path_, lines_);
  ChainBreak b = Break();
  EXPECT_EQ(b.kind, BreakKind::kMissingGenesis);
  EXPECT_EQ(b.line, 1);
}

TEST_F(AuditVerifyTest, SplicedSecondLogIsUnexpectedGenesis) {
  lines_.insert(lines_.begin() + 3, lines_[0]);
  WriteLines(path_, lines_);
  ChainBreak b = Break();
  EXPECT_EQ(b.kind, BreakKind::kUnexpectedGenesis);
  EXPECT_EQ(b.line, 4);
}

TEST(AuditVerifyMissingTest, MissingFileIsNotFound) {
  TempDir dir;
  auto r = VerifyAuditChain(dir.File("nope.log"));
  EXPECT_EQ(r.status().code(), absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace tokensign::audit
