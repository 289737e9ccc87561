// ReplaceFile, which writes the daemon's pid and ready files: a new file
// (O_EXCL|O_NOFOLLOW) with exactly the given mode, renamed over the path, so a
// symlink planted at the path or at a predictable temporary name never
// redirects the write (issue 11 item 9).
#include "signer/service/state_file.h"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

namespace tokensign::service {
namespace {

std::string Read(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

class StateFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/tokensign-state-file-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    old_umask_ = ::umask(077);  // the mode must not depend on the umask
  }
  void TearDown() override {
    ::umask(old_umask_);
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
  std::string Path(const std::string& name) const { return dir_ + "/" + name; }
  void Plant(const std::string& name, const std::string& content) {
    std::ofstream(Path(name)) << content;
  }

  std::string dir_;
  mode_t old_umask_ = 0;
};

TEST_F(StateFileTest, NewFileHasExactlyMode0644AndTheContent) {
  ASSERT_TRUE(ReplaceFile(Path("ready.json"), "{\"pid\":1}\n").ok());
  struct stat st {};
  ASSERT_EQ(::lstat(Path("ready.json").c_str(), &st), 0);
  EXPECT_TRUE(S_ISREG(st.st_mode));
  EXPECT_EQ(st.st_mode & 07777, 0644u);
  EXPECT_EQ(Read(Path("ready.json")), "{\"pid\":1}\n");
  // Replacing keeps the mode and leaves no temporary file behind.
  ASSERT_TRUE(ReplaceFile(Path("ready.json"), "2\n").ok());
  EXPECT_EQ(Read(Path("ready.json")), "2\n");
  int entries = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir_)) {
    (void)e;
    ++entries;
  }
  EXPECT_EQ(entries, 1);
}

TEST_F(StateFileTest, PlantedSymlinksAreReplacedNeverWrittenThrough) {
  Plant("victim", "precious\n");
  Plant("victim-tmp", "also precious\n");
  ASSERT_EQ(::chmod(Path("victim").c_str(), 0600), 0);
  // At the path itself, and at the temporary name the old writer used.
  ASSERT_EQ(::symlink(Path("victim").c_str(), Path("tokensignd.pid").c_str()), 0);
  ASSERT_EQ(::symlink(Path("victim-tmp").c_str(), Path("tokensignd.pid.tmp").c_str()), 0);
  ASSERT_TRUE(ReplaceFile(Path("tokensignd.pid"), "4242\n").ok());
  struct stat st {};
  ASSERT_EQ(::lstat(Path("tokensignd.pid").c_str(), &st), 0);
  EXPECT_TRUE(S_ISREG(st.st_mode));
  EXPECT_EQ(st.st_mode & 07777, 0644u);
  EXPECT_EQ(Read(Path("tokensignd.pid")), "4242\n");
  EXPECT_EQ(Read(Path("victim")), "precious\n");
  EXPECT_EQ(Read(Path("victim-tmp")), "also precious\n");
  ASSERT_EQ(::stat(Path("victim").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0600u);
}

TEST_F(StateFileTest, FailureNamesTheFileAndLeavesNothing) {
  absl::Status st = ReplaceFile(Path("no-such-dir/ready.json"), "x");
  EXPECT_FALSE(st.ok());
  EXPECT_NE(std::string(st.message()).find("create " + Path("no-such-dir/ready.json.tmp-")),
            std::string::npos)
      << st;
  // Renaming onto a directory fails: the temporary file is removed again.
  ASSERT_EQ(::mkdir(Path("ready.json").c_str(), 0755), 0);
  ASSERT_EQ(::mkdir(Path("ready.json/sub").c_str(), 0755), 0);
  st = ReplaceFile(Path("ready.json"), "x");
  EXPECT_FALSE(st.ok());
  EXPECT_NE(std::string(st.message()).find("rename"), std::string::npos) << st;
  int entries = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir_)) {
    (void)e;
    ++entries;
  }
  EXPECT_EQ(entries, 1);  // only the directory
}

}  // namespace
}  // namespace tokensign::service
