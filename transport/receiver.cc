#include "transport/receiver.h"

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <boost/json.hpp>
#include <chrono>
#include <optional>

#include "schemas/crash_point.h"
#include "schemas/log.h"
#include "transport/webhook.h"

namespace civishare {
namespace json = boost::json;
namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;

namespace {

HttpResponse json_response(int status, json::value body) {
  return HttpResponse{status, "application/json", json::serialize(body)};
}

HttpResponse error_response(int status, const std::string& message) {
  return json_response(status, json::object{{"error", message}});
}

std::string header(const HttpRequest& r, const std::string& name) {
  auto it = r.headers.find(name);
  return it == r.headers.end() ? std::string() : it->second;
}

// Checks a change against its type definition: known attributes, parent reference present.
std::string validate(const Change& c, const TypeDefinition& def) {
  if (c.entity != def.entity) return "entity must be `" + def.entity + "` for type " + def.type;
  for (const auto& a : c.attribute_changes) {
    if (!def.find_wire(a.name)) return "attribute `" + a.name + "` is not part of " + def.type;
  }
  if (def.parent && c.operation != Operation::remove && !c.context.count(def.parent->context_key)) {
    return "context." + def.parent->context_key + " is required for " + def.type;
  }
  return {};
}

}  // namespace

ChangeReceiver::ChangeReceiver(std::string node_name, std::vector<PeerLink> peers, Store& store,
                               const TypeRegistry& types, std::function<void()> on_accepted,
                               std::int64_t timestamp_tolerance_s)
    : node_(std::move(node_name)),
      peers_(std::move(peers)),
      store_(store),
      types_(types),
      on_accepted_(std::move(on_accepted)),
      tolerance_s_(timestamp_tolerance_s) {}

HttpResponse ChangeReceiver::handle(const HttpRequest& request) {
  std::string path = request.target.substr(0, request.target.find('?'));
  if (path == "/v1/changes") {
    if (request.method != "POST") return error_response(405, "use POST for /v1/changes");
    return changes(request);
  }
  if (path == "/v1/hello") {
    if (request.method != "GET") return error_response(405, "use GET for /v1/hello");
    return hello(request);
  }
  if (path == "/healthz") return HttpResponse{200, "text/plain", "ok\n"};
  return error_response(404, "no such path: " + path);
}

const PeerLink* ChangeReceiver::authenticate(const HttpRequest& request, const PeerLink* claimed,
                                             HttpResponse* failure) {
  const std::string id = header(request, "webhook-id");
  const std::string timestamp = header(request, "webhook-timestamp");
  const std::string signature = header(request, "webhook-signature");
  webhook::VerifyInput in{id, timestamp, signature, request.body};
  Error last{Errc::unauthorized, "unknown sender"};
  // With a claimed sender, only its key counts; otherwise (GET) the key that verifies names it.
  for (const auto& peer : peers_) {
    if (claimed && &peer != claimed) continue;
    auto s = webhook::verify(peer.key, in, unix_now(), tolerance_s_);
    if (s) return &peer;
    last = s.error();
    if (last.code == Errc::invalid_input) break;
  }
  *failure = error_response(last.code == Errc::invalid_input ? 400 : 401, last.message);
  return nullptr;
}

HttpResponse ChangeReceiver::hello(const HttpRequest& request) {
  HttpResponse failure;
  const PeerLink* peer = authenticate(request, nullptr, &failure);
  if (!peer) {
    log_warn("receiver", "refused a hello: " + failure.body);
    return failure;
  }
  json::array accepts;
  for (const auto& t : peer->incoming) accepts.push_back(json::string(t));
  return json_response(200, json::object{{"node", node_}, {"accepts", std::move(accepts)}});
}

HttpResponse ChangeReceiver::changes(const HttpRequest& request) {
  if (header(request, "content-type").rfind("application/json", 0) != 0) {
    return error_response(415, "Content-Type must be application/json");
  }
  auto msg = parse_message(request.body);
  if (!msg) return error_response(400, msg.error().message);
  const PeerLink* claimed = nullptr;
  for (const auto& p : peers_) {
    if (p.name == msg->sender) claimed = &p;
  }
  if (msg->raw_changes.size() > kMaxChangesPerMessage) {
    return error_response(
        413, "more than " + std::to_string(kMaxChangesPerMessage) + " changes in one message");
  }
  if (!claimed) {
    return error_response(403, "unknown sender `" + msg->sender + "`: add it as a [[peer]]");
  }
  HttpResponse failure;
  const PeerLink* peer = authenticate(request, claimed, &failure);
  if (!peer) {
    log_warn("receiver",
             "refused a push claiming to be from `" + msg->sender + "`: " + failure.body);
    return failure;
  }
  auto replay = store_.message_seen(peer->name, header(request, "webhook-id"));
  if (!replay) return error_response(503, replay.error().message);
  if (*replay)
    return error_response(409,
                          "message " + header(request, "webhook-id") + " was already accepted");

  json::array results;
  std::vector<InboxEntry> accepted;
  std::uint64_t loops_dropped = 0;
  for (const auto& raw : msg->raw_changes) {
    json::object result;
    if (raw.is_object()) {
      if (auto* id = raw.get_object().if_contains("id")) result["id"] = *id;
    }
    auto refuse = [&](const std::string& why) {
      result["status"] = "refused";
      result["reason"] = why;
      results.push_back(std::move(result));
    };
    auto change = change_from_json(raw);
    if (!change) {
      refuse(change.error().message);
      continue;
    }
    const TypeDefinition* def = types_.find(change->type);
    if (!def) {
      refuse("unknown type " + change->type);
      continue;
    }
    if (!peer->incoming.count(change->type)) {
      refuse("type " + change->type + " is not accepted from " + peer->name);
      continue;
    }
    if (auto why = validate(*change, *def); !why.empty()) {
      refuse(why);
      continue;
    }
    if (change->loop_detection.empty()) {
      refuse("loop_detection must hold at least the sender's signature");
      continue;
    }
    // A change this node captured came back around a loop (its id names its origin, and the id
    // travels unchanged); any other is a duplicate when a signature of its chain came here before.
    bool duplicate = origin_of_change_id(change->id) == node_;
    if (!duplicate) {
      auto seen = store_.any_signature_seen(change->loop_detection);
      if (!seen) return error_response(503, seen.error().message);
      duplicate = *seen;
    }
    for (const auto& e : accepted) {  // the same change twice in one batch
      for (const auto& s : e.change.loop_detection) {
        for (const auto& t : change->loop_detection) duplicate = duplicate || s == t;
      }
    }
    result["status"] = duplicate ? "duplicate" : "accepted";
    if (duplicate) ++loops_dropped;
    results.push_back(std::move(result));
    if (!duplicate) accepted.push_back(InboxEntry{0, std::move(*change), peer->name, 0});
  }
  const std::size_t count = accepted.size();
  if (auto s = store_.commit_receive(peer->name, header(request, "webhook-id"), std::move(accepted),
                                     loops_dropped);
      !s) {
    log_error("receiver", s.error().message);
    return error_response(503, "could not persist: " + s.error().message);
  }
  crash_point("receiver.after_persist");
  if (count && on_accepted_) on_accepted_();
  // 422 when every change was refused (the batch was processed; nothing in it is usable).
  bool all_refused = !results.empty();
  for (const auto& r : results) all_refused = all_refused && r.at("status") == "refused";
  return json_response(all_refused ? 422 : 200,
                       json::object{{"id", msg->id}, {"results", std::move(results)}});
}

// ---------------------------------------------------------------------------------------------

struct HttpServer::Impl {
  asio::io_context io{1};
  asio::ip::tcp::acceptor acceptor{io};
  std::optional<asio::ssl::context> tls;
  Handler handler;
  ServerOptions options;
  std::thread thread;

  HttpRequest to_request(http::request<http::string_body>& req) {
    HttpRequest r;
    r.method = std::string(req.method_string());
    r.target = std::string(req.target());
    for (const auto& f : req) {
      std::string name(f.name_string());
      for (auto& ch : name) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
      r.headers[name] = std::string(f.value());
    }
    r.body = std::move(req.body());
    return r;
  }

  template <typename Stream>
  asio::awaitable<void> serve(Stream& stream) {
    beast::flat_buffer buffer;
    for (;;) {
      http::request_parser<http::string_body> parser;
      parser.body_limit(options.body_limit);
      beast::get_lowest_layer(stream).expires_after(std::chrono::seconds(options.timeout_s));
      auto [ec, n] =
          co_await http::async_read(stream, buffer, parser, asio::as_tuple(asio::use_awaitable));
      (void)n;
      HttpResponse out;
      bool keep_alive = false;
      if (ec == http::error::body_limit) {
        out = error_response(413,
                             "body larger than " + std::to_string(options.body_limit) + " bytes");
      } else if (ec == http::error::end_of_stream || ec == beast::error::timeout ||
                 ec == asio::error::eof || ec == asio::error::connection_reset ||
                 ec == asio::ssl::error::stream_truncated) {
        co_return;
      } else if (ec) {
        out = error_response(400, "malformed HTTP request: " + ec.message());
      } else {
        keep_alive = parser.get().keep_alive();
        try {
          HttpRequest request = to_request(parser.get());
          beast::error_code rec;
          auto remote = beast::get_lowest_layer(stream).socket().remote_endpoint(rec);
          request.from_loopback = !rec && remote.address().is_loopback();
          out = handler(request);
        } catch (const std::exception& e) {
          log_error("receiver", std::string("request handler failed: ") + e.what());
          out = error_response(500, "internal error");
        }
      }
      http::response<http::string_body> res{static_cast<http::status>(out.status), 11};
      res.set(http::field::server, "civishare");
      res.set(http::field::content_type, out.content_type);
      res.keep_alive(keep_alive);
      res.body() = std::move(out.body);
      res.prepare_payload();
      auto [wec, wn] = co_await http::async_write(stream, res, asio::as_tuple(asio::use_awaitable));
      (void)wn;
      if (wec || !keep_alive) co_return;
    }
  }

  asio::awaitable<void> session(asio::ip::tcp::socket socket) {
    beast::error_code ignored;
    if (tls) {
      beast::ssl_stream<beast::tcp_stream> stream(beast::tcp_stream(std::move(socket)), *tls);
      beast::get_lowest_layer(stream).expires_after(std::chrono::seconds(options.timeout_s));
      auto [ec] = co_await stream.async_handshake(asio::ssl::stream_base::server,
                                                  asio::as_tuple(asio::use_awaitable));
      if (ec) {
        log_debug("receiver", "TLS handshake failed: " + ec.message());
        co_return;
      }
      co_await serve(stream);
      beast::get_lowest_layer(stream).expires_after(std::chrono::seconds(2));
      co_await stream.async_shutdown(asio::as_tuple(asio::use_awaitable));
    } else {
      beast::tcp_stream stream(std::move(socket));
      co_await serve(stream);
      stream.socket().shutdown(asio::ip::tcp::socket::shutdown_both, ignored);
    }
  }

  asio::awaitable<void> accept_loop() {
    for (;;) {
      auto [ec, socket] = co_await acceptor.async_accept(asio::as_tuple(asio::use_awaitable));
      if (ec == asio::error::operation_aborted) co_return;
      if (ec) continue;
      asio::co_spawn(io, session(std::move(socket)), asio::detached);
    }
  }
};

HttpServer::HttpServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

Result<std::unique_ptr<HttpServer>> HttpServer::start(const ServerOptions& options,
                                                      Handler handler) {
  auto impl = std::make_unique<Impl>();
  impl->handler = std::move(handler);
  impl->options = options;
  if (!options.tls_cert_file.empty() || !options.tls_key_file.empty()) {
    impl->tls.emplace(asio::ssl::context::tls_server);
    impl->tls->set_options(asio::ssl::context::default_workarounds | asio::ssl::context::no_sslv2 |
                           asio::ssl::context::no_sslv3 | asio::ssl::context::no_tlsv1 |
                           asio::ssl::context::no_tlsv1_1);
    boost::system::error_code ec;
    impl->tls->use_certificate_chain_file(options.tls_cert_file, ec);
    if (ec) {
      return make_error(Errc::invalid_config, "receiver.tls_cert: cannot use `" +
                                                  options.tls_cert_file + "`: " + ec.message());
    }
    impl->tls->use_private_key_file(options.tls_key_file, asio::ssl::context::pem, ec);
    if (ec) {
      return make_error(Errc::invalid_config, "receiver.tls_key: cannot use `" +
                                                  options.tls_key_file + "`: " + ec.message());
    }
  }
  boost::system::error_code ec;
  auto address = asio::ip::make_address(options.host, ec);
  if (ec) {
    return make_error(Errc::invalid_config,
                      "receiver.listen: `" + options.host + "` is not an IP address");
  }
  asio::ip::tcp::endpoint ep(address, options.port);
  impl->acceptor.open(ep.protocol(), ec);
  if (!ec) impl->acceptor.set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) impl->acceptor.bind(ep, ec);
  if (!ec) impl->acceptor.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) {
    return make_error(Errc::network, "cannot listen on " + options.host + ":" +
                                         std::to_string(options.port) + ": " + ec.message());
  }
  asio::co_spawn(impl->io, impl->accept_loop(), asio::detached);
  Impl* raw = impl.get();
  impl->thread = std::thread([raw] { raw->io.run(); });
  return std::unique_ptr<HttpServer>(new HttpServer(std::move(impl)));
}

std::uint16_t HttpServer::port() const {
  return impl_->acceptor.local_endpoint().port();
}

void HttpServer::stop() {
  if (!impl_->thread.joinable()) return;
  asio::post(impl_->io, [this] {
    boost::system::error_code ignored;
    impl_->acceptor.close(ignored);
    impl_->io.stop();
  });
  impl_->thread.join();
}

HttpServer::~HttpServer() {
  stop();
}

}  // namespace civishare
