// The receiver: authenticates pushes from peers and persists accepted changes to the inbox.
// ChangeReceiver is the request logic (no sockets, testable directly); HttpServer is the
// Boost.Beast listener that feeds it. Both are thread-safe.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "schemas/result.h"
#include "schemas/type_definition.h"
#include "transport/link.h"
#include "transport/queue/store.h"

namespace civishare {

struct HttpRequest {
  std::string method;
  std::string target;
  std::map<std::string, std::string> headers;  // names in lower case
  std::string body;
  bool from_loopback = false;  // the client connected from 127.0.0.0/8 or ::1
};

struct HttpResponse {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
};

class ChangeReceiver {
 public:
  static constexpr std::size_t kMaxChangesPerMessage = 10000;

  ChangeReceiver(std::string node_name, std::vector<PeerLink> peers, Store& store,
                 const TypeRegistry& types, std::function<void()> on_accepted,
                 std::int64_t timestamp_tolerance_s = 300);

  // Routes: POST /v1/changes, GET /v1/hello, GET /healthz. Bad input gets a 4xx with a JSON
  // {"error": "..."} body; a 5xx only when the local store fails (the sender retries).
  // A processed batch answers 200 with {"id", "results": [{"id", "status": accepted|duplicate|
  // refused, "reason"}]}, or 422 with the same body when every change in it was refused.
  HttpResponse handle(const HttpRequest& request);

 private:
  HttpResponse changes(const HttpRequest& request);
  HttpResponse hello(const HttpRequest& request);
  const PeerLink* authenticate(const HttpRequest& request, const PeerLink* claimed,
                               HttpResponse* failure);

  std::string node_;
  std::vector<PeerLink> peers_;
  Store& store_;
  const TypeRegistry& types_;
  std::function<void()> on_accepted_;
  std::int64_t tolerance_s_;
};

struct ServerOptions {
  std::string host = "127.0.0.1";
  std::uint16_t port = 0;             // 0 = any free port
  std::size_t body_limit = 16 << 20;  // larger requests get 413
  int timeout_s = 30;                 // a request slower than this to arrive is dropped
  std::string tls_cert_file;          // PEM; with tls_key_file, serve HTTPS instead of HTTP
  std::string tls_key_file;
};

// Serves HTTP/1.1 (or HTTPS) on one io thread and hands each request to `handler`.
class HttpServer {
 public:
  using Handler = std::function<HttpResponse(const HttpRequest&)>;
  // Binds and starts serving. Errors: Errc::invalid_config (bad address, unreadable TLS files),
  // Errc::network (cannot bind).
  static Result<std::unique_ptr<HttpServer>> start(const ServerOptions& options, Handler handler);
  ~HttpServer();  // stops and joins
  std::uint16_t port() const;
  void stop();

  struct Impl;

 private:
  explicit HttpServer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace civishare
