// End-to-end: two MariaDB instances with the CiviCRM fixture, two real `civishare run` agents
// (A sends all four types to B), writes on A the way CiviCRM does, measured on B.
//
//   build/bench/bench_e2e [--contacts N] [--latency-seconds S] [--rate R] [--queue M]
//                         [--source log_tables|binlog]
//
// Phases, all in one run:
//  1. throughput: N transactions on A (contact + email + phone + address each), then N
//     transactions updating a contact's last name and its phone: 6N changes. Time until B has
//     applied all of them, next to the time A took to write them and the time of loading the
//     same final rows into B with one plain `mariadb` batch (a mariadb-dump of A's rows).
//  2. latency: R updates/s for S seconds on A (autocommit); a poller on B records when each
//     value becomes visible. p50/p95/p99 of commit-on-A to visible-on-B.
//  3. memory: peak RSS (VmHWM) of both agents after 1 and 2; then B's agent stopped while A
//     captures and queues M changes (M/10 contacts inserted, then updated 9 times with one
//     statement each): A's peak RSS and the data dir's bytes per queued change.
#include <sys/types.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "tests/support/cluster.h"

namespace {
using namespace civishare;
using namespace civishare::testing;
using Clock = std::chrono::steady_clock;

double since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

void must(const Status& s, const std::string& what) {
  if (!s) throw std::runtime_error(what + ": " + s.error().message);
}

// Peak resident set of a process in MB (VmHWM), -1 when it cannot be read.
long peak_rss_mb(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmHWM:", 0) == 0) return std::stol(line.substr(6)) / 1024;
  }
  return -1;
}

std::uintmax_t dir_bytes(const std::string& dir) {
  std::uintmax_t total = 0;
  std::error_code ec;
  for (const auto& e : std::filesystem::recursive_directory_iterator(dir, ec)) {
    if (e.is_regular_file(ec)) total += e.file_size(ec);
  }
  return total;
}

long count(TestNode& n, const std::string& sql) {
  return std::stol(n.query(sql));
}

// Changes B has applied (or found already true) from A.
long applied_on(TestNode& b) {
  return count(b, "SELECT COUNT(*) FROM civishare_applied WHERE came_from = 'a'");
}

struct Options {
  long contacts = 10000;
  int latency_seconds = 20;
  int rate = 500;
  long queue = 1000000;
  std::string source = "log_tables";  // A's capture source: log_tables | binlog
};

Options parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; i += 2) {
    const std::string k = argv[i];
    if (i + 1 >= argc) throw std::runtime_error(k + " needs a value");
    const std::string v = argv[i + 1];
    if (k == "--contacts")
      o.contacts = std::stol(v);
    else if (k == "--latency-seconds")
      o.latency_seconds = std::stoi(v);
    else if (k == "--rate")
      o.rate = std::stoi(v);
    else if (k == "--queue")
      o.queue = std::stol(v);
    else if (k == "--source" && (v == "log_tables" || v == "binlog"))
      o.source = v;
    else
      throw std::runtime_error("unknown option " + k);
  }
  return o;
}

// Phase 1 writers: each transaction as CiviCRM's contact form saves a new contact.
void write_contacts(TestNode& a, long first, long last, std::vector<long>& ids) {
  auto c = a.db().connect();
  for (long i = first; i < last; ++i) {
    const std::string n = std::to_string(i);
    must(c.exec("START TRANSACTION"), "begin");
    must(c.exec("INSERT INTO civicrm_contact (contact_type, first_name, last_name, "
                "external_identifier) VALUES ('Individual', 'First" +
                n + "', 'Last" + n + "', 'E2E-" + n + "')"),
         "contact");
    const std::string id = std::to_string(c.last_insert_id());
    ids[static_cast<std::size_t>(i)] = static_cast<long>(c.last_insert_id());
    must(c.exec("INSERT INTO civicrm_email (contact_id, location_type_id, email, is_primary) "
                "VALUES (" +
                id + ", 1, 'person" + n + "@example.org', 1)"),
         "email");
    must(c.exec("INSERT INTO civicrm_phone (contact_id, location_type_id, phone, phone_type_id, "
                "is_primary) VALUES (" +
                id + ", 1, '+44 20 7946 " + n + "', 1, 1)"),
         "phone");
    must(c.exec("INSERT INTO civicrm_address (contact_id, location_type_id, street_address, "
                "city, postal_code, country_id, is_primary) VALUES (" +
                id + ", 1, '" + n + " High Street', 'Leeds', 'LS1 " + n + "', 1226, 1)"),
         "address");
    must(c.exec("COMMIT"), "commit");
  }
}

void update_contacts(TestNode& a, const std::vector<long>& ids, std::size_t first,
                     std::size_t last) {
  auto c = a.db().connect();
  for (std::size_t i = first; i < last; ++i) {
    const std::string id = std::to_string(ids[i]);
    must(c.exec("START TRANSACTION"), "begin");
    must(c.exec("UPDATE civicrm_contact SET last_name = CONCAT(last_name, '-moved') WHERE id = " +
                id),
         "update contact");
    must(c.exec("UPDATE civicrm_phone SET phone = CONCAT(phone, '9') WHERE contact_id = " + id),
         "update phone");
    must(c.exec("COMMIT"), "commit");
  }
}

template <typename F>
double parallel(int threads, long n, F f) {
  auto t = Clock::now();
  std::vector<std::thread> pool;
  for (int k = 0; k < threads; ++k) {
    pool.emplace_back([&, k] { f(n * k / threads, n * (k + 1) / threads); });
  }
  for (auto& th : pool) th.join();
  return since(t);
}

bool wait_for(const std::function<bool()>& done, double timeout_s, int every_ms = 100) {
  auto t = Clock::now();
  while (since(t) < timeout_s) {
    if (done()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(every_ms));
  }
  return done();
}

double percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  auto i = static_cast<std::size_t>(p * static_cast<double>(v.size() - 1) + 0.5);
  return v[std::min(i, v.size() - 1)];
}

}  // namespace

int main(int argc, char** argv) try {
  const Options o = parse(argc, argv);
  std::fprintf(stderr, "starting two MariaDB servers and two agents...\n");
  TestNode a("a", 0);
  TestNode b("b", 1000);
  const std::vector<std::string> all = {
      "civishare.change.contact.base", "civishare.change.contact.email",
      "civishare.change.contact.phone", "civishare.change.contact.address"};
  a.poll_interval_ms = 500;
  b.poll_interval_ms = 500;
  a.capture_source = o.source;
  b.capture_source = o.source;
  a.configure({{Link{"b", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", all, {}}, &b}});
  b.configure({{Link{"a", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", {}, all}, &a}});
  a.init();
  b.init();
  a.start();
  b.start();
  std::this_thread::sleep_for(std::chrono::seconds(2));

  // 1. Throughput.
  const long n = o.contacts;
  const long changes = 6 * n;
  const long before = applied_on(b);
  const std::string max_id_before = a.query("SELECT COALESCE(MAX(id), 0) FROM civicrm_contact");
  std::vector<long> ids(static_cast<std::size_t>(n));
  std::fprintf(stderr, "phase 1: %ld contacts with email, phone, address; then updates...\n", n);
  const auto t0 = Clock::now();
  const double insert_s = parallel(2, n, [&](long f, long l) { write_contacts(a, f, l, ids); });
  const double update_s = parallel(2, n, [&](long f, long l) {
    update_contacts(a, ids, static_cast<std::size_t>(f), static_cast<std::size_t>(l));
  });
  const double write_s = since(t0);
  const bool all_applied =
      wait_for([&] { return applied_on(b) - before >= changes; }, 60.0 + 10.0 * write_s);
  const double b_done_s = since(t0);
  const long applied = applied_on(b) - before;
  if (const char* keep = std::getenv("E2E_KEEP_LOGS")) {  // for profiling: the agents' logs
    std::filesystem::copy_file(a.dir() + "/agent.log", std::string(keep) + "/a.log",
                               std::filesystem::copy_options::overwrite_existing);
    std::filesystem::copy_file(b.dir() + "/agent.log", std::string(keep) + "/b.log",
                               std::filesystem::copy_options::overwrite_existing);
  }

  // Reference: the same final rows loaded into B (a trigger-less copy of the tables) in one batch.
  const std::string dump = a.dir() + "/e2e_rows.sql";
  const std::string where = "--where=" + std::string("id > ") + max_id_before;
  const std::string where_child = "--where=contact_id > " + max_id_before;
  int rc = std::system(
      ("mariadb-dump --no-defaults -uroot --socket=" + a.db().socket() +
       " --no-create-info --skip-triggers --skip-add-locks civicrm civicrm_contact '" + where +
       "' > " + dump + " && " + "for t in civicrm_email civicrm_phone civicrm_address; do " +
       "mariadb-dump --no-defaults -uroot --socket=" + a.db().socket() +
       " --no-create-info --skip-triggers --skip-add-locks civicrm $t '" + where_child + "' >> " +
       dump + "; done")
          .c_str());
  if (rc != 0) throw std::runtime_error("mariadb-dump failed");
  b.db().run_sql(
      "CREATE DATABASE e2e_reference; "
      "CREATE TABLE e2e_reference.civicrm_contact LIKE civicrm.civicrm_contact; "
      "CREATE TABLE e2e_reference.civicrm_email LIKE civicrm.civicrm_email; "
      "CREATE TABLE e2e_reference.civicrm_phone LIKE civicrm.civicrm_phone; "
      "CREATE TABLE e2e_reference.civicrm_address LIKE civicrm.civicrm_address;");
  auto t = Clock::now();
  rc = std::system(
      ("mariadb --no-defaults -uroot --socket=" + b.db().socket() + " e2e_reference < " + dump)
          .c_str());
  const double batch_s = since(t);
  if (rc != 0) throw std::runtime_error("loading the reference batch failed");

  // 2. Latency: updates at a steady rate on A, seen on B by a poller.
  std::fprintf(stderr, "phase 2: %d updates/s for %d s...\n", o.rate, o.latency_seconds);
  const std::size_t pool_size = std::min<std::size_t>(500, ids.size());
  const long total = static_cast<long>(o.rate) * o.latency_seconds;
  std::vector<Clock::time_point> committed(static_cast<std::size_t>(total));
  std::vector<double> latency(static_cast<std::size_t>(total), -1);
  std::atomic<long> written{0};
  std::atomic<bool> writing{true};
  std::thread writer([&] {
    auto c = a.db().connect();
    const auto start = Clock::now();
    for (long s = 0; s < total; ++s) {
      std::this_thread::sleep_until(start + std::chrono::microseconds(s * 1000000 / o.rate));
      must(c.exec("UPDATE civicrm_contact SET last_name = 'lat-" + std::to_string(s) +
                  "' WHERE id = " + std::to_string(ids[static_cast<std::size_t>(s) % pool_size])),
           "latency update");
      committed[static_cast<std::size_t>(s)] = Clock::now();
      written.store(s + 1);
    }
    writing = false;
  });
  long seen_count = 0;
  std::vector<long> next_unseen(pool_size, 0);  // per contact slot: lowest seq not seen yet
  for (std::size_t k = 0; k < pool_size; ++k) next_unseen[k] = static_cast<long>(k);
  auto c = b.db().connect();
  const auto poll_start = Clock::now();
  while (seen_count < total && since(poll_start) < o.latency_seconds + 60.0) {
    auto rows = c.query("SELECT last_name FROM civicrm_contact WHERE last_name LIKE 'lat-%'");
    const auto now = Clock::now();
    const long done = written.load();
    if (!rows) throw std::runtime_error(rows.error().message);
    for (const auto& r : rows->rows) {
      const long s = std::stol(r[0]->substr(4));
      if (s >= done) continue;  // committed, but the writer has not noted the time yet
      const std::size_t slot = static_cast<std::size_t>(s) % pool_size;
      // This value replaced every earlier one of the same contact: those are visible too.
      for (long q = next_unseen[slot]; q <= s; q += static_cast<long>(pool_size)) {
        latency[static_cast<std::size_t>(q)] =
            std::chrono::duration<double>(now - committed[static_cast<std::size_t>(q)]).count();
        ++seen_count;
      }
      next_unseen[slot] = std::max(next_unseen[slot], s + static_cast<long>(pool_size));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  writer.join();
  std::vector<double> seen;
  for (double l : latency)
    if (l >= 0) seen.push_back(l);

  const long rss_a = peak_rss_mb(a.agent_pid());
  const long rss_b = peak_rss_mb(b.agent_pid());

  // 3. B down while A queues M changes.
  long rss_a_queue = -1;
  double bytes_per_change = 0;
  double queue_s = 0;
  bool queued_all = true;
  if (o.queue > 0) {
    std::fprintf(stderr, "phase 3: B stopped, A queues %ld changes...\n", o.queue);
    b.stop();
    const long qcontacts = std::max(1L, o.queue / 10);
    const std::uintmax_t bytes_before = dir_bytes(a.dir() + "/data");
    auto root = a.db().connect();
    const std::string first = a.query("SELECT COALESCE(MAX(id), 0) + 1 FROM civicrm_contact");
    must(root.exec("INSERT INTO civicrm_contact (contact_type, first_name, last_name) "
                   "SELECT 'Individual', CONCAT('Q', seq), CONCAT('Queued', seq) FROM seq_1_to_" +
                   std::to_string(qcontacts)),
         "queue insert");
    for (long k = 1; k * qcontacts < o.queue; ++k) {
      must(root.exec("UPDATE civicrm_contact SET last_name = CONCAT('Queued', id, '-', " +
                     std::to_string(k) + ") WHERE id >= " + first),
           "queue update");
    }
    const long expected = count(a, "SELECT COUNT(*) FROM log_civicrm_contact WHERE id >= " + first);
    t = Clock::now();
    // Queued = A's status for peer b; the generation above is not timed.
    auto queued = [&]() -> long {
      const std::string s = a.status_json();
      const auto at = s.find("\"queued\":");
      return at == std::string::npos ? 0 : std::stol(s.substr(at + 9));
    };
    // `status` reads the whole outbox: ask every 5 s, not every 100 ms.
    queued_all = wait_for([&] { return queued() >= expected; }, 1200, 5000);
    queue_s = since(t);
    rss_a_queue = peak_rss_mb(a.agent_pid());
    const long q = queued();
    bytes_per_change =
        static_cast<double>(dir_bytes(a.dir() + "/data") - bytes_before) / static_cast<double>(q);
    std::fprintf(stderr, "queued %ld of %ld\n", q, expected);
  }

  std::printf("end to end, capture from %s, poll_interval_ms = 500, 2 agents, 2 MariaDB\n\n",
              o.source == "binlog" ? "the binlog" : "the log tables");
  std::printf(
      "throughput: %ld changes (%ld contacts x contact+email+phone+address, then an update "
      "of name and phone)\n",
      changes, n);
  std::printf("  %-58s %9.2f s   (inserts %.2f s, updates %.2f s)\n",
              "A: writes through the triggers (2 connections)", write_s, insert_s, update_s);
  std::printf("  %-58s %9.2f s   %s\n", "B: all changes applied (from the first write on A)",
              b_done_s, all_applied ? "" : "(TIMED OUT)");
  std::printf("  %-58s %9.0f changes/s (target >= 5000)\n", "B: apply throughput",
              applied / b_done_s);
  std::printf("  %-58s %9.2f       (target <= 2)\n", "B time / A time", b_done_s / write_s);
  std::printf("  %-58s %9.2f s\n", "reference: the same final rows, one mariadb batch into B",
              batch_s);
  std::printf("latency at %d changes/s for %d s: %zu of %ld seen on B\n", o.rate, o.latency_seconds,
              seen.size(), total);
  std::printf("  p50 %.3f s   p95 %.3f s   p99 %.3f s   max %.3f s (target p99 <= 1.5 s)\n",
              percentile(seen, 0.5), percentile(seen, 0.95), percentile(seen, 0.99),
              percentile(seen, 1.0));
  std::printf("memory: peak RSS agent A %ld MB, agent B %ld MB (target <= 256)\n", rss_a, rss_b);
  if (o.queue > 0) {
    std::printf(
        "queue: B down, %ld changes queued on A in %.1f s%s: peak RSS A %ld MB (target <= "
        "256), %.0f bytes on disk per queued change\n",
        o.queue, queue_s, queued_all ? "" : " (TIMED OUT)", rss_a_queue, bytes_per_change);
  }
  return all_applied && queued_all ? 0 : 1;
} catch (const std::exception& e) {
  std::fprintf(stderr, "bench_e2e: %s\n", e.what());
  return 1;
}
