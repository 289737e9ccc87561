#include "signer/service/raw_messages.h"

#include <google/protobuf/descriptor.h>
#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/stubs/common.h>
#include <google/protobuf/wire_format_lite.h>
#include <grpcpp/impl/codegen/proto_utils.h>
#include <grpcpp/support/proto_buffer_reader.h>
#include <grpcpp/support/proto_buffer_writer.h>

#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"

namespace tokensign::service {
namespace {

using google::protobuf::Descriptor;
using google::protobuf::FieldDescriptor;
using google::protobuf::Message;
using google::protobuf::internal::WireFormatLite;
using google::protobuf::io::CodedInputStream;

// What is wrong with a request, found by Walk.
struct Finding {
  std::string field;  // "subject", "actor_chain[1].sub", "extra_claims"; "" =
                      // the request as a whole
  std::string rule;
};

// The bytes of `raw` in one string (cold path: only for a malformed request).
std::string Flatten(const grpc::ByteBuffer& raw) {
  std::string out;
  if (!raw.Valid()) return out;
  grpc::ByteBuffer copy(raw);  // ProtoBufferReader wants a mutable buffer
  grpc::ProtoBufferReader reader(&copy);
  const void* data = nullptr;
  int size = 0;
  while (reader.Next(&data, &size))
    out.append(static_cast<const char*>(data), static_cast<size_t>(size));
  return out;
}

bool InsideProtobufType(const Descriptor* d) {
  return d->file()->package() == "google.protobuf";
}

// Walks one message's fields from `in` (up to its limit or the end) as the
// protobuf parser would read them, guided by `d`. Returns false with `*f`
// filled at the first problem. `budget` is the number of nested messages still
// allowed below this one (protobuf's recursion limit counts the same way), so
// this recursion is never deeper than the limit. `path` names this message
// (""  for the request); `named` is false inside google.protobuf types, whose
// fields are named by the request field that holds them. At the top level
// (`salvage` != null) valid singular string fields are copied to `salvage`.
bool Walk(CodedInputStream* in, const Descriptor* d, int budget,
          const std::string& path, bool named, Message* salvage, Finding* f) {
  auto name = [&](const FieldDescriptor* fd, int index) {
    if (!named) return path;
    std::string n =
        path.empty() ? fd->name() : absl::StrCat(path, ".", fd->name());
    if (index >= 0) absl::StrAppend(&n, "[", index, "]");
    return n;
  };
  std::vector<int> seen(static_cast<size_t>(d->field_count()), 0);
  for (;;) {
    const uint32_t tag = in->ReadTag();
    if (tag == 0) {
      if (in->ConsumedEntireMessage()) return true;
      *f = {path, "malformed protobuf wire data (bad tag)"};
      return false;
    }
    const int number = WireFormatLite::GetTagFieldNumber(tag);
    const FieldDescriptor* fd = d->FindFieldByNumber(number);
    if (fd == nullptr ||
        WireFormatLite::GetTagWireType(tag) !=
            WireFormatLite::WIRETYPE_LENGTH_DELIMITED ||
        (fd->type() != FieldDescriptor::TYPE_STRING &&
         fd->type() != FieldDescriptor::TYPE_MESSAGE)) {
      // Scalars, unknown fields and mismatched wire types: the parser keeps
      // or skips them without recursion; only their framing can be wrong.
      if (!WireFormatLite::SkipField(in, tag)) {
        *f = {path, absl::StrCat("malformed protobuf wire data (field ", number,
                                 " cut short or mis-framed)")};
        return false;
      }
      continue;
    }
    const int index = fd->is_repeated() ? seen[fd->index()]++ : -1;
    uint32_t length = 0;
    if (!in->ReadVarint32(&length) ||
        static_cast<int64_t>(length) > in->BytesUntilTotalBytesLimit() ||
        (in->BytesUntilLimit() >= 0 &&
         static_cast<int64_t>(length) > in->BytesUntilLimit())) {
      *f = {name(fd, index),
            "malformed protobuf wire data (length past the end)"};
      return false;
    }
    if (fd->type() == FieldDescriptor::TYPE_STRING) {
      std::string value;
      if (!in->ReadString(&value, static_cast<int>(length))) {
        *f = {name(fd, index),
              "malformed protobuf wire data (string cut short)"};
        return false;
      }
      // The parser's own check (protobuf 3.21 keeps it in `internal`).
      if (!google::protobuf::internal::IsStructurallyValidUTF8(value)) {
        *f = {name(fd, index), "invalid UTF-8 in a string field"};
        return false;
      }
      if (salvage != nullptr && !fd->is_repeated() &&
          fd->containing_oneof() == nullptr) {
        salvage->GetReflection()->SetString(salvage, fd, std::move(value));
      }
      continue;
    }
    const Descriptor* sub = fd->message_type();
    const bool sub_named = named && !InsideProtobufType(sub);
    if (budget == 0) {
      *f = {name(fd, index),
            absl::StrCat("nested deeper than the protobuf parser's limit of ",
                         CodedInputStream::GetDefaultRecursionLimit(),
                         " messages (one google.protobuf.Struct level is 3)")};
      return false;
    }
    const CodedInputStream::Limit limit =
        in->PushLimit(static_cast<int>(length));
    if (!Walk(in, sub, budget - 1, name(fd, index), sub_named, nullptr, f))
      return false;
    in->PopLimit(limit);
  }
}

absl::Status Malformed(const Finding& f, const Descriptor* type) {
  return absl::InvalidArgumentError(
      absl::StrCat(f.field.empty() ? "request" : f.field, ": ", f.rule,
                   " (not a valid ", type->full_name(), ")"));
}

// proto3 enums are open: the parser keeps any int32 as the field's value. A
// value the request's enum does not define is refused here, naming the field,
// so no handler maps it to a default (RotateKey's mode 7 once became a
// planned rotation). Top-level singular enum fields only: the requests have
// no others.
absl::Status CheckEnums(const Message& msg) {
  const Descriptor* d = msg.GetDescriptor();
  const google::protobuf::Reflection* r = msg.GetReflection();
  for (int i = 0; i < d->field_count(); ++i) {
    const FieldDescriptor* fd = d->field(i);
    if (fd->type() != FieldDescriptor::TYPE_ENUM || fd->is_repeated()) continue;
    const int value = r->GetEnumValue(msg, fd);
    const google::protobuf::EnumDescriptor* e = fd->enum_type();
    if (e->FindValueByNumber(value) != nullptr) continue;
    std::string allowed;
    for (int v = 0; v < e->value_count(); ++v) {
      if (e->value(v)->number() == 0) continue;  // the unset value
      absl::StrAppend(&allowed, allowed.empty() ? "" : ", ", e->value(v)->name());
    }
    return absl::InvalidArgumentError(absl::StrCat(fd->name(), ": ", value,
                                                   " is not a ", e->name(),
                                                   " (allowed: ", allowed, ")"));
  }
  return absl::OkStatus();
}

// Parses `raw` like gRPC's generated handler (same reader, same limits).
bool FastParse(const grpc::ByteBuffer& raw, Message* out) {
  grpc::ByteBuffer copy(raw);  // ProtoBufferReader wants a mutable buffer
  grpc::ProtoBufferReader reader(&copy);
  return reader.status().ok() && out->ParseFromZeroCopyStream(&reader);
}

}  // namespace

absl::Status DiagnoseMalformed(std::string_view bytes, Message* out) {
  out->Clear();
  CodedInputStream in(reinterpret_cast<const uint8_t*>(bytes.data()),
                      static_cast<int>(bytes.size()));
  // Makes BytesUntilTotalBytesLimit() the bytes left: a length prefix that
  // runs past the end is found where it is.
  in.SetTotalBytesLimit(static_cast<int>(bytes.size()));
  Finding f;
  if (Walk(&in, out->GetDescriptor(),
           CodedInputStream::GetDefaultRecursionLimit(), "", true, out, &f)) {
    // The walk found nothing the parser refuses: say so rather than guess.
    f = {"", "refused by the protobuf parser"};
  }
  return Malformed(f, out->GetDescriptor());
}

absl::Status ParseRequest(const grpc::ByteBuffer& raw, Message* out) {
  if (!raw.Valid()) {
    out->Clear();
    return Malformed({"", "no message received"}, out->GetDescriptor());
  }
  if (FastParse(raw, out)) return CheckEnums(*out);
  return DiagnoseMalformed(Flatten(raw), out);
}

absl::Status ParseBatch(const grpc::ByteBuffer& raw, v1::SignTokensRequest* out,
                        std::vector<absl::Status>* item_status) {
  item_status->clear();
  if (raw.Valid() && FastParse(raw, out)) {
    item_status->assign(static_cast<size_t>(out->requests_size()),
                        absl::OkStatus());
    return absl::OkStatus();
  }
  if (!raw.Valid()) return ParseRequest(raw, out);
  // Split into items; each item is parsed (or diagnosed) on its own.
  out->Clear();
  const std::string bytes = Flatten(raw);
  CodedInputStream in(reinterpret_cast<const uint8_t*>(bytes.data()),
                      static_cast<int>(bytes.size()));
  constexpr uint32_t kItemTag =
      WireFormatLite::MakeTag(v1::SignTokensRequest::kRequestsFieldNumber,
                              WireFormatLite::WIRETYPE_LENGTH_DELIMITED);
  for (;;) {
    const uint32_t tag = in.ReadTag();
    if (tag == 0) {
      if (in.ConsumedEntireMessage()) break;
      return DiagnoseMalformed(bytes, out);
    }
    if (tag != kItemTag) {  // an unknown field: framing only
      if (!WireFormatLite::SkipField(&in, tag))
        return DiagnoseMalformed(bytes, out);
      continue;
    }
    std::string item;
    uint32_t length = 0;
    if (!in.ReadVarint32(&length) ||
        !in.ReadString(&item, static_cast<int>(length))) {
      return DiagnoseMalformed(bytes, out);
    }
    v1::SignTokenRequest* req = out->add_requests();
    if (req->ParseFromString(item)) {
      item_status->push_back(absl::OkStatus());
    } else {
      item_status->push_back(DiagnoseMalformed(item, req));
    }
  }
  return absl::OkStatus();
}

absl::Status SerializeResponse(const Message& msg, grpc::ByteBuffer* out) {
  bool own = false;
  grpc::ByteBuffer bb;
  grpc::Status st =
      grpc::GenericSerialize<grpc::ProtoBufferWriter, Message>(msg, &bb, &own);
  if (!st.ok()) {
    return absl::InternalError(
        absl::StrCat("response: not serialized: ", st.error_message()));
  }
  out->Swap(&bb);
  return absl::OkStatus();
}

}  // namespace tokensign::service
