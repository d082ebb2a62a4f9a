// civishare: the CiviShare agent. See `civishare --help` and docs/ARCHITECTURE.md (Contracts).
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <set>
#include <string>
#include <vector>

#include "agent/agent.h"
#include "agent/config.h"
#include "schemas/log.h"
#include "transport/webhook.h"

namespace {

std::atomic<bool> g_stop{false};

void on_signal(int) {
  g_stop = true;
}

constexpr const char* kUsage =
    "usage: civishare <verb> --config FILE [options]\n"
    "\n"
    "verbs:\n"
    "  init [--add-indexes]   create the data dir and civishare_* tables, check CiviCRM logging,\n"
    "                         set the starting cursor; --add-indexes adds log_date indexes\n"
    "  run [--once]           run the agent until SIGTERM; --once catches up and exits\n"
    "                         (exit 3 when a peer was unreachable)\n"
    "  cursor                 print the capture cursor\n"
    "  status [--json]        cursor, lag, inbox, and per peer: types, queue, errors\n"
    "  check                  config, database, privileges, triggers, indexes: what to fix\n"
    "  replay --from CURSOR [--to CURSOR] [--dry-run]\n"
    "                         re-capture history after a saved cursor (agent stopped);\n"
    "                         --dry-run prints the changes as JSON lines instead\n"
    "  snapshot [--type T] [--peer P] [--reset-cursor]\n"
    "                         share the current state of the base tables (agent stopped);\n"
    "                         --reset-cursor (binlog) first moves the cursor to the server's\n"
    "                         position: the way out after the cursor's binlog was purged\n"
    "  secret                 print a new random link secret (no --config needed)\n"
    "\n"
    "exit codes: 0 success, 1 error, 2 usage, 3 work left (run --once), 4 capture position\n"
    "lost (binlog purged past the cursor: see the message), 75 data dir cannot write\n";

int usage(const std::string& problem) {
  if (!problem.empty()) std::fprintf(stderr, "civishare: %s\n\n", problem.c_str());
  std::fputs(kUsage, stderr);
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace civishare;
  if (const char* level = std::getenv("CIVISHARE_LOG_LEVEL");
      level && std::strcmp(level, "debug") == 0) {
    set_log_level(LogLevel::debug);
  }
  std::vector<std::string> args(argv + 1, argv + argc);
  if (args.empty()) return usage("");
  const std::string verb = args[0];
  if (verb == "--help" || verb == "-h" || verb == "help") {
    std::fputs(kUsage, stdout);
    return 0;
  }
  std::string config_path;
  bool once = false;
  bool add_indexes = false;
  bool as_json = false;
  bool dry_run = false;
  bool reset_cursor = false;
  std::string from, to, type, peer;
  for (std::size_t i = 1; i < args.size(); ++i) {
    if (args[i] == "--config" && i + 1 < args.size()) {
      config_path = args[++i];
    } else if (args[i].rfind("--config=", 0) == 0) {
      config_path = args[i].substr(9);
    } else if (args[i] == "--once" && verb == "run") {
      once = true;
    } else if (verb == "replay" && args[i] == "--from" && i + 1 < args.size()) {
      from = args[++i];
    } else if (verb == "replay" && args[i] == "--to" && i + 1 < args.size()) {
      to = args[++i];
    } else if (verb == "replay" && args[i] == "--dry-run") {
      dry_run = true;
    } else if (verb == "snapshot" && args[i] == "--type" && i + 1 < args.size()) {
      type = args[++i];
    } else if (verb == "snapshot" && args[i] == "--reset-cursor") {
      reset_cursor = true;
    } else if (verb == "snapshot" && args[i] == "--peer" && i + 1 < args.size()) {
      peer = args[++i];
    } else if (args[i] == "--json" && verb == "status") {
      as_json = true;
    } else if (args[i] == "--add-indexes" && verb == "init") {
      add_indexes = true;
    } else {
      return usage("unknown option `" + args[i] + "` for `" + verb + "`");
    }
  }

  if (verb == "secret") {
    std::printf("%s\n", webhook::new_secret().c_str());
    return 0;
  }
  static const std::set<std::string> verbs = {"init",  "run",    "cursor",  "status",
                                              "check", "replay", "snapshot"};
  if (!verbs.count(verb)) return usage("unknown verb `" + verb + "`");
  if (verb == "replay" && from.empty()) return usage("`replay` needs --from CURSOR");
  if (config_path.empty()) return usage("`" + verb + "` needs --config FILE");

  auto config = load_config(config_path);
  if (!config) {
    std::fprintf(stderr, "civishare: %s: %s\n", config_path.c_str(),
                 config.error().message.c_str());
    return 1;
  }
  if (!std::getenv("CIVISHARE_LOG_LEVEL")) {
    const std::string& l = config->log.level;
    set_log_level(l == "debug"   ? LogLevel::debug
                  : l == "warn"  ? LogLevel::warn
                  : l == "error" ? LogLevel::error
                                 : LogLevel::info);
  }
  set_log_json(config->log.format == "json");
  Agent agent(std::move(*config));
  if (verb == "check") {
    auto ok = agent.check();
    if (!ok) {
      std::fprintf(stderr, "civishare: %s\n", ok.error().message.c_str());
      return 1;
    }
    return *ok ? 0 : 1;
  }
  const bool read_only = verb == "cursor" || verb == "status";
  if (auto s = agent.open(read_only); !s) {
    log_error("agent", s.error().message);
    return 1;
  }
  if (verb == "init") {
    if (auto s = agent.init(add_indexes); !s) {
      log_error("init", s.error().message);
      return 1;
    }
    return 0;
  }
  if (verb == "cursor") {
    auto c = agent.cursor();
    if (!c) {
      std::fprintf(stderr, "civishare: %s\n", c.error().message.c_str());
      return 1;
    }
    std::printf("%s\n", c->c_str());
    return 0;
  }
  if (verb == "replay" || verb == "snapshot") {
    auto n = verb == "replay" ? agent.replay(from, to, dry_run)
                              : agent.snapshot(type, peer, reset_cursor);
    if (!n) {
      log_error(verb, n.error().message);
      return 1;
    }
    if (!dry_run) log_info(verb, "queued " + std::to_string(*n) + " change(s)");
    return 0;
  }
  if (verb == "status") {
    if (auto s = agent.status(as_json); !s) {
      std::fprintf(stderr, "civishare: %s\n", s.error().message.c_str());
      return 1;
    }
    return 0;
  }
  struct sigaction sa {};
  sa.sa_handler = on_signal;
  sigaction(SIGTERM, &sa, nullptr);
  sigaction(SIGINT, &sa, nullptr);
  std::signal(SIGPIPE, SIG_IGN);
  int rc = agent.run(once, g_stop);
  log_info("agent", "stopped");
  return rc;
}
