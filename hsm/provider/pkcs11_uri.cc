#include "hsm/provider/pkcs11_uri.h"

#include <limits.h>
#include <stdlib.h>

#include <cctype>
#include <set>
#include <vector>

#include "absl/status/status.h"
#include "crypto/str_cat.h"

namespace tokensign::hsm::provider {
namespace {

constexpr std::string_view kScheme = "pkcs11:";

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

bool ConsumePrefix(std::string_view* s, std::string_view prefix) {
  if (s->substr(0, prefix.size()) != prefix) return false;
  s->remove_prefix(prefix.size());
  return true;
}

std::string Hex(std::string_view bytes, bool upper) {
  const char* digits = upper ? "0123456789ABCDEF" : "0123456789abcdef";
  std::string out;
  for (unsigned char c : bytes) {
    out.push_back(digits[c >> 4]);
    out.push_back(digits[c & 15]);
  }
  return out;
}

bool IsUnreserved(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '.' ||
         c == '_' || c == '~';
}

absl::Status Invalid(std::string_view what, std::string_view rule) {
  return absl::InvalidArgumentError(Cat("pkcs11 URI: ", what, ": ", rule));
}

// Characters never allowed literally in a value (they must be percent-encoded).
bool ForbiddenInValue(char c, bool query) {
  if (c <= ' ' || c == 0x7f || c == '#' || c == '%' || c == '"' || c == '<' || c == '>' ||
      c == '\\' || c == '^' || c == '`' || c == '{' || c == '}') {
    return true;
  }
  if (query) return c == '&';
  return c == ';' || c == '?' || c == '/';
}

absl::Status CheckLiteral(std::string_view value, std::string_view what, bool query) {
  for (size_t i = 0; i < value.size(); ++i) {
    char c = value[i];
    if (c == '%') continue;  // validated by PercentDecode
    if (ForbiddenInValue(c, query)) {
      return Invalid(what, Cat("character '", std::string_view(&c, 1),
                                        "' must be percent-encoded"));
    }
  }
  return absl::OkStatus();
}

absl::Status ApplyPinSource(std::string_view source, Pkcs11Uri& out) {
  if (ConsumePrefix(&source, "env:")) {
    if (source.empty()) return Invalid("pin-source", "env: needs a variable name");
    out.pin_env = std::string(source);
    return absl::OkStatus();
  }
  if (ConsumePrefix(&source, "file://")) {
    // file:///abs/path -> /abs/path ; file://localhost/abs -> /abs
    ConsumePrefix(&source, "localhost");
  } else {
    ConsumePrefix(&source, "file:");
  }
  if (source.empty() || source[0] != '/') {
    return Invalid("pin-source", "must be file:<absolute path> or env:<VARIABLE>");
  }
  out.pin_file = std::string(source);
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::string> PercentDecode(std::string_view in, std::string_view what) {
  std::string out;
  out.reserve(in.size());
  for (size_t i = 0; i < in.size(); ++i) {
    if (in[i] != '%') {
      out.push_back(in[i]);
      continue;
    }
    if (i + 2 >= in.size()) {
      return Invalid(what, "truncated percent escape at end of value");
    }
    int hi = HexValue(in[i + 1]);
    int lo = HexValue(in[i + 2]);
    if (hi < 0 || lo < 0) {
      return Invalid(what, Cat("bad percent escape '%", in.substr(i + 1, 2),
                                        "' (need two hex digits)"));
    }
    out.push_back(static_cast<char>(hi * 16 + lo));
    i += 2;
  }
  return out;
}

absl::StatusOr<Pkcs11Uri> ParsePkcs11Uri(std::string_view uri) {
  if (uri.size() < kScheme.size() ||
      AsciiLower(uri.substr(0, kScheme.size())) != kScheme) {
    return Invalid("scheme", "URI must start with 'pkcs11:'");
  }
  uri.remove_prefix(kScheme.size());
  std::string_view path = uri, query;
  if (size_t q = uri.find('?'); q != std::string_view::npos) {
    path = uri.substr(0, q);
    query = uri.substr(q + 1);
    if (query.empty()) return Invalid("query", "'?' must be followed by attributes");
  }
  if (uri.find('#') != std::string_view::npos) return Invalid("fragment", "'#' is not allowed");

  Pkcs11Uri out;
  std::set<std::string, std::less<>> seen;
  auto each = [&](std::string_view component, char sep, bool is_query) -> absl::Status {
    if (component.empty()) return absl::OkStatus();
    std::vector<std::string_view> attrs;
    for (size_t start = 0;;) {
      size_t end = component.find(sep, start);
      attrs.push_back(component.substr(start, end == std::string_view::npos ? end : end - start));
      if (end == std::string_view::npos) break;
      start = end + 1;
    }
    for (std::string_view attr : attrs) {
      if (attr.empty()) {
        return Invalid(is_query ? "query" : "path", "empty attribute (doubled separator)");
      }
      size_t eq = attr.find('=');
      if (eq == std::string_view::npos || eq == 0) {
        return Invalid(attr, "attribute must be name=value");
      }
      std::string name = AsciiLower(attr.substr(0, eq));
      std::string_view raw = attr.substr(eq + 1);
      if (!seen.insert(name).second) return Invalid(name, "duplicate attribute");
      if (raw.empty()) return Invalid(name, "empty value");
      if (absl::Status s = CheckLiteral(raw, name, is_query); !s.ok()) return s;
      absl::StatusOr<std::string> value = PercentDecode(raw, name);
      if (!value.ok()) return value.status();

      static const std::set<std::string, std::less<>> kPath = {
          "token", "serial", "manufacturer", "model", "object", "id", "type"};
      static const std::set<std::string, std::less<>> kQuery = {"pin-source", "pin-value",
                                                                "module-path"};
      bool in_path = kPath.count(name) > 0, in_query = kQuery.count(name) > 0;
      if (!in_path && !in_query) return Invalid(name, "unknown attribute");
      if (in_path && is_query) return Invalid(name, "is a path attribute, not a query one");
      if (in_query && !is_query) {
        return Invalid(name, "is a query attribute; put it after '?'");
      }

      if (name == "token") out.token = *value;
      else if (name == "serial") out.serial = *value;
      else if (name == "manufacturer") out.manufacturer = *value;
      else if (name == "model") out.model = *value;
      else if (name == "object") out.object = *value;
      else if (name == "id") out.id_hex = Hex(*value, false);
      else if (name == "type") {
        if (*value == "private") out.type = UriObjectType::kPrivate;
        else if (*value == "public") out.type = UriObjectType::kPublic;
        else return Invalid("type", Cat("unsupported type '", *value,
                                                 "' (want private or public)"));
      } else if (name == "pin-source") {
        if (absl::Status s = ApplyPinSource(*value, out); !s.ok()) return s;
      } else if (name == "pin-value") out.pin_value = *value;
      else if (name == "module-path") {
        if (value->empty() || (*value)[0] != '/') {
          return Invalid("module-path", "must be an absolute path");
        }
        out.module_path = *value;
      }
    }
    return absl::OkStatus();
  };
  if (absl::Status s = each(path, ';', false); !s.ok()) return s;
  if (absl::Status s = each(query, '&', true); !s.ok()) return s;
  if (!out.pin_value.empty() && (!out.pin_file.empty() || !out.pin_env.empty())) {
    return Invalid("pin-value", "give either pin-source or pin-value, not both");
  }
  if (out.object.empty() && out.id_hex.empty()) {
    return Invalid("object/id", "the URI must name the key by object= and/or id=");
  }
  return out;
}

absl::Status CheckUriModulePath(const Pkcs11Uri& uri, std::string_view configured_module) {
  if (uri.module_path.empty() || uri.module_path == configured_module) return absl::OkStatus();
  auto resolve = [](std::string_view path) {
    char buf[PATH_MAX];
    std::string in(path);
    return realpath(in.c_str(), buf) == nullptr ? std::string() : std::string(buf);
  };
  std::string named = resolve(uri.module_path);
  if (!named.empty() && named == resolve(configured_module)) return absl::OkStatus();
  return absl::PermissionDeniedError(
      Cat("pkcs11 URI: module-path: '", uri.module_path,
          "' is not the configured PKCS#11 module '", configured_module,
          "'; the module is set only in openssl.cnf (pkcs11-module) or "
          "TOKENSIGN_PKCS11_MODULE, never by a URI"));
}

namespace {
std::string HexToBytes(std::string_view hex) {
  std::string out;
  for (size_t i = 0; i + 1 < hex.size(); i += 2) {
    out.push_back(static_cast<char>(HexValue(hex[i]) * 16 + HexValue(hex[i + 1])));
  }
  return out;
}
}  // namespace

std::string FormatPkcs11Uri(std::string_view token, std::string_view object,
                            std::string_view id_hex, UriObjectType type) {
  auto enc = [](std::string_view in) {
    std::string out;
    for (char c : in) {
      if (IsUnreserved(c)) {
        out.push_back(c);
      } else {
        out.push_back('%');  // not "%" + Hex(): GCC 12 -O3 warns (-Wrestrict) on that
        out += Hex(std::string_view(&c, 1), true);
      }
    }
    return out;
  };
  std::vector<std::string> parts;
  if (!token.empty()) parts.push_back(Cat("token=", enc(token)));
  if (!object.empty()) parts.push_back(Cat("object=", enc(object)));
  if (!id_hex.empty()) parts.push_back(Cat("id=", enc(HexToBytes(id_hex))));
  if (type == UriObjectType::kPrivate) parts.push_back("type=private");
  if (type == UriObjectType::kPublic) parts.push_back("type=public");
  std::string out = "pkcs11:";
  for (size_t i = 0; i < parts.size(); ++i) {
    if (i > 0) out.push_back(';');
    out += parts[i];
  }
  return out;
}

}  // namespace tokensign::hsm::provider
