// libFuzzer target: the TOML config parser and every check on top of it. Must never crash or
// throw, whatever the file holds; a broken file is an error with a message.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "agent/config.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  auto c = civishare::parse_config(std::string_view(reinterpret_cast<const char*>(data), size),
                                   "fuzz.toml");
  if (!c && c.error().message.empty()) std::abort();  // every refusal says why
  return 0;
}
