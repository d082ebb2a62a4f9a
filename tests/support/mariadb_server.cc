#include "tests/support/mariadb_server.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <set>
#include <sstream>
#include <stdexcept>
#include <thread>

namespace civishare::testing {
namespace fs = std::filesystem;

std::uint16_t free_port() {
  // The kernel may hand out a port again once it is released, and a test that asks for two (two
  // agents, an agent and its database) then gets the same one twice: never return a port twice.
  static std::mutex mu;
  static std::set<std::uint16_t> given;
  std::lock_guard lock(mu);
  for (int attempt = 0; attempt < 100; ++attempt) {
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = 0;
    if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
      ::close(fd);
      throw std::runtime_error("cannot bind a loopback port");
    }
    socklen_t len = sizeof addr;
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
    ::close(fd);
    const std::uint16_t port = ntohs(addr.sin_port);
    if (given.insert(port).second) return port;
  }
  throw std::runtime_error("no loopback port that was not handed out already");
}

int run_command(const std::string& command, std::string* output) {
  std::string cmd = command + " 2>&1";
  FILE* p = ::popen(cmd.c_str(), "r");
  if (!p) return -1;
  std::array<char, 4096> buf{};
  std::string out;
  while (std::size_t n = std::fread(buf.data(), 1, buf.size(), p)) out.append(buf.data(), n);
  int status = ::pclose(p);
  if (output) *output = out;
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

std::string fixtures_dir() {
  return CIVISHARE_SOURCE_DIR "/tests/fixtures";
}

namespace {

std::string read_file(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string user_flag() {
  return ::geteuid() == 0 ? " --user=root" : "";
}

// mariadb-install-db takes seconds; do it once per test binary and copy the result.
const std::string& template_datadir() {
  static std::once_flag once;
  static std::string dir;
  std::call_once(once, [] {
    char tmpl[] = "/tmp/civishare-mariadb-template-XXXXXX";
    dir = ::mkdtemp(tmpl);
    std::string out;
    int rc = run_command("mariadb-install-db --no-defaults --datadir=" + dir + user_flag() +
                             " --auth-root-authentication-method=normal --skip-test-db"
                             " --skip-name-resolve",
                         &out);
    if (rc != 0) throw std::runtime_error("mariadb-install-db failed:\n" + out);
    std::atexit([] { fs::remove_all(dir); });
  });
  return dir;
}

}  // namespace

MariaDbServer::MariaDbServer(std::string tz) : tz_(std::move(tz)) {
  char tmpl[] = "/tmp/civishare-mariadb-XXXXXX";
  dir_ = ::mkdtemp(tmpl);
  fs::copy(template_datadir(), dir_ + "/data", fs::copy_options::recursive);
  socket_ = dir_ + "/mysqld.sock";
  // free_port() can race with another process taking the port: try a few ports.
  for (int attempt = 1;; ++attempt) {
    port_ = free_port();
    try {
      start_process();
      return;
    } catch (const std::runtime_error&) {
      if (attempt == 3) throw;
    }
  }
}

void MariaDbServer::start_process() {
  std::vector<std::string> args = {"mariadbd",
                                   "--no-defaults",
                                   "--datadir=" + dir_ + "/data",
                                   "--socket=" + socket_,
                                   "--port=" + std::to_string(port_),
                                   "--bind-address=127.0.0.1",
                                   "--pid-file=" + dir_ + "/mysqld.pid",
                                   "--log-error=" + dir_ + "/error.log",
                                   "--log-bin=" + dir_ + "/data/binlog",
                                   "--binlog-format=ROW",
                                   "--binlog-row-metadata=FULL",
                                   "--binlog-row-image=FULL",
                                   "--server-id=1",
                                   "--skip-name-resolve",
                                   "--innodb-buffer-pool-size=64M",
                                   "--innodb-log-file-size=16M",
                                   "--innodb-flush-log-at-trx-commit=2",
                                   "--sync-binlog=0",
                                   "--character-set-server=utf8mb4",
                                   "--collation-server=utf8mb4_unicode_ci",
                                   "--log-bin-trust-function-creators=1"};
  if (::geteuid() == 0) args.push_back("--user=root");
  const pid_t parent = ::getpid();
  pid_ = ::fork();
  if (pid_ == 0) {
    // The server goes with the process that started it, also when that one dies without running
    // destructors (a crash, std::exit in a benchmark, ctest's timeout kill): no mariadbd left
    // running on a deleted directory. The signal comes when the forking *thread* ends, so servers
    // must be started from a thread that outlives them (tests start them on the main thread).
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) ::_exit(127);  // the parent was gone already
    int devnull = ::open("/dev/null", O_RDWR);
    ::dup2(devnull, 0);
    ::dup2(devnull, 1);
    ::dup2(devnull, 2);
    if (!tz_.empty()) ::setenv("TZ", tz_.c_str(), 1);
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    ::execvp("mariadbd", argv.data());
    ::_exit(127);
  }
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (std::chrono::steady_clock::now() < deadline) {
    db::ConnectionOptions o;
    o.socket = socket_;
    o.user = "root";
    o.connect_timeout_s = 1;
    if (db::Connection::open(o)) return;
    int status = 0;
    if (::waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      throw std::runtime_error("mariadbd exited at start:\n" + read_file(dir_ + "/error.log"));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  throw std::runtime_error("mariadbd did not come up in 60 s:\n" + read_file(dir_ + "/error.log"));
}

MariaDbServer::~MariaDbServer() {
  stop();
  std::error_code ec;
  fs::remove_all(dir_, ec);
}

void MariaDbServer::stop() {
  if (pid_ > 0) {
    int status = 0;
    // A server that is gone before anyone stopped it died under the test: say why (its error log
    // is deleted with the directory right after).
    if (::waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      const std::string log = read_file(dir_ + "/error.log");
      std::fprintf(stderr,
                   "MariaDbServer: mariadbd (port %u) had exited by itself (%s %d); the end of "
                   "its error log:\n%s\n",
                   static_cast<unsigned>(port_), WIFSIGNALED(status) ? "signal" : "exit status",
                   WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status),
                   log.substr(log.size() > 6000 ? log.size() - 6000 : 0).c_str());
      return;
    }
    ::kill(pid_, SIGTERM);
    for (int i = 0; i < 300; ++i) {
      if (::waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, &status, 0);
      pid_ = -1;
    }
  }
}

void MariaDbServer::run_sql(const std::string& sql, const std::string& schema) {
  std::string file = dir_ + "/input.sql";
  {
    std::ofstream out(file);
    out << sql;
  }
  std::string out;
  int rc = run_command(
      "mariadb --no-defaults -uroot --socket=" + socket_ + " " + schema + " < " + file, &out);
  if (rc != 0) throw std::runtime_error("SQL failed: " + out + "\nSQL: " + sql.substr(0, 500));
}

void MariaDbServer::load_civicrm(int id_offset) {
  const std::string f = fixtures_dir();
  run_sql(
      "CREATE DATABASE civicrm CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;\n"
      "USE civicrm;\n"
      "SET @civishare_id_offset = " +
      std::to_string(id_offset) +
      ";\n"
      "SOURCE " +
      f +
      "/reference_data.sql;\n"
      "SOURCE " +
      f +
      "/civicrm_schema.sql;\n"
      "CREATE USER 'civishare'@'127.0.0.1' IDENTIFIED BY 'civishare';\n"
      "CREATE USER 'civishare'@'localhost' IDENTIFIED BY 'civishare';\n"
      "GRANT ALL ON civicrm.* TO 'civishare'@'127.0.0.1', 'civishare'@'localhost';\n"
      "GRANT PROCESS, REPLICATION SLAVE, REPLICATION CLIENT ON *.* TO "
      "'civishare'@'127.0.0.1', 'civishare'@'localhost';\n");
}

db::Connection MariaDbServer::connect(const std::string& schema) const {
  db::ConnectionOptions o;
  o.socket = socket_;
  o.user = "root";
  o.schema = schema;
  auto c = db::Connection::open(o);
  if (!c) throw std::runtime_error(c.error().message);
  return std::move(*c);
}

db::ConnectionOptions MariaDbServer::agent_options() const {
  db::ConnectionOptions o;
  o.host = "127.0.0.1";
  o.port = port_;
  o.user = "civishare";
  o.password = "civishare";
  o.schema = "civicrm";
  return o;
}

}  // namespace civishare::testing
