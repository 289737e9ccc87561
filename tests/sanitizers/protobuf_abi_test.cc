// A sanitizer build must lay out protobuf's map fields as Debian's (uninstrumented) libprotobuf
// does. Under -fsanitize=thread GCC defines __SANITIZE_THREAD__, and protobuf 3.21's
// map_field.h then gives MapFieldBase two more members: code compiled so reads the
// `fields` map of a google.protobuf.Struct (whose code lives in libprotobuf) 8 bytes off,
// and crashed (SEGV in Map::operator[]) before the TSan build undefined the macro
// (CMakeLists.txt). These tests cross the library boundary both ways: maps filled by inline
// header code are read by the library (serialization, JSON) and the other way round.
//
// Thread-safety: single-threaded tests.
#include <google/protobuf/struct.pb.h>
#include <google/protobuf/util/json_util.h>
#include <gtest/gtest.h>

#include <string>

namespace tokensign::testing {
namespace {

TEST(ProtobufAbiTest, StructMapFilledInlineIsReadByTheLibrary) {
  google::protobuf::Struct root;
  (*root.mutable_fields())["a"].set_string_value("x");
  google::protobuf::Struct* s = &root;
  for (int i = 0; i < 3; ++i) s = (*s->mutable_fields())["n"].mutable_struct_value();
  (*s->mutable_fields())["b"].set_number_value(2);

  std::string json;  // one key per level: a map's order is not fixed
  ASSERT_TRUE(google::protobuf::util::MessageToJsonString(
                  root.fields().at("n").struct_value(), &json)
                  .ok());
  EXPECT_EQ(json, R"({"n":{"n":{"b":2}}})");

  google::protobuf::Struct copy;
  ASSERT_TRUE(copy.ParseFromString(root.SerializeAsString()));
  EXPECT_EQ(copy.fields().size(), 2u);
  EXPECT_EQ(copy.fields().at("a").string_value(), "x");
}

TEST(ProtobufAbiTest, StructMapFilledByTheLibraryIsReadInline) {
  google::protobuf::Struct root;
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(
                  R"({"k":"v","deep":{"deeper":{"n":1.5}}})", &root)
                  .ok());
  ASSERT_EQ(root.fields().size(), 2u);
  EXPECT_EQ(root.fields().at("k").string_value(), "v");
  const google::protobuf::Struct& deeper =
      root.fields().at("deep").struct_value().fields().at("deeper").struct_value();
  EXPECT_EQ(deeper.fields().at("n").number_value(), 1.5);
}

}  // namespace
}  // namespace tokensign::testing
