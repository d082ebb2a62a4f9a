// Pushes outbox records to one peer: POST /v1/changes, Standard Webhooks signed, libcurl with
// keep-alive. Before the first batch and after every failure it asks the peer which types it
// accepts from us (GET /v1/hello); a record goes only when its type is in our `outgoing` for the
// peer and in the peer's answer, and it did not come from that peer (split horizon).
// Advances the peer's ack position only after the peer answered 2xx (or 409 for a batch it had
// already accepted). Never drops a record: on any failure the position stays.
// One HttpSender per peer, used from one thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "schemas/result.h"
#include "transport/link.h"
#include "transport/queue/store.h"

namespace civishare {

struct SenderOptions {
  std::size_t max_batch_changes = 500;    // changes per POST
  std::size_t max_batch_bytes = 4 << 20;  // body bytes per POST (soft: at least one change)
  long timeout_ms = 30000;                // whole request
  long connect_timeout_ms = 5000;
  // Called after each delivered batch with the queued_at of every change in it (metrics).
  std::function<void(const std::vector<std::int64_t>& queued_at)> on_delivered;
};

class HttpSender {
 public:
  HttpSender(std::string node_name, PeerLink peer, Store& store, SenderOptions options = {});
  ~HttpSender();
  HttpSender(const HttpSender&) = delete;
  HttpSender& operator=(const HttpSender&) = delete;

  // Sends at most one batch. Returns the number of outbox records this step consumed (sent or
  // skipped because the peer does not get them); 0 = nothing pending. Errors: Errc::network
  // (peer unreachable), Errc::peer_rejected (non-2xx, message has the status and body),
  // Errc::storage.
  Result<std::size_t> send_once();

  const PeerLink& peer() const { return peer_; }

  // Asks the peer which types it accepts from us and remembers the answer.
  Status negotiate();
  // The same question without remembering the answer (`civishare check`).
  Result<std::vector<std::string>> hello();

 private:
  struct Response {
    long status = 0;
    std::string body;
  };
  Result<Response> request(const std::string& path, const std::string& message_id,
                           const std::string* body);
  Result<std::size_t> send_batch();
  void record_error(const Error& e);

  std::string node_;
  PeerLink peer_;
  Store& store_;
  SenderOptions options_;
  void* curl_ = nullptr;  // CURL*, kept for keep-alive
  PeerState state_;
};

// Whether `peer` gets `entry`: its type is in our outgoing for the peer and in what the peer
// accepts, and it did not come from the peer.
bool peer_gets(const PeerLink& peer, const std::vector<std::string>& accepts,
               const OutboxEntry& entry);

}  // namespace civishare
