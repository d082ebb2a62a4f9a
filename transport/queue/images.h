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

  // Name lists the store must persist (key "n/<16 hex>", value) before images that use them are
  // durable; saved() once they are written.
  std::vector<std::pair<std::string, std::string>> unsaved() const;
  void saved();
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
  std::optional<std::string> find(const std::string& key) const;
  // The same into `out` (its storage reused); false when the cache does not know.
  bool find(const std::string& key, std::string& out) const;
  std::uint64_t epoch() const;
  void fill(const std::string& key, const std::string& encoded, std::uint64_t epoch);
  // What a commit wrote ("" = erased).
  void update(const std::vector<std::pair<std::string, std::string>>& written);
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
  static Found find_in(const Bucket& b, const std::string& key);
  Bucket& bucket_of(const std::string& key) const;
  void remove(Bucket& b, Found f);                               // mu_ held
  void put(const std::string& key, const std::string& encoded);  // mu_ held
  Bucket* buckets_ = nullptr;
  std::size_t count_ = 0;  // buckets
  mutable std::mutex mu_;
  std::uint64_t epoch_ = 0;
  std::uint64_t random_ = 0x9e3779b97f4a7c15ULL;  // xorshift state for the entry to evict
  std::size_t used_ = 0;                          // entries
  mutable std::uint64_t hits_ = 0, misses_ = 0;
};

}  // namespace civishare
