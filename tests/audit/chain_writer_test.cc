// ChainWriter without a disk: the lines it writes are the bytes AssembleLine
// makes, each links to the one before it (prev = SHA-256 of that line), and a
// writer reset from a file's tail continues the same chain.
#include "signer/audit/chain_writer.h"

#include <string>
#include <vector>

#include "absl/strings/str_split.h"
#include "gtest/gtest.h"
#include "signer/audit/audit_format.h"
#include "signer/audit/checkpoint.h"
#include "tests/audit/audit_test_util.h"

namespace tokensign::audit {
namespace {

using testing::MakeRecord;

std::vector<std::string> Lines(const std::string& data) {
  std::vector<std::string> lines = absl::StrSplit(data, '\n');
  EXPECT_FALSE(lines.empty());
  EXPECT_EQ(lines.back(), "");  // every line ends with '\n'
  lines.pop_back();
  return lines;
}

std::string GenesisLine() {
  GenesisInfo g;
  g.log_name = "test";
  g.log_id = "log-1";
  g.created = absl::FromUnixSeconds(1714564800);
  return FormatGenesisLine(g);
}

TEST(ChainWriterTest, WritesTheBytesAssembleLineMakes) {
  ChainWriter chain;
  chain.Reset(7, std::string(64, 'b'));
  const std::string body = FormatDecisionBody(MakeRecord("j1"));
  std::string out = "already queued\n";
  EXPECT_EQ(chain.AppendBody(body, &out), 7);
  const std::string line = AssembleLine(7, body, std::string(64, 'b'));
  EXPECT_EQ(out, "already queued\n" + line + "\n");
  EXPECT_EQ(chain.prev_hash(), Sha256Hex(line));
  EXPECT_EQ(chain.next_seq(), 8);
}

TEST(ChainWriterTest, EveryLineLinksToTheOneBefore) {
  ChainWriter chain;
  std::string out;
  chain.Reset(0, "");
  EXPECT_EQ(chain.AppendRaw(GenesisLine(), 0, &out), 0);
  for (int i = 1; i <= 5; ++i) {
    EXPECT_EQ(chain.AppendBody(
                  FormatDecisionBody(MakeRecord("j" + std::to_string(i))),
                  &out),
              i);
  }
  const std::vector<std::string> lines = Lines(out);
  ASSERT_EQ(lines.size(), 6u);
  auto genesis = ParseAuditLine(lines[0]);
  ASSERT_TRUE(genesis.ok()) << genesis.status();
  EXPECT_EQ(genesis->type, LineType::kGenesis);
  for (size_t i = 1; i < lines.size(); ++i) {
    auto parsed = ParseAuditLine(lines[i]);
    ASSERT_TRUE(parsed.ok()) << parsed.status() << " line " << i;
    EXPECT_EQ(parsed->type, LineType::kDecision);
    EXPECT_EQ(parsed->seq, static_cast<int64_t>(i));
    EXPECT_EQ(parsed->prev, Sha256Hex(lines[i - 1])) << "line " << i;
    EXPECT_EQ(parsed->record.jti, "j" + std::to_string(i));
  }
  EXPECT_EQ(chain.prev_hash(), Sha256Hex(lines.back()));
}

TEST(ChainWriterTest, ResetFromATailContinuesTheSameChain) {
  ChainWriter first;
  std::string out;
  first.Reset(0, "");
  first.AppendRaw(GenesisLine(), 0, &out);
  first.AppendBody(FormatDecisionBody(MakeRecord("a")), &out);
  // A second writer resumes from the last line, as Open does after a restart.
  const std::string last = Lines(out).back();
  ChainWriter resumed;
  resumed.Reset(2, Sha256Hex(last));
  first.AppendBody(FormatDecisionBody(MakeRecord("b")), &out);
  std::string other;
  resumed.AppendBody(FormatDecisionBody(MakeRecord("b")), &other);
  EXPECT_EQ(Lines(out).back() + "\n", other);
  EXPECT_EQ(first.prev_hash(), resumed.prev_hash());
}

}  // namespace
}  // namespace tokensign::audit
