// Byte encodings the store's values share (entity images, outbox entries): varints, texts with
// their length, fixed-width integers, and a reader that says when its input is cut short.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace civishare {

inline void put_varint(std::string& out, std::size_t n) {
  while (n >= 0x80) {
    out.push_back(static_cast<char>(n | 0x80));
    n >>= 7;
  }
  out.push_back(static_cast<char>(n));
}

inline void put_text(std::string& out, std::string_view s) {
  put_varint(out, s.size());
  out.append(s);
}

// Reads the encodings from `in`; false when it is cut short or malformed.
struct Reader {
  std::string_view in;
  bool varint(std::size_t& n) {
    n = 0;
    for (int shift = 0; shift < 64 && !in.empty(); shift += 7) {
      const auto b = static_cast<unsigned char>(in.front());
      in.remove_prefix(1);
      n |= static_cast<std::size_t>(b & 0x7f) << shift;
      if (!(b & 0x80)) return true;
    }
    return false;
  }
  bool view(std::size_t n, std::string_view& s) {
    if (n > in.size()) return false;
    s = in.substr(0, n);
    in.remove_prefix(n);
    return true;
  }
  bool bytes(std::size_t n, std::string& s) {
    std::string_view v;
    if (!view(n, v)) return false;
    s.assign(v);
    return true;
  }
  bool text(std::string& s) {
    std::size_t n = 0;
    return varint(n) && bytes(n, s);
  }
  bool text_view(std::string_view& s) {
    std::size_t n = 0;
    return varint(n) && view(n, s);
  }
  bool fixed64(std::uint64_t& n) {
    if (in.size() < 8) return false;
    n = 0;
    for (int i = 0; i < 8; ++i) n |= std::uint64_t{static_cast<unsigned char>(in[i])} << (8 * i);
    in.remove_prefix(8);
    return true;
  }
};

}  // namespace civishare
