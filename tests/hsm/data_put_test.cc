// DataStore::Put replaces a record without an object search when it can
// (hsm/data_objects.h): it destroys the copy its last Put created by handle,
// after reading back that the handle still is that record. On SoftHSM a
// search is linear in the token's objects, and the daemon Puts its audit
// anchor at every checkpoint, so with 1,000 keys the searches cost signing
// throughput (issue 16).
//
// Counted, not timed: the token is reached through the fault module
// (tests/fault/fault_module.c) with a 1 ms DELAY rule on C_FindObjectsInit,
// whose stats file counts the delays, i.e. the searches. Objects are changed
// behind the store's back with raw PKCS#11 calls on the same module, as a
// second program holding the PIN could. Test-only; the test thread.
#include <gtest/gtest.h>

#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "hsm/hsm.h"
#include "hsm/hsm_impl.h"
#include "hsm/pkcs11.h"
#include "tests/support/fault_stats.h"
#include "tests/support/fault_rules.h"
#include "tests/support/softhsm_token.h"

#ifndef TOKENSIGN_FAULT_MODULE
#error "TOKENSIGN_FAULT_MODULE must name the built fault module"
#endif

namespace tokensign::hsm {
namespace {

constexpr char kSearchDelay[] = "C_FindObjectsInit DELAY always 1\n";

class DataPutTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto& token = tokensign::testing::GlobalToken();
    control_ = token.dir() + "/fault.ctl";
    stats_ = token.dir() + "/fault.stats";
    SetRules(kSearchDelay);
    setenv("TOKENSIGN_FAULT_CONTROL", control_.c_str(), 1);
    setenv("TOKENSIGN_FAULT_TARGET", token.module_path().c_str(), 1);
    setenv("TOKENSIGN_FAULT_STATS", stats_.c_str(), 1);
    ASSERT_NO_FATAL_FAILURE(Open());
  }

  void TearDown() override {
    SetRules("");
    Close();
  }

  void Open() {
    HsmConfig config = tokensign::testing::GlobalToken().config();
    config.module_path = TOKENSIGN_FAULT_MODULE;
    auto opened = Hsm::Open(config);
    ASSERT_TRUE(opened.ok()) << opened.status();
    hsm_ = std::move(*opened);
    f_ = hsm_->impl().RawFunctionList();
    // The pool's login is the token's: this session sees private objects.
    ASSERT_EQ(f_->C_OpenSession(hsm_->impl().slot(),
                                CKF_SERIAL_SESSION | CKF_RW_SESSION, nullptr,
                                nullptr, &session_),
              CKR_OK);
  }

  void Close() {
    if (hsm_ != nullptr) (void)f_->C_CloseSession(session_);
    hsm_.reset();
  }

  // As a restarted daemon: a new Hsm on the same token.
  void Reopen() {
    Close();
    Open();
  }

  // Replaces the fault rules atomically (a new generation line re-arms the
  // counts even for the same rules).
  void SetRules(const std::string& rules) {
    ::tokensign::testing::WriteFaultRules(control_, rules);
  }

  // Object searches so far (the module's "delayed" count).
  long Searches() { return tokensign::testing::FaultStats(stats_)["delayed"]; }

  DataStore& data() { return hsm_->impl().data(); }

  // A CKO_DATA object made with raw calls: `label`, `application`, private
  // or not.
  CK_OBJECT_HANDLE CreateData(const std::string& label,
                              const std::string& application, bool private_,
                              const std::string& value) {
    CK_OBJECT_CLASS cls = CKO_DATA;
    CK_BBOOL yes = CK_TRUE;
    CK_BBOOL priv = private_ ? CK_TRUE : CK_FALSE;
    CK_ATTRIBUTE tmpl[] = {
        {CKA_CLASS, &cls, sizeof(cls)},
        {CKA_TOKEN, &yes, sizeof(yes)},
        {CKA_PRIVATE, &priv, sizeof(priv)},
        {CKA_APPLICATION, const_cast<char*>(application.data()),
         application.size()},
        {CKA_LABEL, const_cast<char*>(label.data()), label.size()},
        {CKA_VALUE, const_cast<char*>(value.data()), value.size()},
    };
    CK_OBJECT_HANDLE h = CK_INVALID_HANDLE;
    EXPECT_EQ(f_->C_CreateObject(session_, tmpl, 6, &h), CKR_OK);
    return h;
  }

  // The object's CKA_VALUE, or "<gone>" when the handle names no object.
  std::string ValueOf(CK_OBJECT_HANDLE h) {
    char buf[256];
    CK_ATTRIBUTE a = {CKA_VALUE, buf, sizeof(buf)};
    const CK_RV rv = f_->C_GetAttributeValue(session_, h, &a, 1);
    if (rv == CKR_OBJECT_HANDLE_INVALID) return "<gone>";
    EXPECT_EQ(rv, CKR_OK);
    return rv == CKR_OK ? std::string(buf, a.ulValueLen) : "<error>";
  }

  std::vector<std::string> All(const std::string& name) {
    auto all = hsm_->GetAllData(name);
    EXPECT_TRUE(all.ok()) << all.status();
    return all.ok() ? *all : std::vector<std::string>{};
  }

  std::string control_;
  std::string stats_;
  std::unique_ptr<Hsm> hsm_;
  CK_FUNCTION_LIST_PTR f_ = nullptr;
  CK_SESSION_HANDLE session_ = CK_INVALID_HANDLE;
};

TEST_F(DataPutTest, RepeatedPutsOfANameSearchOnlyTheFirstTime) {
  long before = Searches();
  ASSERT_TRUE(hsm_->PutData("anchor-a", "v0").ok());
  const long first = Searches() - before;
  ASSERT_GT(first, 0) << "the fault module counted no search";
  before = Searches();
  for (int i = 1; i <= 20; ++i) {
    ASSERT_TRUE(hsm_->PutData("anchor-a", absl::StrCat("v", i)).ok()) << i;
  }
  EXPECT_EQ(Searches() - before, 0);
  EXPECT_EQ(All("anchor-a"), std::vector<std::string>{"v20"});
  EXPECT_EQ(data().CountPublic("anchor-a").value_or(-1), 0);
}

// The module handed the remembered handle to another object (the record was
// destroyed behind the store's back, or renumbered): that object is never
// destroyed, and the Put still leaves exactly one record of the name.
TEST_F(DataPutTest, AHandleReusedForAnotherObjectIsNeverDestroyed) {
  struct Other {
    std::string what;
    std::string label;
    std::string application;
    bool private_;
  };
  const std::vector<Other> others = {
      {"a private object of another program", "their-record", "someone-else",
       true},
      {"another tokensign record", "reused-other", "tokensign", true},
      {"a public look-alike (made without the PIN)", "reused", "tokensign",
       false},
  };
  int i = 0;
  for (const Other& o : others) {
    for (bool record_destroyed : {true, false}) {
      const std::string name = absl::StrCat("reused-", i++);
      SCOPED_TRACE(absl::StrCat(o.what, record_destroyed
                                            ? ", record destroyed"
                                            : ", record renumbered"));
      ASSERT_TRUE(hsm_->PutData(name, "v1").ok());
      const CK_OBJECT_HANDLE record = data().RememberedForTesting(name);
      ASSERT_NE(record, CK_INVALID_HANDLE);
      if (record_destroyed) {
        ASSERT_EQ(f_->C_DestroyObject(session_, record), CKR_OK);
      }
      const std::string label = o.label == "reused" ? name : o.label;
      const CK_OBJECT_HANDLE other =
          CreateData(label, o.application, o.private_, "keep me");
      ASSERT_NE(other, CK_INVALID_HANDLE);
      data().RememberForTesting(name, other);

      ASSERT_TRUE(hsm_->PutData(name, "v2").ok());
      EXPECT_EQ(ValueOf(other), "keep me");
      EXPECT_EQ(All(name), std::vector<std::string>{"v2"});
      if (!record_destroyed) {
        EXPECT_EQ(ValueOf(record), "<gone>");
      }
      EXPECT_EQ(f_->C_DestroyObject(session_, other), CKR_OK);
    }
  }
}

TEST_F(DataPutTest, ARecordDestroyedBehindItsBackIsSearchedFor) {
  ASSERT_TRUE(hsm_->PutData("gone", "v1").ok());
  ASSERT_EQ(f_->C_DestroyObject(session_, data().RememberedForTesting("gone")),
            CKR_OK);
  const long before = Searches();
  ASSERT_TRUE(hsm_->PutData("gone", "v2").ok());
  EXPECT_EQ(Searches() - before, 1);
  EXPECT_EQ(All("gone"), std::vector<std::string>{"v2"});
  // Remembered again: the next Put does not search.
  const long again = Searches();
  ASSERT_TRUE(hsm_->PutData("gone", "v3").ok());
  EXPECT_EQ(Searches() - again, 0);
  EXPECT_EQ(All("gone"), std::vector<std::string>{"v3"});
}

// Copies the store did not create through Put (Add's, one left by a crash
// inside Put in an earlier process) are removed by the next Put as before.
TEST_F(DataPutTest, CopiesPutDidNotMakeAreRemovedByTheNextPut) {
  ASSERT_TRUE(hsm_->PutData("copies", "v1").ok());
  ASSERT_TRUE(hsm_->AddData("copies", "added").ok());
  ASSERT_TRUE(hsm_->PutData("copies", "v2").ok());
  EXPECT_EQ(All("copies"), std::vector<std::string>{"v2"});

  ASSERT_TRUE(hsm_->PutData("copies", "v3").ok());
  ASSERT_TRUE(hsm_->RemoveData("copies", "v3").ok());
  EXPECT_EQ(data().RememberedForTesting("copies"), CK_INVALID_HANDLE);
  ASSERT_TRUE(hsm_->PutData("copies", "v4").ok());
  EXPECT_EQ(All("copies"), std::vector<std::string>{"v4"});

  // A fresh Hsm (a restarted daemon) remembers nothing: its first Put
  // searches and removes both copies a crash between create and destroy
  // would have left.
  ASSERT_TRUE(hsm_->AddData("copies", "v5").ok());
  ASSERT_NO_FATAL_FAILURE(Reopen());
  EXPECT_EQ(All("copies").size(), 2u);
  ASSERT_TRUE(hsm_->PutData("copies", "v6").ok());
  EXPECT_EQ(All("copies"), std::vector<std::string>{"v6"});
}

// A C_CreateObject whose reply is lost (the token made the object, the
// session died): the retry on a new session searches instead of trusting the
// remembered handle, so no extra copy survives.
TEST_F(DataPutTest, ARetryAfterALostReplyLeavesOneCopy) {
  ASSERT_TRUE(hsm_->PutData("lost-reply", "v1").ok());
  ASSERT_TRUE(hsm_->PutData("lost-reply", "v2").ok());
  SetRules(absl::StrCat(kSearchDelay,
                        "C_CreateObject CKR_SESSION_HANDLE_INVALID 1 after\n"));
  const long before = Searches();
  ASSERT_TRUE(hsm_->PutData("lost-reply", "v3").ok());
  EXPECT_EQ(Searches() - before, 1);  // the retry's
  EXPECT_EQ(All("lost-reply"), std::vector<std::string>{"v3"});
  const long again = Searches();
  ASSERT_TRUE(hsm_->PutData("lost-reply", "v4").ok());
  EXPECT_EQ(Searches() - again, 0);
  EXPECT_EQ(All("lost-reply"), std::vector<std::string>{"v4"});
}

}  // namespace
}  // namespace tokensign::hsm
