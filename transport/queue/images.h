// How the store keeps the last image emitted per entity (see store.h), and a bounded in-process
// cache of them. Internal to the Store: capture reads images through Store::image.
//
// Encoding (0x02): the image's value names are not repeated in every image. Each distinct list of
// names (one per type and definition file version) is stored once, under "n/<16 hex id>", the id
// being a 64-bit FNV-1a hash of the names; an image holds that id and its values by position.
// Images of earlier builds (0x01: names with every value; JSON before that) are still read.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "schemas/change.h"

namespace civishare {

// The last image emitted for one entity: wire-named attribute values plus its references.
struct EntityImage {
  std::string entity_reference;
  std::string parent_reference;  // for child entities (email...): the contact's reference
  WireValues values;
};

// Encoded images by key ("" = erased), as capture collects them: the bytes the store keeps.
// Capture keeps every image a pass changes until its next checkpoint (a hundred thousand and
// more), so this is not a node-based map, where a look-up touched three or four scattered blocks
// (a tenth of a catch-up's time): an open-addressing table of key hashes points at entries packed
// in big blocks, and a look-up touches the table and the entry. An entity's new image overwrites
// the old in place while it fits the room the old one had.
class EncodedImages {
 public:
  EncodedImages() = default;
  // A moved-from EncodedImages is empty (and owns no block its free room could point into).
  EncodedImages(EncodedImages&& o) noexcept { *this = std::move(o); }
  EncodedImages& operator=(EncodedImages&& o) noexcept;
  EncodedImages(const EncodedImages&) = delete;
  EncodedImages& operator=(const EncodedImages&) = delete;

  // The image of `key` ("" = erased), nullopt when this holds none. The view stays valid until
  // the next put() of the same key (entries never move).
  std::optional<std::string_view> find(std::string_view key) const;
  void put(std::string_view key, std::string_view bytes);
  // Asks the CPU to fetch the table slot where find(key) starts: a look-up that comes a few
  // hundred nanoseconds later finds it in the cache (the table of a big catch-up is megabytes).
  void prefetch(std::string_view key) const {
    if (!slots_.empty())
      __builtin_prefetch(&slots_[std::hash<std::string_view>{}(key) & (slots_.size() - 1)]);
  }
  std::size_t size() const { return used_; }
  bool empty() const { return used_ == 0; }
  // The memory this holds: its blocks and its table.
  std::size_t bytes() const { return block_bytes_ + slots_.size() * sizeof(Slot); }
  // Room for `n` keys without growing the table.
  void reserve(std::size_t n);
  // f(key, bytes) for every key, in no particular order.
  template <typename F>
  void for_each(F&& f) const {
    for (const Slot& s : slots_) {
      if (s.entry != nullptr) f(key_of(s.entry), value_of(s.entry));
    }
  }

 private:
  struct Slot {
    std::uint64_t hash = 0;
    char* entry = nullptr;  // nullptr = empty
  };
  // An entry: key size, value room, value size (4 bytes each), the key, the value's room.
  static constexpr std::size_t kHeader = 12;
  static constexpr std::size_t kBlockBytes = 256 << 10;
  static std::uint32_t field(const char* entry, int i);
  static std::string_view key_of(const char* entry);
  static std::string_view value_of(const char* entry);
  std::size_t slot_of(std::string_view key, std::uint64_t hash) const;  // its slot or an empty one
  char* allocate(std::string_view key, std::string_view bytes);
  void grow();
  std::vector<Slot> slots_;  // size a power of two
  std::size_t used_ = 0;
  std::vector<std::unique_ptr<char[]>> blocks_;
  std::size_t block_bytes_ = 0;
  char* free_ = nullptr;  // the rest of the last block
  std::size_t free_size_ = 0;
};

// Writes an image in the 0x02 encoding value by value, without an EntityImage (the capture's hot
// path): begin_image(), then append_image_value() for each value in the order of the list of
// names `names_id` stands for (ImageCodec::register_names).
void begin_image(std::string& out, std::uint64_t names_id, std::string_view entity_reference,
                 std::string_view parent_reference);
void append_image_value(std::string& out, std::string_view json_text);
// The 0x01 encoding (every value with its name): for an image whose names have no id.
std::string encode_image_with_names(const EntityImage& image);

// A 0x02 image read in place: its references and its values, still encoded (views into the
// bytes given to parse(), valid while they are).
struct ImageView {
  std::uint64_t names_id = 0;
  std::string_view entity_reference, parent_reference;
  std::string_view values;  // the encoded values, one after the other
  // False when `encoded` is not a well-formed 0x02 header (other encodings: ImageCodec::decode).
  static bool parse(std::string_view encoded, ImageView& out);
  // Takes the next value off the front of `values`: its JSON text in `text` and its encoded bytes
  // in `raw` (two values are equal exactly when their raw bytes are). False when `values` is
  // empty or malformed.
  static bool next_value(std::string_view& values, std::string_view& text, std::string_view& raw);
};

class ImageCodec {
 public:
  using Names = std::vector<std::string>;

  // Not thread-safe against itself: one writer (the store's commit, under its lock). decode() may
  // run concurrently with encode().
  std::string encode(const EntityImage& image);
  std::optional<EntityImage> decode(std::string_view encoded) const;
  // decode() into `out`, reusing its storage (no allocation when `out` held an image of the same
  // type before: the capture decodes one image per row). False if malformed.
  bool decode_into(std::string_view encoded, EntityImage& out) const;

  // The id of a list of names, registered (to be saved) when new; 0 when its hash collides with
  // another list's (write such images with encode_image_with_names). Thread-safe.
  std::uint64_t register_names(const Names& names);

  // Name lists the store must persist (key "n/<16 hex>", value) before images that use them are
  // durable, oldest first; saved(n) once the first n of them are written (lists registered
  // meanwhile stay unsaved).
  std::vector<std::pair<std::string, std::string>> unsaved() const;
  void saved(std::size_t n);
  // A stored name list (at open). False if the value is malformed.
  bool load(std::string_view key, std::string_view value);
  static constexpr const char* kPrefix = "n/";

 private:
  std::uint64_t id_of(const WireValues& values);
  mutable std::mutex mu_;  // guards lists_ and unsaved_
  std::unordered_map<std::uint64_t, std::shared_ptr<const Names>> lists_;
  std::vector<std::uint64_t> unsaved_;
  std::shared_ptr<const Names> last_;  // the writer's last list (no hash when it matches)
  std::uint64_t last_id_ = 0;
};

// Encoded images by key in a fixed block of `capacity` bytes, allocated once (no per-entry heap
// blocks: long-lived small blocks among the capture's short-lived ones would pin far more memory
// than they hold). The block is cut into buckets of 1 KiB; a key goes to the bucket its hash
// names, where entries (key size, value size, key, value) are packed one after the other, so a
// bucket holds seven images of 140 bytes or three of 300. When a new entry does not fit, random
// entries of its bucket leave (not the oldest: a pass over more entities than fit would evict
// each one just before its next use and hit nothing). An image too big for a bucket is not
// cached. Reads may fill it only if no write changed it meanwhile (`epoch()` before the read,
// `fill()` after).
class ImageCache {
 public:
  explicit ImageCache(std::size_t capacity);
  ~ImageCache();
  ImageCache(const ImageCache&) = delete;
  ImageCache& operator=(const ImageCache&) = delete;
  // The encoded image, "" when the entity has none (deleted or never emitted), nullopt when the
  // cache does not know.
  std::optional<std::string> find(std::string_view key) const;
  // The same into `out` (its storage reused); false when the cache does not know.
  bool find(std::string_view key, std::string& out) const;
  std::uint64_t epoch() const;
  void fill(std::string_view key, std::string_view encoded, std::uint64_t epoch);
  // What a commit wrote ("" = erased).
  void update(const std::vector<std::pair<std::string_view, std::string_view>>& written);
  struct Stats {
    std::uint64_t hits = 0, misses = 0;
    std::size_t bytes = 0, entries = 0;
  };
  Stats stats() const;

  static constexpr std::size_t kBucketBytes = 1024;
  static constexpr std::size_t kEntryHeader = 3;  // key size (1 byte), value size (2)

 private:
  struct Bucket;
  struct Found {
    std::size_t at = 0;  // offset of the entry in the bucket's data
    std::size_t size = 0;
  };
  // Entry `key` of `b`, size 0 if absent; mu_ held.
  static Found find_in(const Bucket& b, std::string_view key);
  Bucket& bucket_of(std::string_view key) const;
  void remove(Bucket& b, Found f);                           // mu_ held
  void put(std::string_view key, std::string_view encoded);  // mu_ held
  static constexpr std::size_t kHugePage = 2 << 20;
  Bucket* buckets_ = nullptr;
  std::size_t count_ = 0;   // buckets
  std::size_t mapped_ = 0;  // bytes mapped for them (whole huge pages)
  mutable std::mutex mu_;
  std::uint64_t epoch_ = 0;
  std::uint64_t random_ = 0x9e3779b97f4a7c15ULL;  // xorshift state for the entry to evict
  std::size_t used_ = 0;                          // entries
  mutable std::uint64_t hits_ = 0, misses_ = 0;
};

}  // namespace civishare
