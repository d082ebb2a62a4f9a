#include "schemas/canonical_json.h"

#include <algorithm>
#include <charconv>
#include <cstdint>
#include <cstring>
#include <vector>

namespace civishare {
namespace json = boost::json;

namespace {

// Whether any of the 8 bytes in `x` is a control character, '"' or '\\' (the bytes JSON escapes).
// Each test is exact for "some byte is": (v - 0x01..) & ~v & 0x80.. is non-zero iff a byte of v is
// zero, and (x - n..) & ~x & 0x80.. iff a byte of x is below n (n <= 0x80).
bool any_to_escape(std::uint64_t x) {
  constexpr std::uint64_t ones = 0x0101010101010101ULL, high = 0x8080808080808080ULL;
  const std::uint64_t quote = x ^ (ones * '"'), backslash = x ^ (ones * '\\');
  return (((x - ones * 0x20) & ~x) | ((quote - ones) & ~quote) |
          ((backslash - ones) & ~backslash)) &
         high;
}

}  // namespace

void append_json_string(std::string& out, std::string_view s) {
  static constexpr char hex[] = "0123456789abcdef";
  out.push_back('"');
  std::size_t clean = 0;  // start of the run not yet copied
  for (std::size_t i = 0; i < s.size(); ++i) {
    // Most text needs no escape: skip it 8 bytes at a time.
    while (i + 8 <= s.size()) {
      std::uint64_t x;
      std::memcpy(&x, s.data() + i, 8);
      if (any_to_escape(x)) break;
      i += 8;
    }
    if (i == s.size()) break;
    const auto c = static_cast<unsigned char>(s[i]);
    if (c >= 0x20 && c != '"' && c != '\\') continue;
    out.append(s.data() + clean, i - clean);
    clean = i + 1;
    out.push_back('\\');
    switch (c) {
      case '"':
        out.push_back('"');
        break;
      case '\\':
        out.push_back('\\');
        break;
      case '\b':
        out.push_back('b');
        break;
      case '\t':
        out.push_back('t');
        break;
      case '\n':
        out.push_back('n');
        break;
      case '\f':
        out.push_back('f');
        break;
      case '\r':
        out.push_back('r');
        break;
      default:
        out += "u00";
        out.push_back(hex[c >> 4]);
        out.push_back(hex[c & 15]);
    }
  }
  out.append(s.data() + clean, s.size() - clean);
  out.push_back('"');
}

namespace {

template <typename Int>
void append_int(std::string& out, Int n) {
  char buf[24];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, n);
  out.append(buf, end);
}

// Scalars; false for objects and arrays.
bool append_scalar(std::string& out, const json::value& v) {
  switch (v.kind()) {
    case json::kind::null:
      out += "null";
      return true;
    case json::kind::bool_:
      out += v.get_bool() ? "true" : "false";
      return true;
    case json::kind::int64:
      append_int(out, v.get_int64());
      return true;
    case json::kind::uint64:
      append_int(out, v.get_uint64());
      return true;
    case json::kind::double_:
      out += json::serialize(v);  // boost's own shortest round-trip form
      return true;
    case json::kind::string:
      append_json_string(out, v.get_string());
      return true;
    default:
      return false;
  }
}

// Objects with their members in stored order, or (`canonical`) sorted by key.
void write(std::string& out, const json::value& v, bool canonical) {
  if (append_scalar(out, v)) return;
  if (v.is_array()) {
    out.push_back('[');
    bool first = true;
    for (const auto& item : v.get_array()) {
      if (!first) out.push_back(',');
      first = false;
      write(out, item, canonical);
    }
    out.push_back(']');
    return;
  }
  const auto& obj = v.get_object();
  std::vector<const json::key_value_pair*> items;
  items.reserve(obj.size());
  for (const auto& kv : obj) items.push_back(&kv);
  if (canonical) {
    std::sort(items.begin(), items.end(), [](auto* a, auto* b) { return a->key() < b->key(); });
  }
  out.push_back('{');
  bool first = true;
  for (const auto* kv : items) {
    if (!first) out.push_back(',');
    first = false;
    append_json_string(out, kv->key());
    out.push_back(':');
    write(out, kv->value(), canonical);
  }
  out.push_back('}');
}

}  // namespace

void append_json(std::string& out, const json::value& v) {
  write(out, v, false);
}

void append_canonical_json(std::string& out, const json::value& v) {
  write(out, v, true);
}

std::string canonical_json(const json::value& value) {
  std::string out;
  append_canonical_json(out, value);
  return out;
}

}  // namespace civishare
