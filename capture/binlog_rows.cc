#include "capture/binlog_rows.h"

#include <zlib.h>

#include <charconv>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <fstream>
#include <sstream>

namespace civishare::binlog {

namespace {

// MYSQL_TYPE_* values as they appear in the binlog.
enum : std::uint8_t {
  kDecimal = 0,
  kTiny = 1,
  kShort = 2,
  kLong = 3,
  kFloat = 4,
  kDouble = 5,
  kNull = 6,
  kTimestamp = 7,
  kLongLong = 8,
  kInt24 = 9,
  kDate = 10,
  kTime = 11,
  kDateTime = 12,
  kYear = 13,
  kVarchar = 15,
  kBit = 16,
  kTimestamp2 = 17,
  kDateTime2 = 18,
  kTime2 = 19,
  kJson = 245,
  kNewDecimal = 246,
  kEnum = 247,
  kSet = 248,
  kTinyBlob = 249,
  kMediumBlob = 250,
  kLongBlob = 251,
  kBlob = 252,
  kVarString = 253,
  kString = 254,
  kGeometry = 255,
};

bool is_numeric(std::uint8_t t) {
  switch (t) {
    case kTiny:
    case kShort:
    case kInt24:
    case kLong:
    case kLongLong:
    case kNewDecimal:
    case kFloat:
    case kDouble:
    case kDecimal:
      return true;
    default:
      return false;
  }
}

Error malformed(const std::string& what) {
  return make_error(Errc::invalid_input, "binlog: " + what);
}

// A bounds-checked cursor over event bytes.
class Reader {
 public:
  explicit Reader(std::string_view s) : s_(s) {}
  std::size_t left() const { return s_.size() - at_; }
  bool need(std::size_t n) const { return left() >= n; }
  std::string_view take(std::size_t n) {
    auto v = s_.substr(at_, n);
    at_ += n;
    return v;
  }
  std::uint64_t le(std::size_t n) {  // little-endian unsigned of n bytes (the first 8 count)
    std::uint64_t v = 0;
    for (std::size_t i = 0; i < n && i < 8; ++i)
      v |= static_cast<std::uint64_t>(static_cast<unsigned char>(s_[at_ + i])) << (8 * i);
    at_ += n;
    return v;
  }
  std::uint64_t be(std::size_t n) {  // big-endian unsigned of n bytes
    std::uint64_t v = 0;
    for (std::size_t i = 0; i < n; ++i) v = (v << 8) | static_cast<unsigned char>(s_[at_ + i]);
    at_ += n;
    return v;
  }
  // Length-encoded integer; nullopt when truncated.
  std::optional<std::uint64_t> packed() {
    if (!need(1)) return std::nullopt;
    const auto first = static_cast<unsigned char>(s_[at_]);
    std::size_t n = first < 251 ? 0 : first == 252 ? 2 : first == 253 ? 3 : first == 254 ? 8 : 99;
    if (n == 99 || !need(1 + n)) return std::nullopt;
    ++at_;
    return n == 0 ? first : le(n);
  }

 private:
  std::string_view s_;
  std::size_t at_ = 0;
};

std::string two(int v) {
  char b[8];
  std::snprintf(b, sizeof b, "%02d", v);
  return b;
}

// "YYYY-MM-DD hh:mm:ss" without printf or the C library's time zone lock (gmtime_r takes one):
// the hot path of every DATETIME and TIMESTAMP value.
void put_digits(std::string& out, long long v, int width) {
  char b[24];
  int n = 0;
  unsigned long long u = v < 0 ? 0ULL : static_cast<unsigned long long>(v);
  do {
    b[n++] = static_cast<char>('0' + u % 10);
    u /= 10;
  } while (u && n < 20);
  while (n < width) b[n++] = '0';
  while (n) out.push_back(b[--n]);
}

std::string date_time_text(long long y, long long mo, long long d, long long h, long long mi,
                           long long s) {
  std::string out;
  out.reserve(26);
  put_digits(out, y, 4);
  out.push_back('-');
  put_digits(out, mo, 2);
  out.push_back('-');
  put_digits(out, d, 2);
  out.push_back(' ');
  put_digits(out, h, 2);
  out.push_back(':');
  put_digits(out, mi, 2);
  out.push_back(':');
  put_digits(out, s, 2);
  return out;
}

// Unix seconds as UTC "YYYY-MM-DD hh:mm:ss" (days to civil date: H. Hinnant's algorithm).
std::string utc_text(std::int64_t secs) {
  std::int64_t days = secs / 86400, rem = secs % 86400;
  if (rem < 0) {
    rem += 86400;
    --days;
  }
  const std::int64_t z = days + 719468;
  const std::int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  const std::int64_t doe = z - era * 146097;
  const std::int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  const std::int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const std::int64_t mp = (5 * doy + 2) / 153;
  const std::int64_t d = doy - (153 * mp + 2) / 5 + 1;
  const std::int64_t m = mp < 10 ? mp + 3 : mp - 9;
  const std::int64_t y = yoe + era * 400 + (m <= 2 ? 1 : 0);
  return date_time_text(y, m, d, rem / 3600, (rem / 60) % 60, rem % 60);
}

// ".ddd" for fractional seconds stored as 2, 4 or 6 decimal digits in (fsp+1)/2 bytes.
std::string fraction_text(std::int64_t frac, int fsp) {
  if (fsp <= 0) return "";
  char b[16];
  std::snprintf(b, sizeof b, "%0*lld", (fsp + 1) / 2 * 2, static_cast<long long>(frac));
  return "." + std::string(b).substr(0, static_cast<std::size_t>(fsp));
}

// Fractional seconds of DATETIME2/TIMESTAMP2: (fsp+1)/2 bytes big-endian after the seconds.
std::string fraction(Reader& r, int fsp) {
  if (fsp <= 0) return "";
  return fraction_text(static_cast<std::int64_t>(r.be(static_cast<std::size_t>((fsp + 1) / 2))),
                       fsp);
}

std::string decimal_text(Reader& r, int precision, int scale, bool* ok) {
  static const int dig2bytes[10] = {0, 1, 1, 2, 2, 3, 3, 4, 4, 4};
  // MariaDB's limits; anything else is a broken table map (found by fuzz_binlog_rows).
  if (precision <= 0 || precision > 65 || scale < 0 || scale > 38 || scale > precision) {
    *ok = false;
    return "";
  }
  const int intg = precision - scale;
  const int intg0 = intg / 9, intg0x = intg - intg0 * 9;
  const int frac0 = scale / 9, frac0x = scale - frac0 * 9;
  const std::size_t size =
      static_cast<std::size_t>(intg0 * 4 + dig2bytes[intg0x] + frac0 * 4 + dig2bytes[frac0x]);
  if (!r.need(size)) {
    *ok = false;
    return "";
  }
  std::string bytes(r.take(size));
  const bool negative = (static_cast<unsigned char>(bytes[0]) & 0x80) == 0;
  bytes[0] = static_cast<char>(bytes[0] ^ 0x80);
  if (negative)
    for (char& c : bytes) c = static_cast<char>(~c);
  Reader d(bytes);
  std::string digits;
  auto group = [&](std::size_t nbytes, int ndigits) {
    if (ndigits == 0) return;
    char b[16];
    std::snprintf(b, sizeof b, "%0*llu", ndigits, static_cast<unsigned long long>(d.be(nbytes)));
    digits += b;
  };
  group(static_cast<std::size_t>(dig2bytes[intg0x]), intg0x);
  for (int i = 0; i < intg0; ++i) group(4, 9);
  std::string int_part = digits;
  digits.clear();
  for (int i = 0; i < frac0; ++i) group(4, 9);
  group(static_cast<std::size_t>(dig2bytes[frac0x]), frac0x);
  const std::size_t nz = int_part.find_first_not_of('0');
  int_part = nz == std::string::npos ? "0" : int_part.substr(nz);
  std::string out = (negative ? "-" : "") + int_part;
  if (scale > 0) out += "." + digits;
  *ok = true;
  return out;
}

// Shortest round-trip text, with the exponent as MariaDB writes it ("-1e300", "1e-5").
template <typename F>
std::string shortest(F v) {
  char b[64];
  auto [p, ec] = std::to_chars(b, b + sizeof b, v);
  if (ec != std::errc()) return std::string();
  std::string s(b, p);
  if (auto e = s.find('e'); e != std::string::npos) {
    std::string exp = s.substr(e + 1);
    const bool negative = !exp.empty() && exp[0] == '-';
    if (!exp.empty() && (exp[0] == '+' || exp[0] == '-')) exp.erase(0, 1);
    exp.erase(0, std::min(exp.find_first_not_of('0'), exp.size() - 1));
    s = s.substr(0, e + 1) + (negative ? "-" : "") + exp;
  }
  return s;
}

// Columns that carry a character set in the table map's CHARSET metadata, in table order.
bool is_character(const Column& c) {
  switch (c.type) {
    case kString:
    case kVarchar:
    case kVarString:
    case kBlob:
    case kTinyBlob:
    case kMediumBlob:
    case kLongBlob:
      return true;
    default:
      return false;
  }
}

// One value of `col` in the binary row format, as MariaDB's text protocol shows it.
Result<std::string> value(Reader& r, const Column& col) {
  auto need = [&](std::size_t n) -> Status {
    if (r.need(n)) return ok_status();
    return malformed("row value of column `" + col.name + "` is cut short");
  };
  auto integer = [&](std::size_t n) -> Result<std::string> {
    if (auto s = need(n); !s) return s.error();
    std::uint64_t u = r.le(n);
    if (col.is_unsigned) return std::to_string(u);
    const unsigned bits = static_cast<unsigned>(n * 8);
    std::int64_t v = bits == 64 ? static_cast<std::int64_t>(u)
                                : static_cast<std::int64_t>(u << (64 - bits)) >> (64 - bits);
    return std::to_string(v);
  };
  auto length_prefixed = [&](std::size_t prefix) -> Result<std::string> {
    if (auto s = need(prefix); !s) return s.error();
    const std::size_t len = static_cast<std::size_t>(r.le(prefix));
    if (auto s = need(len); !s) return s.error();
    return std::string(r.take(len));
  };
  switch (col.type) {
    case kTiny:
      return integer(1);
    case kShort:
      return integer(2);
    case kInt24:
      return integer(3);
    case kLong:
      return integer(4);
    case kLongLong:
      return integer(8);
    case kFloat: {
      if (auto s = need(4); !s) return s.error();
      std::uint32_t u = static_cast<std::uint32_t>(r.le(4));
      float f;
      std::memcpy(&f, &u, sizeof f);
      return shortest(f);
    }
    case kDouble: {
      if (auto s = need(8); !s) return s.error();
      std::uint64_t u = r.le(8);
      double d;
      std::memcpy(&d, &u, sizeof d);
      return shortest(d);
    }
    case kNewDecimal: {
      bool ok = false;
      std::string t = decimal_text(r, col.meta & 0xff, col.meta >> 8, &ok);
      if (!ok) return malformed("DECIMAL column `" + col.name + "` is malformed");
      return t;
    }
    case kYear: {
      if (auto s = need(1); !s) return s.error();
      const auto y = r.le(1);
      return y == 0 ? std::string("0000") : std::to_string(1900 + y);
    }
    case kDate: {
      if (auto s = need(3); !s) return s.error();
      const auto v = r.le(3);
      char b[16];
      std::snprintf(b, sizeof b, "%04u-%02u-%02u", static_cast<unsigned>(v >> 9),
                    static_cast<unsigned>((v >> 5) & 15), static_cast<unsigned>(v & 31));
      return std::string(b);
    }
    case kDateTime2: {
      const int fsp = col.meta;
      if (fsp > 6) return malformed("column " + col.name + " claims more than 6 fractional digits");
      if (auto s = need(5 + static_cast<std::size_t>((fsp + 1) / 2)); !s) return s.error();
      const std::int64_t packed = static_cast<std::int64_t>(r.be(5)) - 0x8000000000LL;
      const std::int64_t ymd = packed >> 17, hms = packed % (1 << 17);
      const std::int64_t ym = ymd >> 5;
      return date_time_text(ym / 13, ym % 13, ymd % 32, hms >> 12, (hms >> 6) % 64, hms % 64) +
             fraction(r, fsp);
    }
    case kTimestamp2: {
      const int fsp = col.meta;
      if (fsp > 6) return malformed("column " + col.name + " claims more than 6 fractional digits");
      if (auto s = need(4 + static_cast<std::size_t>((fsp + 1) / 2)); !s) return s.error();
      const std::time_t secs = static_cast<std::time_t>(r.be(4));
      if (secs == 0) return std::string("0000-00-00 00:00:00") + fraction(r, fsp);
      return utc_text(secs) + fraction(r, fsp);  // the text a '+00:00' session shows
    }
    case kTime2: {
      const int fsp = col.meta;
      if (fsp > 6) return malformed("column " + col.name + " claims more than 6 fractional digits");
      const std::size_t fbytes = static_cast<std::size_t>((fsp + 1) / 2);
      if (auto s = need(3 + fbytes); !s) return s.error();
      // Integer part and fraction together form one signed big-endian number.
      std::int64_t packed = static_cast<std::int64_t>(r.be(3 + fbytes));
      packed -= static_cast<std::int64_t>(0x800000) << (8 * fbytes);
      const bool negative = packed < 0;
      if (negative) packed = -packed;
      const std::int64_t frac = packed & ((std::int64_t{1} << (8 * fbytes)) - 1);
      const std::int64_t hms = packed >> (8 * fbytes);
      std::string out = (negative ? "-" : "") + two(static_cast<int>((hms >> 12) % 1024)) + ":" +
                        two(static_cast<int>((hms >> 6) % 64)) + ":" +
                        two(static_cast<int>(hms % 64));
      return out + fraction_text(frac, fsp);
    }
    case kVarchar:
    case kVarString:
      return length_prefixed(col.meta < 256 ? 1 : 2);
    case kString: {
      auto v = length_prefixed(col.meta < 256 ? 1 : 2);
      // BINARY(n) loses its trailing zero bytes in the binlog; SELECT shows all n.
      if (v && col.collation == 63 && v->size() < col.meta) v->resize(col.meta, '\0');
      return v;
    }
    case kEnum: {
      const std::size_t n = col.meta & 0xff;
      if (auto s = need(n); !s) return s.error();
      const auto index = r.le(n);
      if (index == 0) return std::string();  // the '' error value
      if (index > col.values.size()) return malformed("ENUM `" + col.name + "` index out of range");
      return col.values[index - 1];
    }
    case kSet: {
      const std::size_t n = col.meta & 0xff;
      if (auto s = need(n); !s) return s.error();
      const auto bits = r.le(n);
      std::string out;
      for (std::size_t i = 0; i < col.values.size() && i < 64; ++i) {
        if (bits & (std::uint64_t{1} << i)) out += (out.empty() ? "" : ",") + col.values[i];
      }
      return out;
    }
    case kBit: {
      const std::size_t n = (col.meta >> 8) + ((col.meta & 0xff) ? 1 : 0);
      if (auto s = need(n); !s) return s.error();
      return std::string(r.take(n));  // raw bytes, as the text protocol sends BIT
    }
    case kBlob:
    case kTinyBlob:
    case kMediumBlob:
    case kLongBlob:
    case kJson:
    case kGeometry:
      return length_prefixed(col.meta);
    default:
      return malformed("column `" + col.name + "` has type " + std::to_string(col.type) +
                       ", which the binlog decoder does not read");
  }
}

std::size_t count_bits(std::string_view bitmap, std::size_t n) {
  std::size_t c = 0;
  for (std::size_t i = 0; i < n; ++i)
    c += (static_cast<unsigned char>(bitmap[i / 8]) >> (i % 8)) & 1;
  return c;
}

bool bit(std::string_view bitmap, std::size_t i) {
  return (static_cast<unsigned char>(bitmap[i / 8]) >> (i % 8)) & 1;
}

}  // namespace

Result<TableMap> parse_table_map(std::string_view body) {
  Reader r(body);
  TableMap m;
  if (!r.need(8)) return malformed("TABLE_MAP event too short");
  m.table_id = r.le(6);
  r.le(2);  // flags
  auto name = [&](std::string* out) -> bool {
    if (!r.need(1)) return false;
    const std::size_t len = static_cast<std::size_t>(r.le(1));
    if (!r.need(len + 1)) return false;
    *out = std::string(r.take(len));
    r.take(1);  // NUL
    return true;
  };
  if (!name(&m.schema) || !name(&m.table)) return malformed("TABLE_MAP names are cut short");
  auto n = r.packed();
  if (!n || !r.need(*n)) return malformed("TABLE_MAP column count is cut short");
  const auto types = r.take(static_cast<std::size_t>(*n));
  m.columns.resize(static_cast<std::size_t>(*n));
  for (std::size_t i = 0; i < m.columns.size(); ++i)
    m.columns[i].type = static_cast<std::uint8_t>(types[i]);
  auto meta_len = r.packed();
  if (!meta_len || !r.need(*meta_len)) return malformed("TABLE_MAP metadata is cut short");
  Reader meta(r.take(static_cast<std::size_t>(*meta_len)));
  for (auto& c : m.columns) {
    auto need = [&](std::size_t k) { return meta.need(k); };
    switch (c.type) {
      case kFloat:
      case kDouble:
      case kBlob:
      case kJson:
      case kGeometry:
      case kTimestamp2:
      case kDateTime2:
      case kTime2:
        if (!need(1)) return malformed("TABLE_MAP metadata is cut short");
        c.meta = static_cast<std::uint16_t>(meta.le(1));
        break;
      case kVarchar:
      case kVarString:
        if (!need(2)) return malformed("TABLE_MAP metadata is cut short");
        c.meta = static_cast<std::uint16_t>(meta.le(2));
        break;
      case kBit:
      case kNewDecimal: {
        if (!need(2)) return malformed("TABLE_MAP metadata is cut short");
        const auto b0 = meta.le(1), b1 = meta.le(1);
        c.meta = static_cast<std::uint16_t>(b0 | (b1 << 8));  // bits|bytes, precision|scale
        break;
      }
      case kString: {
        if (!need(2)) return malformed("TABLE_MAP metadata is cut short");
        const auto b0 = static_cast<std::uint16_t>(meta.le(1));
        const auto b1 = static_cast<std::uint16_t>(meta.le(1));
        if ((b0 & 0x30) != 0x30) {  // CHAR longer than 255: length bits folded into the type
          c.type = static_cast<std::uint8_t>(b0 | 0x30);
          c.meta = static_cast<std::uint16_t>((((b0 & 0x30) ^ 0x30) << 4) | b1);
        } else {
          c.type = static_cast<std::uint8_t>(b0);  // STRING, ENUM or SET
          c.meta = b1;
        }
        break;
      }
      default:
        break;
    }
  }
  const std::size_t null_bytes = (m.columns.size() + 7) / 8;
  if (!r.need(null_bytes)) return malformed("TABLE_MAP null bitmap is cut short");
  r.take(null_bytes);
  // Optional metadata (binlog_row_metadata=FULL): type, length, value.
  bool have_names = false;
  while (r.left() > 0) {
    if (!r.need(1)) break;
    const auto type = r.le(1);
    auto len = r.packed();
    if (!len || !r.need(*len)) return malformed("TABLE_MAP optional metadata is cut short");
    Reader f(r.take(static_cast<std::size_t>(*len)));
    switch (type) {
      case 1: {  // SIGNEDNESS: one bit per numeric column, most significant first
        const std::string bits(f.take(f.left()));
        std::size_t k = 0;
        for (auto& c : m.columns) {
          if (!is_numeric(c.type)) continue;
          if (k / 8 < bits.size())
            c.is_unsigned = (static_cast<unsigned char>(bits[k / 8]) >> (7 - k % 8)) & 1;
          ++k;
        }
        break;
      }
      case 2:    // DEFAULT_CHARSET: default, then (character column index, collation) pairs
      case 3: {  // COLUMN_CHARSET: one collation per character column
        std::vector<Column*> chars;
        for (auto& c : m.columns)
          if (is_character(c)) chars.push_back(&c);
        if (type == 3) {
          for (Column* c : chars) {
            auto coll = f.packed();
            if (!coll) return malformed("TABLE_MAP charsets are cut short");
            c->collation = static_cast<std::uint32_t>(*coll);
          }
        } else {
          auto def = f.packed();
          if (!def) return malformed("TABLE_MAP charsets are cut short");
          for (Column* c : chars) c->collation = static_cast<std::uint32_t>(*def);
          while (f.left() > 0) {
            auto index = f.packed();
            auto coll = f.packed();
            if (!index || !coll) return malformed("TABLE_MAP charsets are cut short");
            if (*index < chars.size()) chars[*index]->collation = static_cast<std::uint32_t>(*coll);
          }
        }
        break;
      }
      case 4: {  // COLUMN_NAME
        for (auto& c : m.columns) {
          auto l = f.packed();
          if (!l || !f.need(*l)) return malformed("TABLE_MAP column names are cut short");
          c.name = std::string(f.take(static_cast<std::size_t>(*l)));
        }
        have_names = true;
        break;
      }
      case 5:    // SET_STR_VALUE
      case 6: {  // ENUM_STR_VALUE
        const std::uint8_t want = type == 5 ? kSet : kEnum;
        for (auto& c : m.columns) {
          if (c.type != want) continue;
          auto count = f.packed();
          if (!count) return malformed("TABLE_MAP enum/set values are cut short");
          for (std::uint64_t i = 0; i < *count; ++i) {
            auto l = f.packed();
            if (!l || !f.need(*l)) return malformed("TABLE_MAP enum/set values are cut short");
            c.values.emplace_back(f.take(static_cast<std::size_t>(*l)));
          }
        }
        break;
      }
      default:
        break;  // charsets, primary keys, geometry types: not needed here
    }
  }
  if (!have_names) {
    return make_error(Errc::invalid_input,
                      "binlog: table map of " + m.schema + "." + m.table +
                          " has no column names: set binlog_row_metadata=FULL on the server");
  }
  return m;
}

Result<std::uint64_t> rows_table_id(std::string_view body) {
  if (body.size() < 6) return malformed("rows event too short");
  Reader r(body);
  return r.le(6);
}

namespace {
// The rows part of a compressed rows event (log_bin_compress; MariaDB compresses what follows the
// bitmaps): one byte 0x80 | n, the uncompressed length in n big-endian bytes, a zlib stream.
Result<std::string> uncompress_rows(std::string_view packed) {
  if (packed.empty()) return malformed("compressed rows event without rows");
  const auto head = static_cast<unsigned char>(packed[0]);
  const std::size_t n = head & 7;
  if ((head & 0x80) == 0 || n == 0 || n > 4 || packed.size() < 1 + n) {
    return malformed("compressed rows event has a bad length header");
  }
  std::size_t len = 0;
  for (std::size_t i = 0; i < n; ++i) len = (len << 8) | static_cast<unsigned char>(packed[1 + i]);
  const std::string_view stream = packed.substr(1 + n);
  // zlib expands at most about 1032:1: a larger claim is a lie (and would allocate it).
  if (len > stream.size() * 1032 + 64 || len > (std::size_t{1} << 30)) {
    return malformed("compressed rows event claims more than its data can hold");
  }
  std::string out(len, '\0');
  uLongf got = static_cast<uLongf>(len);
  if (uncompress(reinterpret_cast<Bytef*>(out.data()), &got,
                 reinterpret_cast<const Bytef*>(stream.data()),
                 static_cast<uLong>(stream.size())) != Z_OK ||
      got != len) {
    return malformed("compressed rows event does not uncompress to its stated length");
  }
  return out;
}
}  // namespace

Result<RowsEvent> parse_rows(std::uint8_t event_type, std::string_view body, const TableMap& map) {
  const bool compressed =
      event_type >= kWriteRowsCompressedV1 && event_type <= kDeleteRowsCompressedV1;
  if (compressed) {
    event_type = static_cast<std::uint8_t>(event_type - kWriteRowsCompressedV1 + kWriteRowsV1);
  }
  if (event_type != kWriteRowsV1 && event_type != kUpdateRowsV1 && event_type != kDeleteRowsV1) {
    return malformed("event type " + std::to_string(event_type) + " is not a v1 rows event");
  }
  Reader r(body);
  RowsEvent ev;
  if (!r.need(8)) return malformed("rows event too short");
  ev.table_id = r.le(6);
  ev.end_of_statement = (r.le(2) & 1) != 0;
  if (ev.table_id != map.table_id) return malformed("rows event for another table map");
  auto n = r.packed();
  if (!n || *n != map.columns.size()) {
    return malformed("rows event of " + map.table + " has a column count unlike its table map");
  }
  const std::size_t cols = static_cast<std::size_t>(*n);
  const std::size_t bitmap_bytes = (cols + 7) / 8;
  if (!r.need(bitmap_bytes)) return malformed("rows event bitmap is cut short");
  const std::string present(r.take(bitmap_bytes));
  std::string present_after = present;
  if (event_type == kUpdateRowsV1) {
    if (!r.need(bitmap_bytes)) return malformed("rows event bitmap is cut short");
    present_after = std::string(r.take(bitmap_bytes));
  }
  std::string unpacked;
  if (compressed) {
    auto rows = uncompress_rows(r.take(r.left()));
    if (!rows) return rows.error();
    unpacked = std::move(*rows);
    r = Reader(unpacked);
  }
  bool after = false;
  while (r.left() > 0) {
    const std::string& bitmap = (event_type == kUpdateRowsV1 && after) ? present_after : present;
    const std::size_t used = count_bits(bitmap, cols);
    // A row of no columns takes no bytes: the loop would never end (found by fuzz_binlog_rows).
    if (used == 0) return malformed("rows event whose rows have no columns");
    const std::size_t null_bytes = (used + 7) / 8;
    if (!r.need(null_bytes)) return malformed("row null bitmap is cut short");
    const std::string nulls(r.take(null_bytes));
    RowImage row(cols);
    std::size_t k = 0;  // index among present columns
    for (std::size_t i = 0; i < cols; ++i) {
      if (!bit(bitmap, i)) continue;
      if (!bit(nulls, k++)) {
        auto v = value(r, map.columns[i]);
        if (!v) return v.error();
        row[i] = std::move(*v);
      }
    }
    ev.rows.push_back(std::move(row));
    if (event_type == kUpdateRowsV1) after = !after;
  }
  if (event_type == kUpdateRowsV1 && ev.rows.size() % 2 != 0) {
    return malformed("update rows event with an odd number of images");
  }
  return ev;
}

Result<std::vector<FileEvent>> read_binlog_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return make_error(Errc::invalid_input, "cannot read binlog file " + path);
  std::stringstream ss;
  ss << in.rdbuf();
  const std::string data = ss.str();
  if (data.size() < 4 || data.compare(0, 4,
                                      "\xfe"
                                      "bin") != 0) {
    return malformed(path + " is not a binlog file");
  }
  std::vector<FileEvent> out;
  std::size_t at = 4;
  std::size_t checksum = 0;  // bytes of CRC32 after each event, from the format description
  while (at + 19 <= data.size()) {
    Reader h(std::string_view(data).substr(at, 19));
    const auto when = static_cast<std::uint32_t>(h.le(4));
    const auto type = static_cast<std::uint8_t>(h.le(1));
    h.le(4);  // server id
    const std::size_t size = static_cast<std::size_t>(h.le(4));
    if (size < 19 || at + size > data.size()) return malformed(path + ": event cut short");
    std::string_view ev = std::string_view(data).substr(at + 19, size - 19);
    if (type == kFormatDescription) {
      // ... header length, post-header lengths, checksum algorithm (1 byte), CRC32 (4 bytes).
      checksum = (ev.size() >= 5 && static_cast<unsigned char>(ev[ev.size() - 5]) == 1) ? 4 : 0;
    }
    if (ev.size() < checksum) return malformed(path + ": event shorter than its checksum");
    out.push_back(FileEvent{type, std::string(ev.substr(0, ev.size() - checksum)), when});
    at += size;
  }
  return out;
}

}  // namespace civishare::binlog
