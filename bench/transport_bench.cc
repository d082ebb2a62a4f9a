// Pushes 100,000 changes from one store to a receiver over loopback with the real HttpSender, then
// posts the very same request bodies (and signature headers) with one `curl` process to a fresh
// receiver, and prints both side by side. Both runs include the receiver's work (verify, parse,
// validate, persist to RocksDB); the difference is what our sender adds on top of plain HTTP.
//
//   build/bench/bench_transport [changes]
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <string>
#include <vector>

#include "schemas/type_definition.h"
#include "transport/http_sender.h"
#include "transport/queue/store.h"
#include "transport/receiver.h"
#include "transport/webhook.h"

namespace {
using namespace civishare;
namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

const std::string kBase = "civishare.change.contact.base";

struct Receiving {
  std::unique_ptr<Store> store;
  std::unique_ptr<ChangeReceiver> receiver;
  std::unique_ptr<HttpServer> server;
  std::mutex mu;
  std::vector<HttpRequest> requests;  // what arrived, for the curl reference
  std::size_t body_bytes = 0;
};

void start_receiver(Receiving& r, const fs::path& dir, const std::string& key) {
  fs::create_directories(dir);
  auto store = Store::open(dir.string());
  if (!store) {
    std::fprintf(stderr, "%s\n", store.error().message.c_str());
    std::exit(1);
  }
  r.store = std::move(*store);
  PeerLink a{"civi1", "", key, {}, {kBase}, ""};
  r.receiver = std::make_unique<ChangeReceiver>("civi2", std::vector<PeerLink>{a}, *r.store,
                                                TypeRegistry::builtin(), nullptr);
  r.server = std::move(*HttpServer::start(ServerOptions{}, [&r](const HttpRequest& req) {
    {
      std::lock_guard lock(r.mu);
      if (req.method == "POST") {
        r.requests.push_back(req);
        r.body_bytes += req.body.size();
      }
    }
    return r.receiver->handle(req);
  }));
}

double seconds_since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

}  // namespace

int main(int argc, char** argv) {
  const std::size_t n = argc > 1 ? std::stoul(argv[1]) : 100000;
  const fs::path root =
      fs::temp_directory_path() / ("civishare-bench-" + std::to_string(::getpid()));
  fs::create_directories(root / "a");
  const std::string key = *webhook::key_from_secret(webhook::new_secret());

  // Fill A's outbox with n realistic contact changes.
  auto a = std::move(*Store::open((root / "a").string()));
  for (std::size_t i = 0; i < n;) {
    CaptureBatch batch;
    for (std::size_t j = 0; j < 1000 && i < n; ++j, ++i) {
      Change c;
      c.id = "civi1-" + std::to_string(i);
      c.type = kBase;
      c.timestamp = "2026-11-28T09:59:58Z";
      c.entity = "Contact";
      c.entity_reference = "civi1-" + std::to_string(100000 + i);
      c.operation = Operation::update;
      c.attribute_changes = {{"first_name", boost::json::value("Karl"), boost::json::value("Carl")},
                             {"last_name", boost::json::value("Müller"),
                              boost::json::value("Müller-" + std::to_string(i))},
                             {"job_title", std::nullopt, boost::json::value("Treasurer")}};
      batch.records.push_back(OutboxEntry{0, std::move(c), "", 0});
    }
    batch.sign_as = "civi1";  // as capture queues them: signed by the store when the sender reads
    if (auto s = a->commit_capture(std::move(batch)); !s) {
      std::fprintf(stderr, "%s\n", s.error().message.c_str());
      return 1;
    }
  }

  Receiving b;
  start_receiver(b, root / "b", key);
  PeerLink to_b{
      "civi2", "http://127.0.0.1:" + std::to_string(b.server->port()), key, {kBase}, {kBase}, ""};
  HttpSender sender("civi1", to_b, *a);
  auto t0 = Clock::now();
  for (;;) {
    auto r = sender.send_once();
    if (!r) {
      std::fprintf(stderr, "send failed: %s\n", r.error().message.c_str());
      return 1;
    }
    if (*r == 0) break;
  }
  const double sender_s = seconds_since(t0);
  const std::size_t received = b.store->inbox_size();

  // Reference: the same bodies and headers, posted by one curl process (keep-alive) to a fresh
  // receiver.
  Receiving ref;
  start_receiver(ref, root / "ref", key);
  const std::string url = "http://127.0.0.1:" + std::to_string(ref.server->port()) + "/v1/changes";
  {
    std::ofstream cfg(root / "curl.cfg");
    for (std::size_t i = 0; i < b.requests.size(); ++i) {
      const auto& r = b.requests[i];
      const fs::path body = root / ("body-" + std::to_string(i));
      std::ofstream(body) << r.body;
      if (i) cfg << "next\n";
      cfg << "url = \"" << url << "\"\n"
          << "data-binary = \"@" << body.string() << "\"\n"
          << "header = \"Content-Type: application/json\"\n"
          << "header = \"webhook-id: " << r.headers.at("webhook-id") << "\"\n"
          << "header = \"webhook-timestamp: " << r.headers.at("webhook-timestamp") << "\"\n"
          << "header = \"webhook-signature: " << r.headers.at("webhook-signature") << "\"\n"
          << "output = \"/dev/null\"\n";
    }
  }
  t0 = Clock::now();
  int rc = std::system(("curl -s -K " + (root / "curl.cfg").string()).c_str());
  const double curl_s = seconds_since(t0);
  const std::size_t ref_received = ref.store->inbox_size();

  std::fflush(stderr);
  std::printf("transport: %zu changes, one sender to one receiver over loopback\n", n);
  std::printf("%-34s %10s %12s %14s %12s\n", "", "seconds", "changes/s", "bytes/change",
              "requests");
  std::printf("%-34s %10.2f %12.0f %14.1f %12zu\n", "civishare HttpSender", sender_s,
              static_cast<double>(received) / sender_s, static_cast<double>(b.body_bytes) / n,
              b.requests.size());
  std::printf("%-34s %10.2f %12.0f %14.1f %12zu\n", "reference: curl, same bodies", curl_s,
              static_cast<double>(ref_received) / curl_s, static_cast<double>(ref.body_bytes) / n,
              ref.requests.size());
  std::printf("sender time / curl time: %.2f\n", sender_s / curl_s);
  if (received != n || ref_received != n || rc != 0) {
    std::fprintf(stderr, "incomplete: sender delivered %zu, curl %zu of %zu (curl exit %d)\n",
                 received, ref_received, n, rc);
    return 1;
  }
  b.server.reset();
  ref.server.reset();
  fs::remove_all(root);
  return 0;
}
