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
};

struct HttpResponse {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
};

class ChangeReceiver {
 public:
  ChangeReceiver(std::string node_name, std::vector<PeerLink> peers, Store& store,
                 const TypeRegistry& types, std::function<void()> on_accepted);

  // Routes: POST /v1/changes, GET /v1/hello, GET /healthz. Bad input gets a 4xx with a JSON
  // {"error": "..."} body; a 5xx only when the local store fails (the sender retries).
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
};

// Serves HTTP/1.1 on one io thread. Requests over `body_limit` bytes get 413; a request that
// takes longer than `timeout_s` to arrive is dropped.
class HttpServer {
 public:
  using Handler = std::function<HttpResponse(const HttpRequest&)>;
  // Binds `host:port` (port 0 = any free port) and starts serving.
  static Result<std::unique_ptr<HttpServer>> start(const std::string& host, std::uint16_t port,
                                                   Handler handler,
                                                   std::size_t body_limit = 16 << 20,
                                                   int timeout_s = 30);
  ~HttpServer();  // stops and joins
  std::uint16_t port() const;
  void stop();

  struct Impl;

 private:
  explicit HttpServer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace civishare
