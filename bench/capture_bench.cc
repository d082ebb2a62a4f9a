// Capture speed on a generated CiviCRM log of N rows (default 1,000,000: 100,000 contacts
// inserted, then updated 9 times each), next to `mariadb --quick -e "SELECT * FROM
// log_civicrm_contact" > /dev/null` on the same server in the same run. Also peak RSS of this
// process during capture and the database time of an idle poll with the log_date index.
//
//   build/bench/bench_capture [rows]
#include <sys/resource.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <thread>

#include "bench/bench_util.h"
#include "capture/log_table_source.h"
#include "schemas/db/civishare_tables.h"
#include "tests/support/mariadb_server.h"

namespace {
using namespace civishare;
using namespace civishare::bench;

}  // namespace

int main(int argc, char** argv) {
  const long rows = argc > 1 ? std::stol(argv[1]) : 1000000;
  const long contacts = std::max(1L, rows / 10);
  testing::MariaDbServer server;
  server.load_civicrm();
  auto root = server.connect();
  for (const auto& ddl : db::civishare_table_ddl()) must(root.exec(ddl), "ddl");

  const std::string dir = server.dir() + "/agent";
  std::filesystem::create_directories(dir);
  auto store = std::move(*Store::open(dir));
  LogTableOptions o;
  o.node = "civi1";
  o.types = {TypeRegistry::builtin().find("civishare.change.contact.base")};
  o.reread_interval_s = 1000000;  // measure the main read, not the trailing re-read
  auto source = LogTableSource::open(o, server.agent_options(), *store);
  must(source ? ok_status() : Status(source.error()), "open");
  must((*source)->ensure_cursor() ? ok_status() : Status(make_error(Errc::internal, "cursor")),
       "cursor");
  std::this_thread::sleep_for(std::chrono::milliseconds(1100));

  // Generate the log: contacts inserted, then updated; log rows written by the real triggers.
  std::fprintf(stderr, "generating %ld log rows...\n", rows);
  auto t = Clock::now();
  generate_contact_changes(root, rows, contacts);
  const long generated =
      std::stol(root.scalar("SELECT COUNT(*) FROM log_civicrm_contact")->value());
  std::fprintf(stderr, "generated %ld rows in %.1f s\n", generated, since(t));
  std::this_thread::sleep_for(std::chrono::milliseconds(1100));

  // Reference: the raw read with the mariadb client.
  t = Clock::now();
  int rc = std::system(("mariadb --no-defaults -uroot --socket=" + server.socket() +
                        " --quick -e 'SELECT * FROM civicrm.log_civicrm_contact' > /dev/null")
                           .c_str());
  const double raw_s = since(t);
  if (rc != 0) return 1;

  std::fprintf(stderr, "capturing...\n");  // (a mark for profilers to attach at)
  const long rss_before = peak_rss_mb();
  const double cpu_before = cpu_seconds();
  const double thread_before = thread_cpu_seconds();
  const double server_before = process_cpu_seconds(server.pid());
  t = Clock::now();
  std::size_t records = 0;
  for (;;) {
    auto r = (*source)->poll();
    must(r ? ok_status() : Status(r.error()), "poll");
    records += r->records;
    if (records >= static_cast<std::size_t>(generated)) break;
    if (r->rows == 0) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  const double capture_s = since(t);
  const double capture_cpu_s = cpu_seconds() - cpu_before;
  const double capturing_thread_s = thread_cpu_seconds() - thread_before;
  const double server_cpu_s = process_cpu_seconds(server.pid()) - server_before;
  const long rss_after = peak_rss_mb();
  const auto cache = store->image_cache_stats();

  // Idle poll cost with the log_date index (what a sidecar pays twice a second), once RocksDB has
  // finished the flushes and compactions the catch-up left behind and InnoDB has purged the
  // history of the generated updates (both compete for the 2 CPUs).
  t = Clock::now();
  while (store->background_work() && since(t) < 120)
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  const double settle_s = since(t);
  must(root.exec("ALTER TABLE log_civicrm_contact ADD INDEX civishare_log_date (log_date)"),
       "index");
  t = Clock::now();
  long history = 0;
  while (
      (history = std::stol(must(root.scalar("SELECT count FROM information_schema.INNODB_METRICS "
                                            "WHERE name = 'trx_rseg_history_len'"),
                                "history")
                               .value_or("0"))) > 1000 &&
      since(t) < 120) {
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  const double purge_s = since(t);
  // The server's own time per statement comes from its slow log with long_query_time = 0 (read
  // by sessions when they connect: a fresh source on the same store does the idle polls).
  source->reset();
  for (const char* sql : {"SET GLOBAL log_output = 'TABLE'", "SET GLOBAL long_query_time = 0",
                          "TRUNCATE mysql.slow_log", "SET GLOBAL slow_query_log = 1"}) {
    must(root.exec(sql), sql);
  }
  auto idle_source = LogTableSource::open(o, server.agent_options(), *store);
  must(idle_source ? ok_status() : Status(idle_source.error()), "open");
  std::this_thread::sleep_for(std::chrono::milliseconds(1100));
  (void)(*idle_source)->poll();
  must(root.exec("TRUNCATE mysql.slow_log"), "truncate");
  const int idle_polls = 5;
  double idle_total = 0, idle_db = 0;
  for (int i = 0; i < idle_polls; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1000));  // one more second to read
    auto p = Clock::now();
    auto r = (*idle_source)->poll();
    must(r ? ok_status() : Status(r.error()), "idle poll");
    idle_total += since(p);
    idle_db += r->db_seconds;
  }
  must(root.exec("SET GLOBAL slow_query_log = 0"), "slow log off");
  // The reads of the log table (the watermark sampler's statements run on their own schedule).
  const double server_ms =
      std::stod(
          must(root.scalar("SELECT COALESCE(SUM(TIME_TO_SEC(query_time)), 0) FROM "
                           "mysql.slow_log WHERE sql_text LIKE '%FROM `log_civicrm_contact`%'"),
               "slow log")
              .value_or("0")) *
      1000 / idle_polls;
  const std::string each =
      must(root.scalar(
               "SELECT GROUP_CONCAT(CONCAT(ROUND(TIME_TO_SEC(query_time) * 1000, 2), ' ms/', "
               "rows_examined, ' rows') ORDER BY start_time SEPARATOR ', ') FROM "
               "mysql.slow_log WHERE sql_text LIKE '%FROM `log_civicrm_contact`%'"),
           "slow log")
          .value_or("");
  const double idle_ms = idle_total * 1000 / idle_polls;
  const double idle_db_ms = idle_db * 1000 / idle_polls;

  std::printf("capture: %ld log rows of log_civicrm_contact (%ld contacts)\n", generated, contacts);
  std::printf("%-52s %10s %12s\n", "", "seconds", "rows/s");
  std::printf("%-52s %10.2f %12.0f\n", "civishare log-table capture (records committed)", capture_s,
              generated / capture_s);
  std::printf("%-52s %10.2f %12.0f\n", "reference: mariadb --quick SELECT * > /dev/null", raw_s,
              generated / raw_s);
  std::printf("capture / reference: %.2f (target <= 1.5); capture CPU in this process: %.2f s\n",
              capture_s / raw_s, capture_cpu_s);
  std::printf("peak RSS: %ld MB before capture, %ld MB after (target <= 200)\n", rss_before,
              rss_after);
  const long cores = sysconf(_SC_NPROCESSORS_ONLN);
  std::printf(
      "CPU during the capture: capturing thread %.2f s, other threads (committer, RocksDB, "
      "sampler) %.2f s, mariadbd %.2f s; %ld cores offer %.2f s\n",
      capturing_thread_s, capture_cpu_s - capturing_thread_s, server_cpu_s, cores,
      capture_s * static_cast<double>(cores));
  std::printf(
      "idle poll (an empty one-second window) with the log_date index: %.3f ms of server time "
      "(slow log; target <= 5 ms per table); %.2f ms waiting on the database as the agent sees "
      "it (incl. waking up after a second asleep); %.2f ms wall (incl. the synced cursor "
      "write); measured after waiting %.1f s for RocksDB's compactions and %.1f s for InnoDB's "
      "purge (history length %ld)\n",
      server_ms, idle_db_ms, idle_ms, settle_s, purge_s, history);
  std::printf("idle poll statements (server time / rows examined): %s\n", each.c_str());
  std::printf(
      "image cache: %llu hits, %llu misses (read from RocksDB); %zu images, %.1f MB at the end\n",
      static_cast<unsigned long long>(cache.hits), static_cast<unsigned long long>(cache.misses),
      cache.entries, cache.bytes / 1e6);
  std::printf("records: %zu\n", records);
  return 0;
}
