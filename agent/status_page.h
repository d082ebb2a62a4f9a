// The administrator's status page served at GET / on the receiver port (loopback clients only):
// one static HTML document whose script polls /status.json.
#pragma once

#include <string>

namespace civishare {

const std::string& status_page_html();

}  // namespace civishare
