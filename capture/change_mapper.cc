#include "capture/change_mapper.h"

#include <cstring>

#include "schemas/crash_point.h"
#include "schemas/crypto.h"
#include "schemas/db/civishare_tables.h"
#include "schemas/log.h"

namespace civishare {

namespace {
// The text a row's hash covers: the table, every cell, the salt. One buffer per thread: a log row
// of CiviCRM's contact table is about a kilobyte of text.
const std::string& row_text(const SourceRow& row) {
  // The table, then each cell after \x1f (\x1e for NULL), then \x1d and the salt, if any:
  // sized first and copied in place (appending cell by cell cost more than the copying).
  static thread_local std::string text;
  const std::string& table = row.type->table;
  std::size_t size = table.size() + row.row->size();
  for (const auto& c : *row.row) size += c ? c->size() : 1;
  if (!row.salt.empty()) size += 1 + row.salt.size();
  text.resize(size);
  char* p = text.data();
  auto put = [&p](const std::string& s) {
    std::memcpy(p, s.data(), s.size());
    p += s.size();
  };
  put(table);
  for (const auto& c : *row.row) {
    *p++ = '\x1f';
    if (c)
      put(*c);
    else
      *p++ = '\x1e';
  }
  if (!row.salt.empty()) {
    *p++ = '\x1d';
    put(row.salt);
  }
  return text;
}

std::uint64_t little_endian64(const std::string& bytes) {
  std::uint64_t h = 0;
  for (int i = 0; i < 8; ++i) h |= std::uint64_t{static_cast<unsigned char>(bytes[i])} << (8 * i);
  return h;
}
}  // namespace

const std::string& SourceRow::raw_hash() const {
  if (digest_.empty()) digest_ = sha256(row_text(*this));
  return digest_;
}

std::uint64_t SourceRow::legacy_hash64() const {
  return little_endian64(sha512(row_text(*this)));
}

std::string SourceRow::hash() const {
  static const char* digits = "0123456789abcdef";
  std::string out;
  for (unsigned char c : raw_hash().substr(0, 12)) {
    out.push_back(digits[c >> 4]);
    out.push_back(digits[c & 15]);
  }
  return out;
}

std::uint64_t SourceRow::hash64() const {
  return little_endian64(raw_hash());
}

std::optional<Echo> applied_echo(const db::Cell& change_id, const db::Cell& timestamp,
                                 const db::Cell& came_from, const db::Cell& chain) {
  if (!change_id) return std::nullopt;
  Echo e;
  e.change_id = *change_id;
  e.timestamp = timestamp.value_or("");
  e.came_from = came_from.value_or("");
  boost::system::error_code ec;
  boost::json::value v = boost::json::parse(chain.value_or("[]"), ec);
  if (!ec && v.is_array()) {
    for (const auto& s : v.get_array()) {
      if (s.is_string()) e.chain.emplace_back(s.get_string());
    }
  }
  return e;
}

ChangeMapper::ChangeMapper(MapperOptions options, db::Connection& lookup, Store& store)
    : o_(std::move(options)), lookup_(lookup), translator_(lookup), store_(store) {}

const TypeRegistry& ChangeMapper::registry() const {
  return o_.registry ? *o_.registry : TypeRegistry::builtin();
}

std::string ChangeMapper::image_key(const std::string& table, const std::string& id) {
  std::string key;
  image_key(table, id, key);
  return key;
}

void ChangeMapper::image_key(const std::string& table, const std::string& id, std::string& out) {
  out.assign(table).append("/").append(id);
}

void ChangeMapper::Images::flush_into(CaptureBatch& batch) {
  batch.sign_as = sign_as;
  batch.shared_images = std::make_shared<const EncodedImages>(std::move(pending));
  pending = EncodedImages();
}

std::future<Status> ChangeMapper::Images::commit_in_background(Store& store, CaptureBatch batch,
                                                               bool with_images) {
  // The previous batch's images, committed by now: the store (and its cache) has them.
  auto committed = std::move(in_flight);
  if (with_images) {
    in_flight = std::make_shared<const EncodedImages>(std::move(pending));
    pending = EncodedImages();
    pending.reserve(in_flight->size());  // the next chunk is likely as big: no rehash as it fills
    batch.shared_images = in_flight;
  }
  batch.sign_as = sign_as;
  return committer->run([&store, b = std::move(batch), old = std::move(committed)]() mutable {
    old.reset();  // thousands of images: freed here, not on the capturing thread
    crash_point("capture.before_commit");
    auto s = store.commit_capture(std::move(b));
    if (s) crash_point("capture.after_commit");
    return s;
  });
}

ChangeMapper::Images ChangeMapper::Images::none() {
  Images images;
  images.load = [](const TypeDefinition&, const std::string&, const std::string&, std::string&) {
    return Result<bool>(false);
  };
  return images;
}

ChangeMapper::Images ChangeMapper::store_images() {
  Images images;
  images.sign_as = o_.node;
  if (!committer_) committer_ = std::make_unique<CommitThread>("cs-commit");
  images.committer = committer_.get();
  images.load = [this](const TypeDefinition&, const std::string&, const std::string& key,
                       std::string& out) { return store_.image_encoded(key, out); };
  return images;
}

namespace {
// The entity's last image, encoded: as the batch being mapped left it, as the one being
// committed left it, or as stored (read into `scratch`, valid until its next use); nullopt when
// it has none.
Result<std::optional<std::string_view>> image(ChangeMapper::Images& images,
                                              const TypeDefinition& def, const std::string& id,
                                              const std::string& key, std::string& scratch) {
  using Found = std::optional<std::string_view>;
  auto known = [](std::string_view bytes) { return bytes.empty() ? Found() : Found(bytes); };
  if (auto bytes = images.pending.find(key)) return known(*bytes);
  if (images.in_flight) {
    if (auto bytes = images.in_flight->find(key)) return known(*bytes);
  }
  auto found = images.load(def, id, key, scratch);
  if (!found) return found.error();
  return *found ? Found(scratch) : Found();
}
}  // namespace

Result<EntityImage> ChangeMapper::decode(std::string_view encoded, const std::string& what) const {
  EntityImage img;
  if (!store_.decode_image(encoded, img))
    return make_error(Errc::storage, "corrupt entity image " + what);
  return img;
}

std::uint64_t ChangeMapper::names_id(const TypeDefinition& def) {
  for (const auto& [d, id] : names_ids_) {
    if (d == &def) return id;
  }
  std::vector<std::string> names;
  for (const auto& c : def.columns) names.push_back(c.wire_name());
  const std::uint64_t id = store_.image_names_id(names);
  names_ids_.emplace_back(&def, id);
  return id;
}

Result<std::string> ChangeMapper::reference(Images& images, const TypeDefinition& def,
                                            const std::string& id, bool ours) {
  const std::string key = image_key(def.table, id);
  auto img = image(images, def, id, key, images.reference_scratch);
  if (!img) return img.error();
  if (*img) {
    ImageView view;
    if (ImageView::parse(**img, view)) return std::string(view.entity_reference);
    auto decoded = decode(**img, key);
    if (!decoded) return decoded.error();
    return decoded->entity_reference;
  }
  if (o_.api_contact_id > 0) {
    auto mapped = store_.value(Store::apiv4_reference_key(def.table, id));
    if (!mapped) return mapped.error();
    if (!mapped->empty()) return *mapped;
  }
  // Tables without any idmap entry when the scan began need no look-up (a query per new entity
  // is most of a big import's cost otherwise); rows our appliers wrote always look up.
  if (!ours && unmapped_tables_[def.table]) return o_.node + "-" + id;
  return db::global_reference(lookup_, o_.node, def.table, id);
}

Status ChangeMapper::refresh_unmapped_tables(const std::vector<const TypeDefinition*>& types) {
  for (const auto* t : types) {
    for (const TypeDefinition* d : {t, t->parent ? registry().find(t->parent->type) : nullptr}) {
      if (!d) continue;
      auto any =
          lookup_.scalar("SELECT EXISTS (SELECT 1 FROM civishare_idmap WHERE entity_table = " +
                         lookup_.quote(d->table) + ")");
      if (!any) return any.error();
      unmapped_tables_[d->table] = any->value_or("0") == "0";
    }
  }
  return ok_status();
}

Status ChangeMapper::add_primary_emails(std::vector<OutboxEntry>& records) {
  std::map<std::string, std::vector<Change*>> by_id;
  const std::string own = o_.node + "-";
  for (auto& r : records) {
    Change& c = r.change;
    if (c.operation != Operation::create || c.entity != "Contact" ||
        c.entity_reference.compare(0, own.size(), own) != 0) {
      continue;
    }
    by_id[c.entity_reference.substr(own.size())].push_back(&c);
  }
  if (by_id.empty()) return ok_status();
  std::string ids;
  for (const auto& [id, changes] : by_id) ids += (ids.empty() ? "" : ",") + lookup_.quote(id);
  auto emails = lookup_.query(
      "SELECT contact_id, email FROM civicrm_email WHERE is_primary = 1 AND contact_id IN (" + ids +
      ")");
  if (!emails) return emails.error();
  for (const auto& row : emails->rows) {
    if (!row[0] || !row[1]) continue;
    for (Change* c : by_id[*row[0]]) c->context["primary_email"] = *row[1];
  }
  return ok_status();
}

Status ChangeMapper::image_of(const SourceRow& lr, Images& images, const std::string& id, bool ours,
                              std::string& out, std::string_view known_reference) {
  const TypeDefinition& def = *lr.type;
  std::string entity_reference, parent_reference;
  if (known_reference.empty()) {
    auto ref = reference(images, def, id, ours);
    if (!ref) return ref.error();
    entity_reference = std::move(*ref);
  } else {
    entity_reference = known_reference;
  }
  if (def.parent) {
    const TypeDefinition* parent_def = registry().find(def.parent->type);
    auto parent_id = lr.get(def.parent->column);
    if (parent_def && parent_id) {
      auto pref = reference(images, *parent_def, *parent_id, ours);
      if (!pref) return pref.error();
      parent_reference = std::move(*pref);
    }
  }
  std::vector<std::string> warnings;
  auto to_wire = [this](const ColumnDefinition& col, const db::Cell& c, std::string& text) {
    return translator_.to_wire(col, c, text);
  };
  out.clear();
  Status s = ok_status();
  if (const std::uint64_t names = names_id(def); names != 0) {
    begin_image(out, names, entity_reference, parent_reference);
    s = for_each_wire_value(
        def, *lr.columns, *lr.row, to_wire, warnings,
        [&](std::size_t, std::string_view text) { append_image_value(out, text); });
  } else {  // the type's names have no id of their own: the image carries them
    EntityImage img{std::move(entity_reference), std::move(parent_reference), {}};
    auto values = wire_values(def, *lr.columns, *lr.row, to_wire, warnings);
    if (values) {
      img.values = std::move(*values);
      out = encode_image_with_names(img);
    } else {
      s = values.error();
    }
  }
  if (!s) return s;
  for (const auto& w : warnings) log_warn("capture", def.table + " id " + id + ": " + w);
  return ok_status();
}

void ChangeMapper::prefetch(const SourceRow& lr, const Images& images) {
  const db::Cell& id = lr.get(lr.type->key);
  if (!id) return;
  static thread_local std::string key;  // (its storage kept from call to call)
  image_key(lr.type->table, *id, key);
  images.pending.prefetch(key);
}

Status ChangeMapper::map_row(const SourceRow& lr, Images& images, std::vector<OutboxEntry>& out) {
  const TypeDefinition& def = *lr.type;
  const db::Cell& id = lr.get(def.key);
  if (!id || lr.action.empty()) {
    log_warn("capture", def.table + ": a row without id or action was skipped");
    return ok_status();
  }
  std::string& key = row_key_;  // (its storage kept from row to row)
  image_key(def.table, *id, key);
  auto found = image(images, def, *id, key, images.previous_scratch);
  if (!found) return found.error();
  // May point into `images.pending`: read before this row's image replaces it there.
  const std::optional<std::string_view> previous = *found;
  if (lr.action == "Delete" && !previous) {
    images.pending.put(key, {});
    return ok_status();  // never shared: nothing to delete elsewhere
  }
  const bool ours = o_.ours && o_.ours(lr);
  // The previous image in place when it has the type's own list of names (what this build
  // writes), decoded otherwise (images of earlier builds or definitions).
  ImageView before;
  std::optional<EntityImage> decoded_before;
  if (previous && (!ImageView::parse(*previous, before) || before.names_id != names_id(def))) {
    auto d = decode(*previous, key);
    if (!d) return d.error();
    decoded_before = std::move(*d);
    before.entity_reference = decoded_before->entity_reference;
    before.parent_reference = decoded_before->parent_reference;
  }

  // Records that go to the store as they are (store_images(): signed by the store when read):
  // their attribute changes are handed over encoded, never as JSON values.
  const bool store_bound = !images.sign_as.empty();
  EncodedAttributes encoded_attributes;
  Change change;
  change.type = def.type;
  change.entity = def.entity;
  change.timestamp = utc_iso(lr.ts);
  if (lr.action == "Delete") {
    change.operation = Operation::remove;
    change.entity_reference = before.entity_reference;
    if (def.parent && !before.parent_reference.empty()) {
      change.context[def.parent->context_key] = before.parent_reference;
    }
    images.pending.put(key, {});
  } else {
    static thread_local std::string encoded;
    if (auto s = image_of(lr, images, *id, ours, encoded,
                          previous ? before.entity_reference : std::string_view());
        !s)
      return s;
    ImageView after;
    std::optional<std::vector<AttributeChange>> diff;
    std::optional<EntityImage> decoded_after;
    if (ImageView::parse(encoded, after) && !decoded_before) {
      const std::string_view* old_values = previous ? &before.values : nullptr;
      if (store_bound) {  // the texts as the images hold them, straight into the entry's encoding
        if (diff_encoded_values(def, old_values, after.values, encoded_attributes))
          diff.emplace();
        else
          encoded_attributes = EncodedAttributes();
      } else {
        diff = diff_encoded_values(def, old_values, after.values);
      }
    }
    if (!diff) {  // another list of names on either side
      auto now = decode(encoded, key);
      if (!now) return now.error();
      decoded_after = std::move(*now);
      after.entity_reference = decoded_after->entity_reference;
      after.parent_reference = decoded_after->parent_reference;
      diff = diff_values(def, decoded_before ? &decoded_before->values : nullptr,
                         decoded_after->values);
    }
    change.operation = previous ? Operation::update : Operation::create;
    change.entity_reference = after.entity_reference;
    if (def.parent && !after.parent_reference.empty())
      change.context[def.parent->context_key] = after.parent_reference;
    change.attribute_changes = std::move(*diff);
    // A moved child (merge re-parents emails) must tell peers its new parent.
    const bool reparented = previous && before.parent_reference != after.parent_reference;
    images.pending.put(key, encoded);
    if (change.attribute_changes.empty() && encoded_attributes.count == 0 && !reparented)
      return ok_status();
  }
  change.id = change_id(o_.node, lr.hash());
  OutboxEntry entry;
  entry.encoded_attributes = std::move(encoded_attributes);
  if (ours && o_.link) {  // our applier's write: carry the chain of the change it applied on
    auto link = o_.link(lr);
    if (!link) return link.error();
    if (*link) {
      change.id = (*link)->change_id;
      change.timestamp = (*link)->timestamp;
      change.loop_detection = (*link)->chain;
      entry.came_from = (*link)->came_from;
    }
  }
  if (images.sign_as.empty()) change.loop_detection.push_back(change_signature(change, o_.node));
  entry.change = std::move(change);
  out.push_back(std::move(entry));
  return ok_status();
}

Result<std::size_t> ChangeMapper::snapshot(db::Connection& reader,
                                           const std::vector<const TypeDefinition*>& types,
                                           const std::string& only_to) {
  if (auto s = reader.exec("START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY"); !s)
    return s.error();
  std::vector<db::Rows> tables;
  for (const auto* def : types) {
    auto rows = reader.query("SELECT * FROM " + db::Connection::quote_identifier(def->table));
    if (!rows) {
      (void)reader.exec("COMMIT");
      return rows.error();
    }
    tables.push_back(std::move(*rows));
  }
  (void)reader.exec("COMMIT");
  if (auto s = refresh_unmapped_tables(types); !s) return s.error();
  const std::int64_t now = unix_now();
  auto images = store_images();
  CaptureBatch batch;
  for (std::size_t t = 0; t < tables.size(); ++t) {
    ColumnIndex cols(tables[t].columns);
    for (const auto& r : tables[t].rows) {
      SourceRow row;
      row.type = types[t];
      row.ts = now;
      row.action = "Initialization";
      row.columns = &cols;
      row.row = &r;
      if (auto s = map_row(row, images, batch.records); !s) return s.error();
    }
  }
  images.flush_into(batch);
  for (auto& r : batch.records) r.only_to = only_to;
  if (auto s = add_primary_emails(batch.records); !s) return s.error();
  const std::size_t n = batch.records.size();
  if (auto s = store_.commit_capture(std::move(batch)); !s) return s.error();
  return n;
}

}  // namespace civishare
