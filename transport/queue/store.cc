#include "transport/queue/store.h"

#include <rocksdb/db.h>
#include <rocksdb/filter_policy.h>
#include <rocksdb/options.h>
#include <rocksdb/slice_transform.h>
#include <rocksdb/table.h>
#include <rocksdb/write_batch.h>
#include <sys/statvfs.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <iterator>

#include "schemas/canonical_json.h"
#include "schemas/crash_point.h"
#include "schemas/log.h"
#include "transport/queue/encoding.h"

namespace civishare {
namespace json = boost::json;

namespace {

constexpr char kOutbox[] = "o/";
constexpr char kInbox[] = "i/";
constexpr char kAck[] = "a/";
constexpr char kCursor[] = "c/";
constexpr char kImage[] = "m/";
constexpr char kSeen[] = "s/";
constexpr char kMessage[] = "w/";
constexpr char kPeer[] = "p/";
constexpr char kRow[] = "r/";
constexpr char kCounter[] = "k/";
constexpr char kHeldFrom[] = "outbox.held_from";  // a cursor: first held outbox seq

// prefix + seq as 16 lower-case hex digits (what "%016" PRIx64 writes; without printf's cost:
// one per captured record).
std::string seq_key(const char* prefix, std::uint64_t seq) {
  std::string key(prefix);
  const std::size_t at = key.size();
  key.resize(at + 16);
  for (int i = 15; i >= 0; --i, seq >>= 4) key[at + i] = "0123456789abcdef"[seq & 0xf];
  return key;
}

// A seen signature's key. A signature is the base64 text of a sha512 (88 characters): its key is
// "s/" 0x00 and the first 32 of those 64 bytes (collisions: 2^-128), 35 bytes instead of 90 in the
// WAL, the memtable and every compaction. Any other text (a malformed signature of a peer) is kept
// as it is: "s/" 0x01 text. Earlier builds wrote "s/" text (Store::legacy_seen_).
//
// Signatures this node received: "s/" 0x00 and the 32 bytes a canonical signature encodes, or
// "s/" 0x01 and the text of any other. Builds of 2026-11-29 also kept the signatures of the changes
// they captured, under "s/" 0x02, the timestamp's length and text, then the 32 bytes; nothing looks
// them up any more (a change this node captured is recognised by its id, see the receiver) and
// pruning removes them with the rest. Older builds wrote the base64 text after "s/".
constexpr char kSeenRandom = '\x00', kSeenText = '\x01', kSeenByTimeOfOldBuilds = '\x02';

// The 32 bytes a canonical signature encodes, or false for any other text.
bool signature_bytes(std::string_view sig, char (&bytes)[33]) {
  static const auto value_of = [] {
    std::array<signed char, 256> v;
    v.fill(-1);
    const char* alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    for (int i = 0; i < 64; ++i)
      v[static_cast<unsigned char>(alphabet[i])] = static_cast<signed char>(i);
    return v;
  }();
  // Canonical base64 of 64 bytes: 86 characters of the alphabet, "==", and the last one's 4
  // unused bits zero. (crypto's base64_decode accepts non-canonical text, which would give two
  // texts one key, and allocates: this runs once per captured change.)
  bool canonical = sig.size() == 88 && sig.ends_with("==") &&
                   (value_of[static_cast<unsigned char>(sig[85])] & 15) == 0;
  for (std::size_t i = 0; canonical && i < 86; ++i)
    canonical = value_of[static_cast<unsigned char>(sig[i])] >= 0;
  if (!canonical) return false;
  for (std::size_t g = 0; g < 11; ++g) {  // 11 groups of 4 characters = 33 bytes, 32 are kept
    std::uint32_t bits = 0;
    for (std::size_t i = 4 * g; i < 4 * g + 4; ++i)
      bits = (bits << 6) | static_cast<std::uint32_t>(value_of[static_cast<unsigned char>(sig[i])]);
    bytes[3 * g] = static_cast<char>(bits >> 16);
    bytes[3 * g + 1] = static_cast<char>(bits >> 8);
    bytes[3 * g + 2] = static_cast<char>(bits);
  }
  return true;
}

std::string seen_key(std::string_view sig) {
  char bytes[33];
  std::string key(kSeen);
  if (!signature_bytes(sig, bytes)) {
    key.push_back(kSeenText);
    key.append(sig);
    return key;
  }
  key.push_back(kSeenRandom);
  key.append(bytes, 32);
  return key;
}

std::uint64_t seq_of(const rocksdb::Slice& key) {
  return std::strtoull(std::string(key.data() + 2, key.size() - 2).c_str(), nullptr, 16);
}

Error storage_error(const rocksdb::Status& s, const std::string& what) {
  return make_error(Errc::storage, what + ": " + s.ToString());
}

// A queued change (outbox and inbox entries), 0xB1 and then: id, type, timestamp, entity,
// entity_reference (texts), the operation (one byte: 0 create, 1 update, 2 delete), the context
// (a count, then key and value texts), the attribute changes (a count, then each: name, a byte 1
// when `from` is there, `from` and `to` as JSON texts), the signature chain (a count and texts),
// the peer it came from, the time (unix seconds), only_to. About half the bytes of the JSON that
// earlier builds wrote ({"change":..,"from":..,"at":..[,"to":..]}, still read): capture writes one
// per row, so that is half the bytes in the WAL, the memtable, flushes and compactions.
constexpr char kEntryBinary = '\xb1';
// The same followed by one more text, a node's name: the entry is read with that node's signature
// appended to its chain (change_signature of the stored fields, so the same on every read). What
// capture writes: the signature (88 characters, about a third of a captured record's bytes, and a
// sha512 of the canonical JSON) is made when the entry is read for a peer, not for every record.
constexpr char kEntrySignOnRead = '\xb2';

bool binary_entry(std::string_view bytes) {
  return !bytes.empty() && (bytes.front() == kEntryBinary || bytes.front() == kEntrySignOnRead);
}

// One attribute change of an entry: its name, a byte 1 when `from` is there (nullptr: absent),
// `from` and `to` as JSON texts.
void put_attribute(std::string& out, std::string_view name, const std::string_view* from,
                   std::string_view to) {
  put_text(out, name);
  out.push_back(from ? '\x01' : '\x00');
  if (from) put_text(out, *from);
  put_text(out, to);
}

}  // namespace

void EncodedAttributes::add(std::string_view name, const std::string_view* from,
                            std::string_view to) {
  put_attribute(bytes, name, from, to);
  ++count;
}

namespace {

std::string encode_entry(const Change& c, const std::string& came_from, std::int64_t at,
                         const std::string& only_to = "", const std::string& sign_as = "",
                         const EncodedAttributes* encoded = nullptr) {
  std::string out;
  out.reserve(160 + 40 * c.attribute_changes.size() + 90 * c.loop_detection.size() +
              (encoded ? encoded->bytes.size() : 0));
  out.push_back(sign_as.empty() ? kEntryBinary : kEntrySignOnRead);
  for (const std::string* t : {&c.id, &c.type, &c.timestamp, &c.entity, &c.entity_reference})
    put_text(out, *t);
  out.push_back(static_cast<char>(c.operation));
  put_varint(out, c.context.size());
  for (const auto& [k, v] : c.context) {
    put_text(out, k);
    put_text(out, v);
  }
  put_varint(out, c.attribute_changes.size() + (encoded ? encoded->count : 0));
  if (encoded) out.append(encoded->bytes);
  static thread_local std::string from_json, to_json;
  for (const auto& a : c.attribute_changes) {
    std::string_view from;
    if (a.from) {
      from_json.clear();
      append_json(from_json, *a.from);
      from = from_json;
    }
    to_json.clear();
    append_json(to_json, a.to);
    put_attribute(out, a.name, a.from ? &from : nullptr, to_json);
  }
  put_varint(out, c.loop_detection.size());
  for (const auto& sig : c.loop_detection) put_text(out, sig);
  put_text(out, came_from);
  put_varint(out, static_cast<std::uint64_t>(std::max<std::int64_t>(at, 0)));
  put_text(out, only_to);
  if (!sign_as.empty()) put_text(out, sign_as);
  return out;
}

struct DecodedEntry {
  Change change;
  std::string came_from, only_to;
  std::int64_t at = 0;
};

// `routing_only`: the change's id, type, timestamp, entity and reference, came_from, only_to and
// the time are read; its context, attributes and signatures are checked for their lengths and
// skipped (what deciding who gets an entry needs: no JSON parsed, no signature made).
bool decode_binary_entry(std::string_view bytes, DecodedEntry& e, bool routing_only = false) {
  Reader r{bytes.substr(1)};
  Change& c = e.change;
  for (std::string* t : {&c.id, &c.type, &c.timestamp, &c.entity, &c.entity_reference}) {
    if (!r.text(*t)) return false;
  }
  if (r.in.empty() || static_cast<unsigned char>(r.in.front()) > 2) return false;
  c.operation = static_cast<Operation>(r.in.front());
  r.in.remove_prefix(1);
  // A text into `out`, or only past it when routing_only.
  std::string_view skipped;
  auto text = [&](std::string& out) { return routing_only ? r.text_view(skipped) : r.text(out); };
  auto value = [&](json::value& out) {
    std::string_view json_text;
    if (!r.text_view(json_text)) return false;
    if (routing_only) return true;
    boost::system::error_code ec;
    out = json::parse(json_text, ec);
    return !ec;
  };
  std::size_t n = 0;
  if (!r.varint(n) || n > r.in.size()) return false;
  for (std::size_t i = 0; i < n; ++i) {
    std::string k, v;
    if (!text(k) || !text(v)) return false;
    if (!routing_only) c.context[std::move(k)] = std::move(v);
  }
  if (!r.varint(n) || n > r.in.size()) return false;
  AttributeChange skipped_change;
  if (!routing_only) c.attribute_changes.resize(n);
  for (std::size_t i = 0; i < n; ++i) {
    AttributeChange& a = routing_only ? skipped_change : c.attribute_changes[i];
    if (!text(a.name) || r.in.empty()) return false;
    const char has_from = r.in.front();
    r.in.remove_prefix(1);
    if (has_from != 0 && !value(a.from.emplace())) return false;
    if (!value(a.to)) return false;
  }
  if (!r.varint(n) || n > r.in.size()) return false;
  std::string skipped_signature;
  if (!routing_only) c.loop_detection.resize(n);
  for (std::size_t i = 0; i < n; ++i) {
    if (!text(routing_only ? skipped_signature : c.loop_detection[i])) return false;
  }
  std::size_t at = 0;
  if (!r.text(e.came_from) || !r.varint(at) || !r.text(e.only_to)) return false;
  std::string sign_as;
  if (bytes.front() == kEntrySignOnRead && (!r.text(sign_as) || sign_as.empty())) return false;
  if (!r.in.empty()) return false;
  e.at = static_cast<std::int64_t>(at);
  if (!sign_as.empty() && !routing_only) c.loop_detection.push_back(change_signature(c, sign_as));
  return true;
}

bool decode_json_entry(std::string_view bytes, DecodedEntry& e, std::string& why) {
  boost::system::error_code ec;
  json::value v = json::parse(bytes, ec);
  if (ec || !v.is_object() || !v.get_object().contains("change")) return false;
  auto c = change_from_json(v.at("change"));
  if (!c) {
    why = c.error().message;
    return false;
  }
  e.change = std::move(*c);
  if (auto* f = v.get_object().if_contains("from"); f && f->is_string())
    e.came_from = f->get_string();
  const json::value* at = v.get_object().if_contains("at");
  e.at = at && at->is_int64() ? at->get_int64() : 0;
  if (auto* to = v.get_object().if_contains("to"); to && to->is_string())
    e.only_to = to->get_string();
  return true;
}

// `routing_only`: see decode_binary_entry (entries of earlier builds, JSON, are read whole).
template <typename Entry>
Result<Entry> decode_entry(std::uint64_t seq, const rocksdb::Slice& value,
                           bool routing_only = false) {
  const std::string_view bytes(value.data(), value.size());
  DecodedEntry d;
  std::string why;
  const bool ok = binary_entry(bytes) ? decode_binary_entry(bytes, d, routing_only)
                                      : decode_json_entry(bytes, d, why);
  if (!ok) {
    return make_error(Errc::storage, "corrupt queue entry " + std::to_string(seq) +
                                         (why.empty() ? std::string() : ": " + why));
  }
  Entry e;
  e.seq = seq;
  e.change = std::move(d.change);
  e.came_from = std::move(d.came_from);
  if constexpr (std::is_same_v<Entry, InboxEntry>) e.received_at = d.at;
  if constexpr (std::is_same_v<Entry, OutboxEntry>) {
    e.queued_at = d.at;
    e.only_to = std::move(d.only_to);
  }
  return e;
}

// Row counts of one second live under "r/<16 hex ts>/": one key "+<8 hex n>" per batch that saw
// rows of that second, holding 12 bytes per distinct row (the row hash and the absolute count,
// little-endian), n counting up per second. Earlier builds hashed rows with sha512 and wrote keys
// "#<8 hex n>" (the same layout) and before that "<24 hex>" (one per row, the hash's first 12
// bytes, the count in decimal): both are still read, as RowCounts::legacy.
constexpr char kRowCountsKey = '+';
constexpr char kLegacyRowCountsKey = '#';
std::string row_prefix(std::int64_t log_ts) {
  char buf[24];
  std::snprintf(buf, sizeof buf, "%016" PRIx64 "/", static_cast<std::uint64_t>(log_ts));
  return kRow + std::string(buf);
}

std::string encode_row_counts(const std::vector<std::pair<std::uint64_t, std::uint32_t>>& counts) {
  std::string out;
  out.reserve(counts.size() * 12);
  for (const auto& [hash, count] : counts) {
    for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>(hash >> (8 * i)));
    for (int i = 0; i < 4; ++i) out.push_back(static_cast<char>(count >> (8 * i)));
  }
  return out;
}

int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

}  // namespace

// Column families by key prefix (keys keep their prefixes). The outbox's keys only grow, so a
// flushed file seldom overlaps older ones and compaction mostly moves files instead of rewriting
// them; images are overwritten in place and read by point look-ups; seen signatures are random
// keys. Kept apart, none of them rewrites the others. Everything else is small and stays in the
// default family.
struct FamilyOfPrefix {
  const char* prefix;
  const char* name;
};
constexpr FamilyOfPrefix kFamilies[] = {{kOutbox, "outbox"}, {kImage, "images"}, {kSeen, "seen"}};

struct Store::Families {
  rocksdb::DB* db = nullptr;
  std::vector<rocksdb::ColumnFamilyHandle*> handles;                  // as opened
  rocksdb::ColumnFamilyHandle* fallback = nullptr;                    // the default family
  rocksdb::ColumnFamilyHandle* of_prefix[std::size(kFamilies)] = {};  // fallback if not opened

  rocksdb::ColumnFamilyHandle* of(const rocksdb::Slice& key) const {
    for (std::size_t i = 0; i < std::size(kFamilies); ++i) {
      if (key.starts_with(kFamilies[i].prefix)) return of_prefix[i];
    }
    return fallback;
  }
  ~Families() {
    if (db == nullptr) return;  // a failed open leaves no handles to release
    for (auto* h : handles) db->DestroyColumnFamilyHandle(h);
  }
};

class Store::Batch {
 public:
  explicit Batch(const Families& f) : f_(f), wb_(own_) {}
  // Builds into `reuse`, emptied first: a big batch keeps its buffer from one commit to the next
  // instead of growing a new one through freshly faulted pages each time.
  Batch(const Families& f, rocksdb::WriteBatch& reuse) : f_(f), wb_(reuse) { wb_.Clear(); }
  void put(const rocksdb::Slice& key, const rocksdb::Slice& value) {
    wb_.Put(f_.of(key), key, value);
  }
  void erase(const rocksdb::Slice& key) { wb_.Delete(f_.of(key), key); }
  rocksdb::WriteBatch* rocks() { return &wb_; }

 private:
  const Families& f_;
  rocksdb::WriteBatch own_;
  rocksdb::WriteBatch& wb_;
};

Store::Store(rocksdb::DB* db, std::unique_ptr<Families> families, std::string dir)
    : dir_(std::move(dir)), db_(db), families_(std::move(families)) {}
Store::~Store() {
  families_.reset();  // handles go before the database
  delete db_;
}

rocksdb::Status Store::get(const std::string& key, std::string* value) const {
  return db_->Get(rocksdb::ReadOptions(), families_->of(key), key, value);
}

std::unique_ptr<rocksdb::Iterator> Store::iterate(const std::string& prefix) const {
  return std::unique_ptr<rocksdb::Iterator>(
      db_->NewIterator(rocksdb::ReadOptions(), families_->of(prefix)));
}

Result<std::unique_ptr<Store>> Store::open(const std::string& data_dir) {
  return open_at(data_dir, false);
}

Result<std::unique_ptr<Store>> Store::open_read_only(const std::string& data_dir) {
  return open_at(data_dir, true);
}

Result<std::unique_ptr<Store>> Store::open_at(const std::string& data_dir, bool read_only) {
  const std::string path = data_dir + "/store";
  rocksdb::Options options;
  options.create_if_missing = !read_only;
  options.create_missing_column_families = !read_only;
  options.max_open_files = 256;
  options.keep_log_file_num = 5;
  // Bounded memory (the agent sits beside the database): 16 MiB memtables, two per family at
  // most, 48 MiB across the families.
  options.write_buffer_size = 16 << 20;
  options.max_write_buffer_number = 2;
  options.db_write_buffer_size = 48 << 20;
  rocksdb::BlockBasedTableOptions table;
  table.filter_policy.reset(rocksdb::NewBloomFilterPolicy(10));  // point look-ups of absent keys
  options.table_factory.reset(rocksdb::NewBlockBasedTableFactory(table));

  std::vector<std::string> names;
  if (!rocksdb::DB::ListColumnFamilies(options, path, &names).ok() || names.empty())
    names = {rocksdb::kDefaultColumnFamilyName};  // a new store (or none: Open says so below)
  if (!read_only) {  // a read-only view opens what exists (a store of an earlier build: default)
    for (const auto& f : kFamilies) {
      if (std::find(names.begin(), names.end(), f.name) == names.end()) names.push_back(f.name);
    }
  }
  std::vector<rocksdb::ColumnFamilyDescriptor> descriptors;
  for (const auto& n : names) {
    rocksdb::ColumnFamilyOptions family(options);
    // Signatures are base64 of sha512: nothing for snappy to find, only CPU to spend.
    if (n == "seen") family.compression = rocksdb::kNoCompression;
    // Point look-ups of keys that are mostly absent (a new entity's image, a new signature): a
    // bloom filter on the memtable answers them without searching it (320 KiB per memtable).
    if (n == "seen" || n == "images") {
      family.memtable_whole_key_filtering = true;
      family.memtable_prefix_bloom_size_ratio = 0.02;
    }
    // A commit puts each family's keys in order (the outbox's grow, images and signatures are
    // sorted per batch): each insert starts from where the previous one of its prefix went
    // instead of from the skip list's top.
    family.memtable_insert_with_hint_prefix_extractor.reset(rocksdb::NewFixedPrefixTransform(2));
    descriptors.emplace_back(n, family);
  }
  auto families = std::make_unique<Families>();
  rocksdb::DB* db = nullptr;
  auto s = read_only
               ? rocksdb::DB::OpenForReadOnly(options, path, descriptors, &families->handles, &db)
               : rocksdb::DB::Open(options, path, descriptors, &families->handles, &db);
  if (!s.ok()) {
    if (read_only) {
      return make_error(Errc::storage, "cannot read the store in " + path +
                                           " (has `civishare init` run?): " + s.ToString());
    }
    return make_error(Errc::storage,
                      "cannot open the store in " + path +
                          " (is another civishare using this data_dir?): " + s.ToString());
  }
  families->db = db;
  for (std::size_t i = 0; i < names.size(); ++i) {
    if (names[i] == rocksdb::kDefaultColumnFamilyName) families->fallback = families->handles[i];
  }
  for (std::size_t f = 0; f < std::size(kFamilies); ++f) {
    families->of_prefix[f] = families->fallback;
    for (std::size_t i = 0; i < names.size(); ++i) {
      if (names[i] == kFamilies[f].name) families->of_prefix[f] = families->handles[i];
    }
  }
  std::unique_ptr<Store> store(new Store(db, std::move(families), path));
  if (!read_only) {
    if (auto m = store->move_into_families(); !m) return m.error();
  }
  {  // signatures an earlier build wrote as text ("s/" and a base64 character)
    auto it = store->iterate(kSeen);
    it->Seek(std::string(kSeen) + static_cast<char>(kSeenByTimeOfOldBuilds + 1));
    store->legacy_seen_ = it->Valid() && it->key().starts_with(kSeen);
    if (!it->status().ok()) return storage_error(it->status(), "reading seen signatures");
  }
  if (auto n = store->load_image_names(); !n) return n.error();
  auto out = store->last_seq(kOutbox);
  if (!out) return out.error();
  store->next_outbox_ = *out + 1;
  if (!read_only) {
    auto in = store->last_seq(kInbox);
    if (!in) return in.error();
    store->next_inbox_ = *in + 1;
  }
  if (auto held = store->load_held(); !held) return held.error();
  return store;
}

Status Store::move_into_families() {
  rocksdb::WriteOptions wo;
  wo.sync = true;
  for (std::size_t f = 0; f < std::size(kFamilies); ++f) {
    rocksdb::ColumnFamilyHandle* target = families_->of_prefix[f];
    if (target == families_->fallback) continue;
    const std::string prefix = kFamilies[f].prefix;
    std::unique_ptr<rocksdb::Iterator> it(
        db_->NewIterator(rocksdb::ReadOptions(), families_->fallback));
    rocksdb::WriteBatch wb;
    std::uint64_t moved = 0;
    // Each write moves its keys whole (put there, delete here): a crash in between resumes.
    auto flush = [&]() -> Status {
      auto s = write(wo, &wb);
      if (!s.ok()) return storage_error(s, "moving keys into their column family");
      wb.Clear();
      return ok_status();
    };
    for (it->Seek(prefix); it->Valid() && it->key().starts_with(prefix); it->Next()) {
      wb.Put(target, it->key(), it->value());
      wb.Delete(families_->fallback, it->key());
      ++moved;
      if (wb.Count() >= 20000) {
        if (auto s = flush(); !s) return s;
      }
    }
    if (!it->status().ok()) return storage_error(it->status(), "reading the store");
    if (wb.Count() > 0) {
      if (auto s = flush(); !s) return s;
    }
    if (moved) {
      log_info("store", "moved " + std::to_string(moved) + " key(s) of an earlier build into " +
                            "the column family `" + kFamilies[f].name + "`");
    }
  }
  return ok_status();
}

Result<std::uint64_t> Store::last_seq(const std::string& prefix) {
  auto it = iterate(prefix);
  std::string upper = prefix;
  upper.back() = static_cast<char>(upper.back() + 1);
  it->SeekForPrev(upper);
  if (it->Valid() && it->key().starts_with(prefix)) return seq_of(it->key());
  if (!it->status().ok()) return storage_error(it->status(), "reading the queue");
  // Sequences never restart, even when the queue is empty: remember the high-water mark.
  std::string mark;
  auto s = get("h/" + prefix, &mark);
  if (s.ok()) return std::strtoull(mark.c_str(), nullptr, 10);
  if (!s.IsNotFound()) return storage_error(s, "reading the queue");
  return std::uint64_t{0};
}

Status Store::commit_capture(CaptureBatch batch) {
  std::lock_guard lock(mu_);
  // How many images the batch writes.
  const std::size_t images =
      batch.images.size() + (batch.shared_images ? batch.shared_images->size() : 0);
  if (!capture_batch_) capture_batch_ = std::make_unique<rocksdb::WriteBatch>();
  Batch wb(*families_, *capture_batch_);
  std::uint64_t seq = next_outbox_;
  // No signature is kept for what capture emits: a change that comes back here is recognised by
  // the origin its id names (receiver.cc), so the seen family holds received signatures only.
  const std::int64_t now = unix_now();
  for (auto& r : batch.records) {
    r.seq = seq++;
    r.queued_at = now;
    wb.put(seq_key(kOutbox, r.seq), encode_entry(r.change, r.came_from, r.queued_at, r.only_to,
                                                 batch.sign_as, &r.encoded_attributes));
  }
  if (seq != next_outbox_) wb.put(std::string("h/") + kOutbox, std::to_string(seq - 1));
  std::uint64_t held = held_from_;
  if (batch.hold && held == 0 && seq != next_outbox_) {
    held = next_outbox_;
    wb.put(kCursor + std::string(kHeldFrom), std::to_string(held));
  } else if (!batch.hold && held != 0) {
    held = 0;
    wb.erase(kCursor + std::string(kHeldFrom));
  }
  // The images as written, for the cache once the write succeeded ("" = erased); views into the
  // batch and into `encoded` (sized first: its strings never move).
  std::vector<std::string> encoded;
  encoded.reserve(batch.images.size());
  for (const auto& [key, img] : batch.images) encoded.push_back(img ? codec_.encode(*img) : "");
  std::vector<std::pair<std::string_view, std::string_view>> written;
  written.reserve(images);
  for (std::size_t i = 0; i < batch.images.size(); ++i)
    written.emplace_back(batch.images[i].first, encoded[i]);
  if (batch.shared_images) {
    batch.shared_images->for_each(
        [&](std::string_view key, std::string_view bytes) { written.emplace_back(key, bytes); });
  }
  // In key order (memtable inserts with hints); a key in both lists: the shared image, as before.
  std::stable_sort(written.begin(), written.end(),
                   [](const auto& a, const auto& b) { return a.first < b.first; });
  std::string image_key;
  for (const auto& [key, bytes] : written) {
    image_key.assign(kImage).append(key);
    if (bytes.empty())
      wb.erase(image_key);
    else
      wb.put(image_key, bytes);
  }
  const auto names = codec_.unsaved();
  for (const auto& [key, list] : names) wb.put(key, list);
  if (!batch.cursor_name.empty()) {
    wb.put(kCursor + batch.cursor_name, batch.cursor);
    crash_point("capture.cursor_write");
  }
  for (const auto& [name, value] : batch.more_cursors) wb.put(kCursor + name, value);
  for (const auto& [ts, counts] : batch.row_counts) {
    auto key = next_row_counts_key(ts);
    if (!key) return key.error();
    wb.put(*key, encode_row_counts(counts));
  }
  rocksdb::WriteOptions wo;
  wo.sync = batch.sync;
  auto s = write(wo, wb.rocks());
  if (!s.ok()) return storage_error(s, "committing captured changes");
  codec_.saved(names.size());
  image_cache_.update(written);
  next_outbox_ = seq;
  held_from_ = held;
  return ok_status();
}

Result<std::size_t> Store::drop_held() {
  std::lock_guard lock(mu_);
  const std::uint64_t held = held_from_;
  if (held == 0) return std::size_t{0};
  Batch wb(*families_);
  std::size_t dropped = 0;
  auto it = iterate(kOutbox);
  for (it->Seek(seq_key(kOutbox, held)); it->Valid() && it->key().starts_with(kOutbox);
       it->Next(), ++dropped) {
    wb.erase(it->key());
  }
  if (!it->status().ok()) return storage_error(it->status(), "reading held records");
  wb.erase(kCursor + std::string(kHeldFrom));
  rocksdb::WriteOptions wo;
  wo.sync = true;
  auto s = write(wo, wb.rocks());
  if (!s.ok()) return storage_error(s, "dropping held records");
  held_from_ = 0;
  return dropped;
}

Status Store::load_held() {
  auto held = cursor(kHeldFrom);
  if (!held) return held.error();
  held_from_ = *held ? std::strtoull((*held)->c_str(), nullptr, 10) : 0;
  return ok_status();
}

Result<std::optional<std::string>> Store::cursor(const std::string& name) {
  std::string v;
  auto s = get(kCursor + name, &v);
  if (s.IsNotFound()) return std::optional<std::string>{};
  if (!s.ok()) return storage_error(s, "reading cursor");
  return std::optional<std::string>{v};
}

Result<std::optional<EntityImage>> Store::image(const std::string& key) {
  EntityImage img;
  auto found = image_into(key, img);
  if (!found) return found.error();
  if (!*found) return std::optional<EntityImage>{};
  return std::optional<EntityImage>{std::move(img)};
}

Result<bool> Store::image_into(const std::string& key, EntityImage& out) {
  static thread_local std::string v;  // the encoded image; its storage is reused row after row
  auto found = image_encoded(key, v);
  if (!found || !*found) return found;
  if (!codec_.decode_into(v, out)) return make_error(Errc::storage, "corrupt entity image " + key);
  return true;
}

Result<bool> Store::image_encoded(const std::string& key, std::string& out) {
  if (!image_cache_.find(key, out)) {
    const auto epoch = image_cache_.epoch();
    auto s = get(kImage + key, &out);
    if (s.IsNotFound())
      out.clear();
    else if (!s.ok())
      return storage_error(s, "reading entity image");
    image_cache_.fill(key, out, epoch);
  }
  return !out.empty();
}

std::uint64_t Store::image_names_id(const std::vector<std::string>& names) {
  return codec_.register_names(names);
}

bool Store::decode_image(std::string_view encoded, EntityImage& out) const {
  return codec_.decode_into(encoded, out);
}

ImageCache::Stats Store::image_cache_stats() const {
  return image_cache_.stats();
}

Status Store::load_image_names() {
  auto it = iterate(ImageCodec::kPrefix);
  for (it->Seek(ImageCodec::kPrefix); it->Valid() && it->key().starts_with(ImageCodec::kPrefix);
       it->Next()) {
    if (!codec_.load(it->key().ToStringView(), it->value().ToStringView())) {
      return make_error(Errc::storage, "corrupt list of image value names " + it->key().ToString());
    }
  }
  if (!it->status().ok()) return storage_error(it->status(), "reading image value names");
  return ok_status();
}

Result<std::vector<OutboxEntry>> Store::read_outbox(
    std::uint64_t after, std::size_t max, const std::function<bool(const OutboxEntry&)>& wanted) {
  std::vector<OutboxEntry> out;
  auto it = iterate(kOutbox);
  const std::uint64_t held = held_from_;
  for (it->Seek(seq_key(kOutbox, after + 1)); it->Valid() && out.size() < max; it->Next()) {
    if (!it->key().starts_with(kOutbox)) break;
    const std::uint64_t seq = seq_of(it->key());
    if (held != 0 && seq >= held) break;
    if (wanted) {
      auto routing = decode_entry<OutboxEntry>(seq, it->value(), /*routing_only=*/true);
      if (!routing) return routing.error();
      // An entry of an earlier build (JSON) was read whole already: not parsed a second time.
      if (!wanted(*routing) || !binary_entry({it->value().data(), it->value().size()})) {
        out.push_back(std::move(*routing));
        continue;
      }
    }
    auto e = decode_entry<OutboxEntry>(seq, it->value());
    if (!e) return e.error();
    out.push_back(std::move(*e));
  }
  if (!it->status().ok()) return storage_error(it->status(), "reading the outbox");
  return out;
}

Result<std::uint64_t> Store::acked(const std::string& peer) {
  std::string v;
  auto s = get(kAck + peer, &v);
  if (s.IsNotFound()) return std::uint64_t{0};
  if (!s.ok()) return storage_error(s, "reading ack position");
  return std::strtoull(v.c_str(), nullptr, 10);
}

Status Store::set_acked(const std::string& peer, std::uint64_t seq) {
  rocksdb::WriteOptions wo;
  wo.sync = true;
  Batch one(*families_);
  one.put(kAck + peer, std::to_string(seq));
  auto s = write(wo, one.rocks());
  if (!s.ok()) return storage_error(s, "writing ack position");
  return ok_status();
}

std::uint64_t Store::last_outbox_seq() const {
  std::lock_guard lock(mu_);
  return next_outbox_ - 1;
}

Status Store::commit_receive(const std::string& peer, const std::string& message_id,
                             std::vector<InboxEntry> entries, std::uint64_t loops_dropped) {
  std::lock_guard lock(mu_);
  Batch wb(*families_);
  if (loops_dropped) {
    auto before = counter(kLoopsDropped);
    if (!before) return before.error();
    wb.put(kCounter + std::string(kLoopsDropped), std::to_string(*before + loops_dropped));
  }
  std::uint64_t seq = next_inbox_;
  const std::string now = std::to_string(unix_now());
  for (auto& e : entries) {
    e.seq = seq++;
    e.received_at = unix_now();
    wb.put(seq_key(kInbox, e.seq), encode_entry(e.change, e.came_from, e.received_at));
    for (const auto& sig : e.change.loop_detection) wb.put(seen_key(sig), now);
  }
  if (seq != next_inbox_) wb.put(std::string("h/") + kInbox, std::to_string(seq - 1));
  wb.put(kMessage + peer + "/" + message_id, now);
  rocksdb::WriteOptions wo;
  wo.sync = true;
  auto s = write(wo, wb.rocks());
  if (!s.ok()) return storage_error(s, "persisting received changes");
  next_inbox_ = seq;
  return ok_status();
}

Result<bool> Store::any_signature_seen(const std::vector<std::string>& signatures) {
  std::string v;
  for (const auto& sig : signatures) {
    auto s = get(seen_key(sig), &v);
    if (s.IsNotFound() && legacy_seen_) s = get(kSeen + sig, &v);  // as an earlier build wrote it
    if (s.ok()) return true;
    if (!s.IsNotFound()) return storage_error(s, "reading seen signatures");
  }
  return false;
}

Result<bool> Store::message_seen(const std::string& peer, const std::string& message_id) {
  std::string v;
  auto s = get(kMessage + peer + "/" + message_id, &v);
  if (s.ok()) return true;
  if (!s.IsNotFound()) return storage_error(s, "reading message ids");
  return false;
}

Status Store::mark_signatures_seen(const std::vector<std::string>& signatures) {
  Batch wb(*families_);
  const std::string now = std::to_string(unix_now());
  for (const auto& sig : signatures) wb.put(seen_key(sig), now);
  auto s = write(rocksdb::WriteOptions(), wb.rocks());
  if (!s.ok()) return storage_error(s, "writing seen signatures");
  return ok_status();
}

Result<std::vector<InboxEntry>> Store::read_inbox(std::size_t max) {
  std::vector<InboxEntry> out;
  auto it = iterate(kInbox);
  for (it->Seek(kInbox); it->Valid() && out.size() < max; it->Next()) {
    if (!it->key().starts_with(kInbox)) break;
    auto e = decode_entry<InboxEntry>(seq_of(it->key()), it->value());
    if (!e) return e.error();
    out.push_back(std::move(*e));
  }
  if (!it->status().ok()) return storage_error(it->status(), "reading the inbox");
  return out;
}

Status Store::remove_inbox(std::uint64_t seq) {
  // Not synced: an entry whose removal a crash loses is offered again, and the appliers recognise
  // it (civishare_applied's unique signature, or the APIv4 applier's synced note) as applied.
  rocksdb::WriteOptions wo;
  Batch one(*families_);
  one.erase(seq_key(kInbox, seq));
  auto s = write(wo, one.rocks());
  if (!s.ok()) return storage_error(s, "removing an applied inbox entry");
  return ok_status();
}

bool Store::background_work() const {
  for (auto* h : families_->handles) {
    for (const char* p : {"rocksdb.num-running-compactions", "rocksdb.num-running-flushes",
                          "rocksdb.compaction-pending", "rocksdb.mem-table-flush-pending"}) {
      std::uint64_t v = 0;
      if (db_->GetIntProperty(h, p, &v) && v > 0) return true;
    }
  }
  return false;
}

rocksdb::Status Store::write(const rocksdb::WriteOptions& options, rocksdb::WriteBatch* batch) {
  if (const std::uint64_t min_free = min_free_bytes_; min_free > 0) {
    struct statvfs fs {};
    if (::statvfs(dir_.c_str(), &fs) == 0) {
      const std::uint64_t free_bytes = static_cast<std::uint64_t>(fs.f_bavail) * fs.f_frsize;
      if (free_bytes < min_free) {
        return rocksdb::Status::NoSpace(
            "data dir almost full: " + std::to_string(free_bytes >> 20) + " MB free in " + dir_ +
            ", node.min_free_mb asks for " + std::to_string(min_free >> 20) +
            "; nothing was written, it is retried once there is space");
      }
    }
  }
  auto s = db_->Write(options, batch);
  if (!s.ok() && !write_failed_) {
    std::lock_guard lock(error_mu_);
    write_error_ = s.ToString();
    write_failed_ = true;
  }
  return s;
}

std::optional<std::string> Store::write_failure() const {
  if (!write_failed_) return std::nullopt;
  std::lock_guard lock(error_mu_);
  return write_error_;
}

Status Store::remove_inbox(const std::vector<std::uint64_t>& seqs) {
  Batch batch(*families_);
  for (auto seq : seqs) batch.erase(seq_key(kInbox, seq));
  auto s = write(rocksdb::WriteOptions(), batch.rocks());  // not synced: see above
  if (!s.ok()) return storage_error(s, "removing applied inbox entries");
  return ok_status();
}

std::uint64_t Store::inbox_size() const {
  std::uint64_t n = 0;
  auto it = iterate(kInbox);
  for (it->Seek(kInbox); it->Valid() && it->key().starts_with(kInbox); it->Next()) ++n;
  return n;
}

}  // namespace civishare

namespace civishare {

Result<PeerBacklog> Store::backlog(const std::string& peer, const std::string& filter,
                                   const std::function<bool(const OutboxEntry&)>& wanted) {
  auto acked_seq = acked(peer);
  if (!acked_seq) return acked_seq.error();
  const std::uint64_t acked = *acked_seq;
  std::lock_guard lock(backlog_mu_);
  BacklogCount& c = backlog_counts_[peer];
  if (c.filter != filter || acked < c.acked || acked >= c.counted) {  // start over from `acked`
    c = BacklogCount{filter, acked, acked, 0, {}};
  }
  for (; c.acked < acked; ++c.acked) {  // what the peer acknowledged since: no longer queued
    if (c.wanted.front()) --c.queued;
    c.wanted.pop_front();
  }
  // Entries queued since: counted up to the first held one (not sendable yet, not queued for
  // anyone); the next call goes on from there.
  auto it = iterate(kOutbox);
  const std::uint64_t held = held_from_;
  for (it->Seek(seq_key(kOutbox, c.counted + 1)); it->Valid() && it->key().starts_with(kOutbox);
       it->Next()) {
    const std::uint64_t seq = seq_of(it->key());
    if (held != 0 && seq >= held) break;
    auto e = decode_entry<OutboxEntry>(seq, it->value(), /*routing_only=*/true);
    if (!e) return e.error();
    for (; c.counted + 1 < seq; ++c.counted) c.wanted.push_back(false);  // a gap: nothing there
    const bool w = wanted(*e);
    c.wanted.push_back(w);
    c.queued += w;
    c.counted = seq;
  }
  if (!it->status().ok()) {
    c = BacklogCount{};
    return storage_error(it->status(), "reading the outbox");
  }
  PeerBacklog b;
  b.acked = acked;
  b.queued = c.queued;
  if (c.queued > 0) {  // the first entry the peer gets: when it was queued
    const auto first = std::find(c.wanted.begin(), c.wanted.end(), true) - c.wanted.begin();
    const std::uint64_t seq = c.acked + 1 + static_cast<std::uint64_t>(first);
    std::string v;
    auto s = get(seq_key(kOutbox, seq), &v);
    if (!s.ok()) {
      c = BacklogCount{};
      return storage_error(s, "reading the outbox");
    }
    auto e = decode_entry<OutboxEntry>(seq, v);
    if (!e) return e.error();
    b.oldest_queued_at = e->queued_at;
  }
  return b;
}

Status Store::set_peer_state(const std::string& peer, const PeerState& st) {
  json::array accepts;
  for (const auto& t : st.accepts) accepts.push_back(json::string(t));
  json::object o{{"accepts", std::move(accepts)},
                 {"negotiated", st.negotiated},
                 {"last_success_at", st.last_success_at},
                 {"last_error_at", st.last_error_at},
                 {"last_error", st.last_error}};
  Batch one(*families_);
  one.put(kPeer + peer, json::serialize(o));
  auto s = write(rocksdb::WriteOptions(), one.rocks());
  if (!s.ok()) return storage_error(s, "writing peer state");
  return ok_status();
}

Result<PeerState> Store::peer_state(const std::string& peer) {
  PeerState st;
  std::string v;
  auto s = get(kPeer + peer, &v);
  if (s.IsNotFound()) return st;
  if (!s.ok()) return storage_error(s, "reading peer state");
  boost::system::error_code ec;
  json::value j = json::parse(v, ec);
  if (ec || !j.is_object()) return st;
  const auto& o = j.get_object();
  if (auto* a = o.if_contains("accepts"); a && a->is_array()) {
    for (const auto& t : a->get_array()) {
      if (t.is_string()) st.accepts.emplace_back(t.get_string());
    }
  }
  if (auto* n = o.if_contains("negotiated"); n && n->is_bool()) st.negotiated = n->get_bool();
  if (auto* x = o.if_contains("last_success_at"); x && x->is_int64())
    st.last_success_at = x->get_int64();
  if (auto* x = o.if_contains("last_error_at"); x && x->is_int64())
    st.last_error_at = x->get_int64();
  if (auto* x = o.if_contains("last_error"); x && x->is_string()) st.last_error = x->get_string();
  return st;
}

Result<std::uint64_t> Store::prune(const std::vector<std::string>& peers, std::int64_t retention_s,
                                   std::int64_t message_id_s, std::int64_t signature_s) {
  std::uint64_t min_acked = last_outbox_seq();
  for (const auto& p : peers) {
    auto a = acked(p);
    if (!a) return a.error();
    min_acked = std::min(min_acked, *a);
  }
  const std::int64_t now = unix_now();
  Batch wb(*families_);
  std::uint64_t dropped = 0;
  auto it = iterate(kOutbox);
  for (it->Seek(kOutbox); it->Valid() && it->key().starts_with(kOutbox); it->Next()) {
    if (seq_of(it->key()) > min_acked) break;
    auto e = decode_entry<OutboxEntry>(seq_of(it->key()), it->value());
    if (!e) return e.error();
    if (e->queued_at > now - retention_s) break;  // in order: the rest is younger
    wb.erase(it->key());
    ++dropped;
  }
  // Timestamped sets: values are the unix second they were written.
  if (!it->status().ok()) return storage_error(it->status(), "pruning");
  for (auto [prefix, keep] : {std::pair{kMessage, message_id_s}, {kSeen, signature_s}}) {
    auto set = iterate(prefix);
    for (set->Seek(prefix); set->Valid() && set->key().starts_with(prefix); set->Next()) {
      if (std::strtoll(set->value().ToString().c_str(), nullptr, 10) < now - keep)
        wb.erase(set->key());
    }
    if (!set->status().ok()) return storage_error(set->status(), "pruning");
  }
  if (wb.rocks()->Count() == 0) return dropped;
  auto s = write(rocksdb::WriteOptions(), wb.rocks());
  if (!s.ok()) return storage_error(s, "pruning");
  return dropped;
}

}  // namespace civishare

namespace civishare {

Result<std::string> Store::next_row_counts_key(std::int64_t log_ts) {
  const std::string prefix = row_prefix(log_ts) + kRowCountsKey;
  auto it = iterate(prefix);
  it->SeekForPrev(prefix + "\xff");
  std::uint32_t n = 0;
  if (it->Valid() && it->key().starts_with(prefix)) {
    n = static_cast<std::uint32_t>(
            std::strtoul(it->key().ToString().substr(prefix.size()).c_str(), nullptr, 16)) +
        1;
  }
  if (!it->status().ok()) return storage_error(it->status(), "reading row counts");
  char buf[12];
  std::snprintf(buf, sizeof buf, "%08" PRIx32, n);
  return prefix + buf;
}

Result<Store::RowCounts> Store::row_counts(std::int64_t log_ts) {
  RowCounts counts;
  auto note = [](std::unordered_map<std::uint64_t, std::uint32_t>& in, std::uint64_t hash,
                 std::uint32_t count) {
    auto& c = in[hash];
    c = std::max(c, count);  // counts are absolute: the highest is the latest
  };
  const std::string prefix = row_prefix(log_ts);
  auto it = iterate(prefix);
  for (it->Seek(prefix); it->Valid() && it->key().starts_with(prefix); it->Next()) {
    const std::string_view name(it->key().data() + prefix.size(), it->key().size() - prefix.size());
    const std::string_view v(it->value().data(), it->value().size());
    if (!name.empty() && (name[0] == kRowCountsKey || name[0] == kLegacyRowCountsKey)) {
      auto& in = name[0] == kRowCountsKey ? counts.by_hash : counts.legacy;
      if (v.size() % 12 != 0) return make_error(Errc::storage, "corrupt row counts " + prefix);
      for (std::size_t at = 0; at < v.size(); at += 12) {
        std::uint64_t hash = 0;
        std::uint32_t count = 0;
        for (int i = 0; i < 8; ++i)
          hash |= std::uint64_t{static_cast<unsigned char>(v[at + i])} << (8 * i);
        for (int i = 0; i < 4; ++i)
          count |= std::uint32_t{static_cast<unsigned char>(v[at + 8 + i])} << (8 * i);
        note(in, hash, count);
      }
    } else if (name.size() >= 16) {  // the older one-key-per-row form
      unsigned char bytes[8];
      bool valid = true;
      for (int i = 0; i < 8; ++i) {
        const int hi = hex_digit(name[2 * i]), lo = hex_digit(name[2 * i + 1]);
        valid = valid && hi >= 0 && lo >= 0;
        bytes[i] = static_cast<unsigned char>(hi * 16 + lo);
      }
      std::uint64_t hash = 0;
      for (int i = 0; i < 8; ++i) hash |= std::uint64_t{bytes[i]} << (8 * i);
      if (valid)
        note(counts.legacy, hash,
             static_cast<std::uint32_t>(std::strtoul(std::string(v).c_str(), nullptr, 10)));
    }
  }
  if (!it->status().ok()) return storage_error(it->status(), "reading row counts");
  return counts;
}

Status Store::prune_row_counts(std::int64_t before_ts) {
  Batch wb(*families_);
  const std::string end = row_prefix(before_ts);
  auto it = iterate(kRow);
  for (it->Seek(kRow); it->Valid() && it->key().starts_with(kRow) && it->key().ToString() < end;
       it->Next()) {
    wb.erase(it->key());
  }
  if (!it->status().ok()) return storage_error(it->status(), "pruning row counts");
  if (wb.rocks()->Count() == 0) return ok_status();
  auto s = write(rocksdb::WriteOptions(), wb.rocks());
  if (!s.ok()) return storage_error(s, "pruning row counts");
  return ok_status();
}

}  // namespace civishare

namespace civishare {

Result<std::uint64_t> Store::counter(const std::string& name) {
  std::string v;
  auto s = get(kCounter + name, &v);
  if (s.IsNotFound()) return std::uint64_t{0};
  if (!s.ok()) return storage_error(s, "reading a counter");
  return std::strtoull(v.c_str(), nullptr, 10);
}

}  // namespace civishare

namespace civishare {

Result<std::string> Store::value(const std::string& key) {
  std::string v;
  auto s = get("v/" + key, &v);
  if (s.IsNotFound()) return std::string();
  if (!s.ok()) return storage_error(s, "reading " + key);
  return v;
}

Status Store::put_values(const std::vector<std::pair<std::string, std::string>>& values) {
  Batch wb(*families_);
  for (const auto& [k, v] : values) {
    if (v.empty())
      wb.erase("v/" + k);
    else
      wb.put("v/" + k, v);
  }
  rocksdb::WriteOptions wo;
  wo.sync = true;
  auto s = write(wo, wb.rocks());
  if (!s.ok()) return storage_error(s, "writing values");
  return ok_status();
}

}  // namespace civishare
