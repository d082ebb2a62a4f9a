// libFuzzer target: the receiver's message parsing. The envelope, then each change as the
// receiver validates it, then the change's canonical form and signature (what a verified change
// goes through before it is persisted). Must never crash, hang or leak, whatever the bytes.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "schemas/change.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace civishare;
  auto msg = parse_message(std::string_view(reinterpret_cast<const char*>(data), size));
  if (!msg) return 0;
  for (const auto& raw : msg->raw_changes) {
    auto change = change_from_json(raw);
    if (!change) continue;
    (void)change_signature(*change, "fuzz");
    (void)to_json(*change);
  }
  return 0;
}
