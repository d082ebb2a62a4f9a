// Binlog speed on a generated binlog of N row events (default 1,000,000: 100,000 contacts
// inserted, then updated 9 times each), next to, over the same range and in the same run:
//   mariadb-binlog --read-from-remote-server --base64-output=decode-rows --verbose > /dev/null
//   ZongJi (npm @vlasky/zongji, Node.js) counting the row images (bench/binlog/run.sh installs it)
// and measured here: decoding alone (stream + table maps + every row to text), and capture into
// the outbox (BinlogSource: decode, map to change records, commit to RocksDB). Peak RSS too.
//
//   bench/binlog/run.sh [rows]      (builds, installs ZongJi, runs build/bench/bench_binlog)
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <map>
#include <thread>

#include "bench/bench_util.h"
#include "capture/binlog_rows.h"
#include "capture/binlog_source.h"
#include "capture/binlog_stream.h"
#include "schemas/db/civishare_tables.h"
#include "tests/support/mariadb_server.h"

namespace {
using namespace civishare;
using namespace civishare::bench;

// Streams from `from` to the end and decodes every row of every table: the decoder's own speed.
std::size_t decode_all(const db::ConnectionOptions& connection, const std::string& from) {
  binlog::StreamOptions o;
  o.connection = connection;
  o.server_id = 4715;
  o.gtid_position = from;
  auto stream = must(binlog::Stream::open(o), "stream");
  std::map<std::uint64_t, binlog::TableMap> maps;
  std::size_t rows = 0;
  for (;;) {
    auto ev = must(stream->next(), "next");
    if (!ev) break;
    if (ev->type == binlog::kTableMap) {
      auto m = must(binlog::parse_table_map(ev->body), "table map");
      maps[m.table_id] = std::move(m);
    } else if (binlog::is_rows_event(ev->type)) {
      auto id = must(binlog::rows_table_id(ev->body), "table id");
      auto parsed = must(binlog::parse_rows(ev->type, ev->body, maps.at(id)), "rows");
      rows += binlog::is_update_rows_event(ev->type) ? parsed.rows.size() / 2 : parsed.rows.size();
    }
  }
  return rows;
}

}  // namespace

int main(int argc, char** argv) {
  const long rows = argc > 1 ? std::stol(argv[1]) : 1000000;
  const long contacts = std::max(1L, rows / 10);
  const std::string zongji_dir = argc > 2 ? argv[2] : "";
  testing::MariaDbServer server;
  server.load_civicrm();
  auto root = server.connect();
  for (const auto& ddl : db::civishare_table_ddl()) must(root.exec(ddl), "ddl");
  // The binlog source needs no CiviCRM logging: without its triggers the binlog holds exactly
  // the contact rows written.
  auto triggers = must(root.query("SELECT TRIGGER_NAME FROM information_schema.TRIGGERS WHERE "
                                  "EVENT_OBJECT_TABLE = 'civicrm_contact'"),
                       "triggers");
  for (const auto& t : triggers.rows) must(root.exec("DROP TRIGGER " + *t[0]), "drop trigger");
  must(root.exec("FLUSH BINARY LOGS"), "flush");

  const std::string dir = server.dir() + "/agent";
  std::filesystem::create_directories(dir);
  auto store = must(Store::open(dir), "store");
  BinlogOptions o;
  o.node = "civi1";
  o.types = {TypeRegistry::builtin().find("civishare.change.contact.base")};
  o.server_id = 4716;
  o.follow = false;
  auto source = must(BinlogSource::open(o, server.agent_options(), *store), "open");
  const std::string start_cursor = must(source->ensure_cursor(), "cursor");
  const std::string start_gtid = must(BinlogSource::parse_cursor(start_cursor), "cursor");
  auto status = must(root.query("SHOW MASTER STATUS"), "master status");
  const std::string first_file = *status.rows[0][0];
  const std::string first_pos = *status.rows[0][1];

  std::fprintf(stderr, "generating %ld row events...\n", rows);
  auto t = Clock::now();
  generate_contact_changes(root, rows, contacts);
  std::fprintf(stderr, "generated in %.1f s\n", since(t));
  auto logs = must(root.query("SHOW BINARY LOGS"), "binary logs");
  std::string remote_files;
  bool in_range = false;
  for (const auto& l : logs.rows) {
    in_range = in_range || *l[0] == first_file;
    if (in_range) remote_files += " " + *l[0];
  }
  const auto agent = server.agent_options();
  const std::string login = "--host=127.0.0.1 --port=" + std::to_string(agent.port) +
                            " --user=civishare --password=civishare";

  // Decoding alone (3 runs, the median).
  std::vector<double> decode_runs;
  std::size_t decoded = 0;
  for (int i = 0; i < 3; ++i) {
    t = Clock::now();
    decoded = decode_all(agent, start_gtid);
    decode_runs.push_back(since(t));
  }
  std::sort(decode_runs.begin(), decode_runs.end());
  const double decode_s = decode_runs[1];

  // mariadb-binlog over the same range (3 runs, the median).
  std::vector<double> tool_runs;
  for (int i = 0; i < 3; ++i) {
    t = Clock::now();
    int rc = std::system(("mariadb-binlog --no-defaults --read-from-remote-server " + login +
                          " --start-position=" + first_pos +
                          " --base64-output=decode-rows --verbose" + remote_files + " > /dev/null")
                             .c_str());
    tool_runs.push_back(since(t));
    if (rc != 0) {
      std::fprintf(stderr, "mariadb-binlog failed (%d)\n", rc);
      return 1;
    }
  }
  std::sort(tool_runs.begin(), tool_runs.end());
  const double tool_s = tool_runs[1];

  // ZongJi, when installed.
  double zongji_s = -1;
  if (!zongji_dir.empty() && std::filesystem::exists(zongji_dir + "/node_modules/@vlasky/zongji")) {
    t = Clock::now();
    int rc =
        std::system(("node " + zongji_dir + "/zongji.mjs 127.0.0.1 " + std::to_string(agent.port) +
                     " civishare civishare civicrm " + first_file + " " + first_pos + " " +
                     std::to_string(decoded) + " > /dev/null")
                        .c_str());
    zongji_s = since(t);
    if (rc != 0) {
      std::fprintf(stderr, "ZongJi failed (%d)\n", rc);
      zongji_s = -1;
    }
  }

  // Capture into the outbox.
  const long rss_before = peak_rss_mb();
  const double cpu_before = cpu_seconds();
  t = Clock::now();
  std::size_t records = 0;
  for (;;) {
    auto r = must(source->poll(), "poll");
    records += r.records;
    if (r.at_head) break;
  }
  const double capture_s = since(t);
  const double capture_cpu_s = cpu_seconds() - cpu_before;
  const long rss_after = peak_rss_mb();

  std::printf("binlog: %zu row changes of civicrm_contact (%ld contacts inserted, then updated)\n",
              decoded, contacts);
  std::printf("%-60s %9s %12s\n", "", "seconds", "changes/s");
  auto row = [&](const char* what, double s) {
    if (s < 0)
      std::printf("%-60s %9s %12s\n", what, "-", "(not run)");
    else
      std::printf("%-60s %9.2f %12.0f\n", what, s, static_cast<double>(decoded) / s);
  };
  row("civishare decode only (stream, table maps, rows to text)", decode_s);
  row("civishare capture into the outbox (records committed)", capture_s);
  row("mariadb-binlog --read-from-remote-server decode-rows -v", tool_s);
  row("ZongJi (@vlasky/zongji, Node.js) counting rows", zongji_s);
  std::printf("decode / mariadb-binlog:  %.2f (target <= 0.2)\n", decode_s / tool_s);
  std::printf(
      "capture / mariadb-binlog: %.2f (target <= 0.5); capture CPU in this process: %.2f s\n",
      capture_s / tool_s, capture_cpu_s);
  if (zongji_s > 0) std::printf("ZongJi / capture: %.2f (target >= 4)\n", zongji_s / capture_s);
  std::printf("peak RSS of this process: %ld MB before capture, %ld MB after\n", rss_before,
              rss_after);
  std::printf("records: %zu\n", records);
  return 0;
}
