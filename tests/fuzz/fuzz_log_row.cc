// libFuzzer target: the log-row mapper (capture/row_mapper.h). The input is split at '\x1f' into
// fields and at '\x1e' into rows: the first row is the column names, the next two are a log row
// before and after (a '\x1d' field is NULL). The first byte picks the change type. Both rows go
// through read_header and wire_values, the two images through diff_values, and the resulting
// change through its canonical form and signature, as capture does. Must never crash or throw.
// The images are also written in the store's encoding and diffed there (what capture does on its
// hot path): that diff must be the same.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "capture/row_mapper.h"
#include "schemas/db/translator.h"
#include "transport/queue/images.h"

namespace {
using namespace civishare;

std::vector<std::string_view> split(std::string_view s, char sep) {
  std::vector<std::string_view> out;
  for (;;) {
    auto at = s.find(sep);
    out.push_back(s.substr(0, at));
    if (at == std::string_view::npos) return out;
    s.remove_prefix(at + 1);
  }
}

Status to_wire(const ColumnDefinition& col, const db::Cell& c, std::string& out) {
  if (col.kind != ColumnKind::option && col.kind != ColumnKind::lookup) {
    return db::plain_to_wire(col, c, out);
  }
  if (!c) {
    out += "null";
    return ok_status();
  }
  if (*c == "1" || *c == "2") {
    out += *c == "1" ? "\"Home\"" : "\"Work\"";
    return ok_status();
  }
  return make_error(Errc::not_found, col.column + " = " + *c + " has no name");
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 1) return 0;
  static const char* types[] = {"civishare.change.contact.base", "civishare.change.contact.email",
                                "civishare.change.contact.phone",
                                "civishare.change.contact.address"};
  const TypeDefinition* def = TypeRegistry::builtin().find(types[data[0] % 4]);
  if (!def) return 0;
  auto rows = split(std::string_view(reinterpret_cast<const char*>(data + 1), size - 1), '\x1e');
  if (rows.size() < 2) return 0;
  std::vector<std::string> names;
  for (auto n : split(rows[0], '\x1f')) names.emplace_back(n);
  ColumnIndex columns(names);
  std::vector<WireValues> images;
  for (std::size_t r = 1; r < rows.size() && r <= 2; ++r) {
    db::Row row;
    for (auto f : split(rows[r], '\x1f')) {
      if (f == "\x1d")
        row.emplace_back(std::nullopt);
      else
        row.emplace_back(std::string(f));
    }
    auto header = read_header(columns, row);
    if (!header) continue;
    std::vector<std::string> warnings;
    auto values = wire_values(*def, columns, row, to_wire, warnings);
    if (!values) continue;
    images.push_back(std::move(*values));
  }
  if (images.empty()) return 0;
  Change change;
  change.type = def->type;
  change.entity = def->entity;
  change.operation = images.size() == 2 ? Operation::update : Operation::create;
  change.entity_reference = "fuzz-1";
  change.timestamp = "2026-11-28T00:00:00Z";
  change.id = "fuzz-0";
  change.attribute_changes =
      diff_values(*def, images.size() == 2 ? &images[0] : nullptr, images.back());
  std::vector<std::string> encoded;
  for (const auto& img : images) {
    std::string& e = encoded.emplace_back();
    begin_image(e, 1, "fuzz-1", "");
    for (const auto& [name, text] : img) append_image_value(e, text);
  }
  ImageView before, after;
  if (!ImageView::parse(encoded.front(), before) || !ImageView::parse(encoded.back(), after))
    __builtin_trap();
  auto in_place =
      diff_encoded_values(*def, images.size() == 2 ? &before.values : nullptr, after.values);
  if (!in_place || *in_place != change.attribute_changes) __builtin_trap();
  change.loop_detection.push_back(change_signature(change, "fuzz"));
  auto back = change_from_json(to_json(change));
  if (!back) __builtin_trap();  // what capture emits, the receiver must accept
  return 0;
}
