// Generated at build time from schemas/types/*.json (see schemas/CMakeLists.txt).
#pragma once

#include <string>
#include <vector>

namespace civishare {

std::vector<std::string> builtin_type_texts();

}  // namespace civishare
