#include "transport/queue/images.h"

#include <sys/mman.h>

#include <algorithm>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <utility>

#include "schemas/canonical_json.h"
#include "transport/queue/encoding.h"

namespace civishare {
namespace {

// A value in the 0x02 encoding: the JSON texts null, false and true as one byte each (tags 1-3),
// any other text as (length + 4) and its bytes. Tag 0 is reserved.
constexpr std::string_view kShort[] = {"", "null", "false", "true"};
constexpr std::size_t kTextTag = 4;

// The id of a list of names: `name_of(i)` for i < n.
template <typename NameOf>
std::uint64_t fnv1a(std::size_t n, NameOf&& name_of) {
  std::uint64_t h = 0xcbf29ce484222325ULL;
  auto mix = [&h](unsigned char c) {
    h ^= c;
    h *= 0x100000001b3ULL;
  };
  for (std::size_t i = 0; i < n; ++i) {
    for (char c : name_of(i)) mix(static_cast<unsigned char>(c));
    mix(0);
  }
  return h;
}

std::string names_key(std::uint64_t id) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%s%016" PRIx64, ImageCodec::kPrefix, id);
  return buf;
}

bool same_names(const ImageCodec::Names& names, const WireValues& values) {
  if (names.size() != values.size()) return false;
  for (std::size_t i = 0; i < names.size(); ++i) {
    if (names[i] != values[i].first) return false;
  }
  return true;
}

}  // namespace

std::uint64_t ImageCodec::id_of(const WireValues& values) {
  if (last_ && same_names(*last_, values)) return last_id_;
  const std::uint64_t id =
      fnv1a(values.size(), [&](std::size_t i) -> const std::string& { return values[i].first; });
  std::lock_guard lock(mu_);
  auto& list = lists_[id];
  if (!list) {
    auto names = std::make_shared<Names>();
    for (const auto& [name, text] : values) names->push_back(name);
    list = std::move(names);
    unsaved_.push_back(id);
  } else if (!same_names(*list, values)) {
    return 0;  // a hash collision: this image is written with its names (0x01)
  }
  last_ = list;
  last_id_ = id;
  return id;
}

std::uint64_t ImageCodec::register_names(const Names& names) {
  const std::uint64_t id =
      fnv1a(names.size(), [&](std::size_t i) -> const std::string& { return names[i]; });
  std::lock_guard lock(mu_);
  auto& list = lists_[id];
  if (!list) {
    list = std::make_shared<const Names>(names);
    unsaved_.push_back(id);
  } else if (*list != names) {
    return 0;  // a hash collision
  }
  return id;
}

void begin_image(std::string& out, std::uint64_t names_id, std::string_view entity_reference,
                 std::string_view parent_reference) {
  out.push_back('\x02');
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>(names_id >> (8 * i)));
  put_text(out, entity_reference);
  put_text(out, parent_reference);
}

// The tag of one of kShort's texts, kTextTag for any other (compares of a constant length: the
// compiler turns them into one load each, where a library compare per candidate cost more than
// the rest of appending a value).
std::size_t short_tag(std::string_view text) {
  static_assert(kShort[1] == "null" && kShort[2] == "false" && kShort[3] == "true");
  if (text.size() == 4) {
    if (std::memcmp(text.data(), "null", 4) == 0) return 1;
    if (std::memcmp(text.data(), "true", 4) == 0) return 3;
  } else if (text.size() == 5 && std::memcmp(text.data(), "false", 5) == 0) {
    return 2;
  }
  return kTextTag;
}

void append_image_value(std::string& out, std::string_view text) {
  const std::size_t tag = short_tag(text);
  if (tag < kTextTag) {
    out.push_back(static_cast<char>(tag));
  } else {
    put_varint(out, text.size() + kTextTag);
    out.append(text);
  }
}

std::string encode_image_with_names(const EntityImage& img) {
  std::string out;
  out.reserve(16 + img.entity_reference.size() + img.parent_reference.size() +
              18 * img.values.size());
  out.push_back('\x01');
  put_text(out, img.entity_reference);
  put_text(out, img.parent_reference);
  put_varint(out, img.values.size());
  for (const auto& [name, text] : img.values) {
    put_text(out, name);
    put_text(out, text);
  }
  return out;
}

bool ImageView::parse(std::string_view encoded, ImageView& out) {
  if (encoded.empty() || encoded.front() != '\x02') return false;
  Reader r{encoded.substr(1)};
  std::size_t n = 0;
  if (!r.fixed64(out.names_id) || !r.varint(n) || n > r.in.size()) return false;
  out.entity_reference = r.in.substr(0, n);
  r.in.remove_prefix(n);
  if (!r.varint(n) || n > r.in.size()) return false;
  out.parent_reference = r.in.substr(0, n);
  out.values = r.in.substr(n);
  return true;
}

bool ImageView::next_value(std::string_view& values, std::string_view& text,
                           std::string_view& raw) {
  Reader r{values};
  std::size_t tag = 0;
  if (!r.varint(tag) || tag == 0) return false;
  if (tag < kTextTag) {
    text = kShort[tag];
  } else {
    if (tag - kTextTag > r.in.size()) return false;
    text = r.in.substr(0, tag - kTextTag);
    r.in.remove_prefix(tag - kTextTag);
  }
  raw = values.substr(0, values.size() - r.in.size());
  values = r.in;
  return true;
}

std::string ImageCodec::encode(const EntityImage& img) {
  const std::uint64_t id = id_of(img.values);
  if (id == 0) return encode_image_with_names(img);
  std::size_t size = 16 + img.entity_reference.size() + img.parent_reference.size();
  for (const auto& [name, text] : img.values) size += 2 + text.size();
  std::string out;
  out.reserve(size);
  begin_image(out, id, img.entity_reference, img.parent_reference);
  for (const auto& [name, text] : img.values) append_image_value(out, text);
  return out;
}

std::optional<EntityImage> ImageCodec::decode(std::string_view v) const {
  EntityImage img;
  if (!decode_into(v, img)) return std::nullopt;
  return img;
}

bool ImageCodec::decode_into(std::string_view v, EntityImage& img) const {
  if (!v.empty() && v.front() == '\x02') {
    Reader r{v.substr(1)};
    std::uint64_t id = 0;
    if (!r.fixed64(id) || !r.text(img.entity_reference) || !r.text(img.parent_reference)) {
      return false;
    }
    std::shared_ptr<const Names> names;
    {
      std::lock_guard lock(mu_);
      if (auto it = lists_.find(id); it != lists_.end()) names = it->second;
    }
    if (!names) return false;
    img.values.resize(names->size());
    for (std::size_t i = 0; i < names->size(); ++i) {
      auto& [name, text] = img.values[i];
      if (name != (*names)[i]) name = (*names)[i];
      std::size_t tag = 0;
      if (!r.varint(tag) || tag == 0) return false;
      if (tag < kTextTag) {
        text = kShort[tag];
        continue;
      }
      if (!r.bytes(tag - kTextTag, text)) return false;
    }
    return r.in.empty();
  }
  img = EntityImage();
  if (!v.empty() && v.front() == '\x01') {
    Reader r{v.substr(1)};
    std::size_t n = 0;
    if (!r.text(img.entity_reference) || !r.text(img.parent_reference) || !r.varint(n) ||
        n > r.in.size()) {
      return false;
    }
    img.values.resize(n);
    for (auto& [name, text] : img.values) {
      if (!r.text(name) || !r.text(text)) return false;
    }
    return r.in.empty();
  }
  // Earlier builds wrote JSON: {"ref":..,"parent":..,"values":{..}}.
  boost::system::error_code ec;
  boost::json::value j = boost::json::parse(v, ec);
  if (ec || !j.is_object()) return false;
  auto& o = j.get_object();
  if (auto* r = o.if_contains("ref"); r && r->is_string()) img.entity_reference = r->get_string();
  if (auto* p = o.if_contains("parent"); p && p->is_string())
    img.parent_reference = p->get_string();
  if (auto* vals = o.if_contains("values"); vals && vals->is_object()) {
    for (const auto& kv : vals->get_object()) {
      auto& [name, text] = img.values.emplace_back(std::string(kv.key()), std::string());
      append_json(text, kv.value());
    }
  }
  return true;
}

std::vector<std::pair<std::string, std::string>> ImageCodec::unsaved() const {
  std::lock_guard lock(mu_);
  if (unsaved_.empty()) return {};
  std::vector<std::pair<std::string, std::string>> out;
  for (auto id : unsaved_) {
    std::string value;
    for (const auto& name : *lists_.at(id)) put_text(value, name);
    out.emplace_back(names_key(id), std::move(value));
  }
  return out;
}

void ImageCodec::saved(std::size_t n) {
  std::lock_guard lock(mu_);
  unsaved_.erase(unsaved_.begin(),
                 unsaved_.begin() + static_cast<std::ptrdiff_t>(std::min(n, unsaved_.size())));
}

bool ImageCodec::load(std::string_view key, std::string_view value) {
  if (key.size() != 18 || key.substr(0, 2) != kPrefix) return false;
  const std::uint64_t id = std::strtoull(std::string(key.substr(2)).c_str(), nullptr, 16);
  auto names = std::make_shared<Names>();
  Reader r{value};
  while (!r.in.empty()) {
    if (!r.text(names->emplace_back())) return false;
  }
  std::lock_guard lock(mu_);
  lists_[id] = std::move(names);
  return true;
}

EncodedImages& EncodedImages::operator=(EncodedImages&& o) noexcept {
  if (this != &o) {
    slots_ = std::exchange(o.slots_, {});
    used_ = std::exchange(o.used_, 0);
    blocks_ = std::exchange(o.blocks_, {});
    block_bytes_ = std::exchange(o.block_bytes_, 0);
    free_ = std::exchange(o.free_, nullptr);
    free_size_ = std::exchange(o.free_size_, 0);
  }
  return *this;
}

std::uint32_t EncodedImages::field(const char* entry, int i) {
  std::uint32_t v;
  std::memcpy(&v, entry + 4 * i, sizeof v);
  return v;
}

std::string_view EncodedImages::key_of(const char* entry) {
  return {entry + kHeader, field(entry, 0)};
}

std::string_view EncodedImages::value_of(const char* entry) {
  return {entry + kHeader + field(entry, 0), field(entry, 2)};
}

std::size_t EncodedImages::slot_of(std::string_view key, std::uint64_t hash) const {
  const std::size_t mask = slots_.size() - 1;
  for (std::size_t i = hash & mask;; i = (i + 1) & mask) {
    const Slot& s = slots_[i];
    if (s.entry == nullptr || (s.hash == hash && key_of(s.entry) == key)) return i;
  }
}

std::optional<std::string_view> EncodedImages::find(std::string_view key) const {
  if (used_ == 0) return std::nullopt;
  const Slot& s = slots_[slot_of(key, std::hash<std::string_view>{}(key))];
  if (s.entry == nullptr) return std::nullopt;
  return value_of(s.entry);
}

char* EncodedImages::allocate(std::string_view key, std::string_view bytes) {
  // Room for a slightly bigger image of the same entity (a longer name, one more value).
  const std::size_t room = bytes.size() + 16;
  const std::size_t need = kHeader + key.size() + room;
  if (need > free_size_) {
    const std::size_t size = std::max(need, kBlockBytes);
    blocks_.push_back(std::make_unique<char[]>(size));
    block_bytes_ += size;
    free_ = blocks_.back().get();
    free_size_ = size;
  }
  char* e = free_;
  free_ += need;
  free_size_ -= need;
  const std::uint32_t fields[3] = {static_cast<std::uint32_t>(key.size()),
                                   static_cast<std::uint32_t>(room),
                                   static_cast<std::uint32_t>(bytes.size())};
  std::memcpy(e, fields, kHeader);
  std::memcpy(e + kHeader, key.data(), key.size());
  if (!bytes.empty())  // an erasure's view may have no data at all (memcpy's source: never null)
    std::memcpy(e + kHeader + key.size(), bytes.data(), bytes.size());
  return e;
}

void EncodedImages::reserve(std::size_t n) {
  while (n * 10 > slots_.size() * 7) grow();  // load under 0.7
}

void EncodedImages::grow() {
  std::vector<Slot> old(std::max<std::size_t>(64, slots_.size() * 2));
  old.swap(slots_);
  const std::size_t mask = slots_.size() - 1;
  for (const Slot& s : old) {
    if (s.entry == nullptr) continue;
    std::size_t i = s.hash & mask;
    while (slots_[i].entry != nullptr) i = (i + 1) & mask;
    slots_[i] = s;
  }
}

void EncodedImages::put(std::string_view key, std::string_view bytes) {
  reserve(used_ + 1);
  const std::uint64_t hash = std::hash<std::string_view>{}(key);
  Slot& s = slots_[slot_of(key, hash)];
  if (s.entry == nullptr) {
    s.hash = hash;
    s.entry = allocate(key, bytes);
    ++used_;
    return;
  }
  if (bytes.size() <= field(s.entry, 1)) {  // fits where the old image was
    const auto size = static_cast<std::uint32_t>(bytes.size());
    std::memcpy(s.entry + 8, &size, sizeof size);
    if (!bytes.empty())
      std::memmove(s.entry + kHeader + field(s.entry, 0), bytes.data(), bytes.size());
    return;
  }
  s.entry = allocate(key, bytes);  // the old entry's room stays unused until the whole goes
}

struct ImageCache::Bucket {
  std::uint16_t used;  // bytes of data holding entries
  char data[kBucketBytes - 2];
};

ImageCache::ImageCache(std::size_t capacity) : count_(capacity / kBucketBytes) {
  static_assert(sizeof(Bucket) == kBucketBytes);
  if (count_ == 0) return;
  // Anonymous memory: zeroed (all buckets empty) without touching pages until they are used. A
  // look-up touches one bucket at random in the whole block; with 4 KiB pages that is a TLB miss
  // as well as a cache miss per look-up (most of the look-up's time in perf), so the block asks
  // for transparent huge pages (honoured when THP is "madvise" or "always", as on Debian).
  mapped_ = (count_ * sizeof(Bucket) + kHugePage - 1) / kHugePage * kHugePage;
  void* block = mmap(nullptr, mapped_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (block == MAP_FAILED) {
    count_ = 0;
    mapped_ = 0;
    return;
  }
  (void)madvise(block, mapped_, MADV_HUGEPAGE);  // a hint: without THP, 4 KiB pages as before
  buckets_ = static_cast<Bucket*>(block);
}

ImageCache::~ImageCache() {
  if (buckets_ != nullptr) munmap(buckets_, mapped_);
}

namespace {
std::size_t value_size_at(const char* entry) {
  std::uint16_t v;
  std::memcpy(&v, entry + 1, sizeof v);
  return v;
}
std::size_t entry_size(const char* entry) {
  return ImageCache::kEntryHeader + static_cast<unsigned char>(entry[0]) + value_size_at(entry);
}
}  // namespace

ImageCache::Found ImageCache::find_in(const Bucket& b, std::string_view key) {
  for (std::size_t at = 0; at < b.used;) {
    const char* e = b.data + at;
    const std::size_t size = entry_size(e);
    if (static_cast<unsigned char>(e[0]) == key.size() &&
        std::memcmp(e + kEntryHeader, key.data(), key.size()) == 0)
      return {at, size};
    at += size;
  }
  return {};
}

ImageCache::Bucket& ImageCache::bucket_of(std::string_view key) const {
  return buckets_[std::hash<std::string_view>{}(key) % count_];
}

void ImageCache::remove(Bucket& b, Found f) {
  std::memmove(b.data + f.at, b.data + f.at + f.size, b.used - f.at - f.size);
  b.used = static_cast<std::uint16_t>(b.used - f.size);
  --used_;
}

bool ImageCache::find(std::string_view key, std::string& out) const {
  std::lock_guard lock(mu_);
  if (count_ == 0) return false;
  const Bucket& b = bucket_of(key);
  const Found f = find_in(b, key);
  if (f.size == 0) {
    ++misses_;
    return false;
  }
  ++hits_;
  const char* e = b.data + f.at;
  out.assign(e + kEntryHeader + key.size(), value_size_at(e));
  return true;
}

std::optional<std::string> ImageCache::find(std::string_view key) const {
  std::string out;
  if (!find(key, out)) return std::nullopt;
  return out;
}

std::uint64_t ImageCache::epoch() const {
  std::lock_guard lock(mu_);
  return epoch_;
}

void ImageCache::fill(std::string_view key, std::string_view encoded, std::uint64_t epoch) {
  std::lock_guard lock(mu_);
  if (epoch == epoch_) put(key, encoded);
}

void ImageCache::update(const std::vector<std::pair<std::string_view, std::string_view>>& written) {
  std::lock_guard lock(mu_);
  ++epoch_;
  for (const auto& [key, encoded] : written) put(key, encoded);
}

void ImageCache::put(std::string_view key, std::string_view encoded) {
  if (count_ == 0 || key.empty()) return;
  Bucket& b = bucket_of(key);
  if (const Found old = find_in(b, key); old.size != 0) remove(b, old);
  const std::size_t need = kEntryHeader + key.size() + encoded.size();
  if (key.size() > 255 || need > sizeof(b.data)) return;  // too big: not cached (older forgotten)
  while (b.used + need > sizeof(b.data)) {                // evict random entries until it fits
    std::size_t entries = 0;
    for (std::size_t at = 0; at < b.used; ++entries) at += entry_size(b.data + at);
    random_ ^= random_ << 13;
    random_ ^= random_ >> 7;
    random_ ^= random_ << 17;
    std::size_t at = 0;
    for (std::size_t skip = random_ % entries; skip > 0; --skip) at += entry_size(b.data + at);
    remove(b, {at, entry_size(b.data + at)});
  }
  char* e = b.data + b.used;
  e[0] = static_cast<char>(key.size());
  const auto v = static_cast<std::uint16_t>(encoded.size());
  std::memcpy(e + 1, &v, sizeof v);
  std::memcpy(e + kEntryHeader, key.data(), key.size());
  std::memcpy(e + kEntryHeader + key.size(), encoded.data(), encoded.size());
  b.used = static_cast<std::uint16_t>(b.used + need);
  ++used_;
}

ImageCache::Stats ImageCache::stats() const {
  std::lock_guard lock(mu_);
  return {hits_, misses_, count_ * kBucketBytes, used_};
}

}  // namespace civishare
