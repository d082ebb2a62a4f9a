// Wires the pipeline for one node: capture -> outbox -> senders; receiver -> inbox -> applier.
// Lifecycle: construct with a validated Config, then run() once. Threads: one capture thread, one
// sender thread per peer, one applier thread, the receiver's io thread; all stop when `stop` is set
// (SIGTERM/SIGINT), finishing the step in flight.
#pragma once

#include <atomic>
#include <memory>

#include "agent/config.h"
#include "schemas/result.h"
#include "transport/queue/store.h"

namespace civishare {

class Agent {
 public:
  explicit Agent(Config config);
  ~Agent();

  // Opens the store; creates the data dir if needed. Read-only works beside a running agent.
  Status open(bool read_only = false);
  // `civishare init`: data dir, civishare_* tables, logging checks, starting cursor.
  Status init(bool add_indexes);
  // The daemon (once = false) or the catch-up run (once = true). Returns the process exit code:
  // 0 done, 1 error, 3 (once) a peer was unreachable and work is left.
  int run(bool once, std::atomic<bool>& stop);
  // `civishare cursor`
  Result<std::string> cursor();
  // `civishare status [--json]`: prints to stdout.
  Status status(bool as_json);
  // `civishare check`: prints each finding; true when there is no problem.
  Result<bool> check();
  // `civishare replay`: cursors as printed by `civishare cursor`; `to` "" = the current cursor.
  // With dry_run the changes are printed as JSON lines instead of queued. Returns how many.
  Result<std::size_t> replay(const std::string& from, const std::string& to, bool dry_run);
  // `civishare snapshot`: queues the current state of the base tables ("" = every captured type;
  // `peer` "" = every peer). Returns the records queued.
  // reset_cursor (binlog): first move the cursor to the server's position (after a purge).
  Result<std::size_t> snapshot(const std::string& type, const std::string& peer,
                               bool reset_cursor = false);

 private:
  Config config_;
  std::unique_ptr<Store> store_;
};

}  // namespace civishare
