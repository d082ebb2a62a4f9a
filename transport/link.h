// One link to a peer node, as both the sender and the receiver see it.
#pragma once

#include <set>
#include <string>

namespace civishare {

struct PeerLink {
  std::string name;                // the peer's node name
  std::string url;                 // base URL of the peer's receiver, e.g. http://127.0.0.1:7801
  std::string key;                 // HMAC key: the decoded link secret
  std::set<std::string> outgoing;  // types we send to this peer
  std::set<std::string> incoming;  // types we accept from this peer
  std::string ca_file;             // optional CA bundle for HTTPS
};

}  // namespace civishare
