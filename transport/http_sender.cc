#include "transport/http_sender.h"

#include <curl/curl.h>

#include <algorithm>
#include <chrono>

#include "schemas/crash_point.h"
#include "schemas/log.h"
#include "transport/webhook.h"

namespace civishare {
namespace json = boost::json;

namespace {
std::size_t append_body(char* data, std::size_t size, std::size_t n, void* out) {
  static_cast<std::string*>(out)->append(data, size * n);
  return size * n;
}
struct CurlInit {
  CurlInit() { curl_global_init(CURL_GLOBAL_DEFAULT); }
};
}  // namespace

HttpSender::HttpSender(std::string node_name, PeerLink peer, Store& store, SenderOptions options)
    : node_(std::move(node_name)), peer_(std::move(peer)), store_(store), options_(options) {
  static CurlInit init;
  curl_ = curl_easy_init();
}

HttpSender::~HttpSender() {
  if (curl_) curl_easy_cleanup(static_cast<CURL*>(curl_));
}

bool peer_gets(const PeerLink& peer, const std::vector<std::string>& accepts,
               const OutboxEntry& e) {
  if (e.came_from == peer.name || !peer.outgoing.count(e.change.type)) return false;
  if (!e.only_to.empty() && e.only_to != peer.name) return false;
  return std::find(accepts.begin(), accepts.end(), e.change.type) != accepts.end();
}

Result<HttpSender::Response> HttpSender::request(const std::string& path,
                                                 const std::string& message_id,
                                                 const std::string* body) {
  CURL* c = static_cast<CURL*>(curl_);
  if (!c) return make_error(Errc::internal, "libcurl could not be initialised");
  curl_easy_reset(c);  // keeps the connection cache: keep-alive survives
  std::string url = peer_.url;
  while (!url.empty() && url.back() == '/') url.pop_back();
  url += path;
  const std::int64_t ts = unix_now();
  const std::string payload = body ? *body : std::string();
  curl_slist* headers = nullptr;
  if (body) headers = curl_slist_append(headers, "Content-Type: application/json");
  headers = curl_slist_append(headers, ("webhook-id: " + message_id).c_str());
  headers = curl_slist_append(headers, ("webhook-timestamp: " + std::to_string(ts)).c_str());
  headers = curl_slist_append(
      headers, ("webhook-signature: " + webhook::sign(peer_.key, message_id, ts, payload)).c_str());
  headers = curl_slist_append(headers, "Expect:");
  Response r;
  curl_easy_setopt(c, CURLOPT_URL, url.c_str());
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);
  if (body) {
    curl_easy_setopt(c, CURLOPT_POST, 1L);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, body->data());
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(body->size()));
  }
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, append_body);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &r.body);
  curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, options_.timeout_ms);
  curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, options_.connect_timeout_ms);
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(c, CURLOPT_TCP_KEEPALIVE, 1L);
  curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 1L);
  curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 2L);
  if (!peer_.ca_file.empty()) curl_easy_setopt(c, CURLOPT_CAINFO, peer_.ca_file.c_str());
  CURLcode rc = curl_easy_perform(c);
  curl_slist_free_all(headers);
  if (rc != CURLE_OK) {
    return make_error(Errc::network, "peer `" + peer_.name + "` at " + url +
                                         " unreachable: " + curl_easy_strerror(rc));
  }
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r.status);
  return r;
}

void HttpSender::record_error(const Error& e) {
  state_.negotiated = false;  // ask again after reconnecting: the peer's config may have changed
  state_.last_error = e.message;
  state_.last_error_at = unix_now();
  (void)store_.set_peer_state(peer_.name, state_);
}

Result<std::vector<std::string>> HttpSender::hello() {
  const std::string id = "hello-" + node_ + "-" + std::to_string(unix_now());
  auto r = request("/v1/hello", id, nullptr);
  if (!r) return r.error();
  if (r->status != 200) {
    return make_error(Errc::peer_rejected, "peer `" + peer_.name + "` answered HTTP " +
                                               std::to_string(r->status) +
                                               " to hello: " + r->body.substr(0, 300));
  }
  boost::system::error_code ec;
  json::value v = json::parse(r->body, ec);
  const json::object* o = (!ec && v.is_object()) ? &v.get_object() : nullptr;
  const json::value* node = o ? o->if_contains("node") : nullptr;
  const json::value* accepts = o ? o->if_contains("accepts") : nullptr;
  if (!node || !node->is_string() || !accepts || !accepts->is_array()) {
    return make_error(Errc::peer_rejected, "peer `" + peer_.name + "` sent a malformed hello");
  }
  if (node->get_string() != peer_.name) {
    return make_error(Errc::invalid_config, "the peer at " + peer_.url + " says it is `" +
                                                std::string(node->get_string()) + "`, not `" +
                                                peer_.name + "`: check peer.url");
  }
  std::vector<std::string> types;
  for (const auto& t : accepts->get_array()) {
    if (t.is_string()) types.emplace_back(t.get_string());
  }
  return types;
}

Status HttpSender::negotiate() {
  auto answer = hello();
  if (!answer) return answer.error();
  std::vector<std::string> types = std::move(*answer);
  if (types != state_.accepts || !state_.negotiated) {
    std::string list;
    for (const auto& t : peer_.outgoing) {
      if (std::find(types.begin(), types.end(), t) != types.end())
        list += (list.empty() ? "" : ", ") + t;
    }
    log_info("sender", "peer `" + peer_.name + "` gets: " + (list.empty() ? "nothing" : list));
  }
  state_.accepts = std::move(types);
  state_.negotiated = true;
  return store_.set_peer_state(peer_.name, state_);
}

Result<std::size_t> HttpSender::send_once() {
  if (!state_.negotiated) {
    if (auto s = negotiate(); !s) {
      record_error(s.error());
      return s.error();
    }
  }
  auto r = send_batch();
  if (!r) record_error(r.error());
  return r;
}

Result<std::size_t> HttpSender::send_batch() {
  auto acked = store_.acked(peer_.name);
  if (!acked) return acked.error();
  // Read a little more than one batch: entries for other peers are skipped over (read for their
  // routing fields only).
  auto pending =
      store_.read_outbox(*acked, options_.max_batch_changes * 2,
                         [&](const OutboxEntry& e) { return peer_gets(peer_, state_.accepts, e); });
  if (!pending) return pending.error();
  if (pending->empty()) return std::size_t{0};

  // The body is assembled from each change serialised once: the same JSON as to_json(Message).
  std::string changes;
  std::size_t count = 0;
  std::vector<std::int64_t> queued_at;
  std::uint64_t first = 0;
  std::uint64_t last = *acked;
  std::size_t consumed = 0;
  for (const auto& e : *pending) {
    if (peer_gets(peer_, state_.accepts, e)) {
      std::string one = json::serialize(to_json(e.change));
      if (count > 0 && (count >= options_.max_batch_changes ||
                        changes.size() + one.size() > options_.max_batch_bytes)) {
        break;
      }
      if (first == 0) first = e.seq;
      changes += (count++ ? "," : "") + one;
      queued_at.push_back(e.queued_at);
    }
    last = e.seq;
    ++consumed;
  }
  if (count == 0) {
    // Nothing in this range is for this peer: move past it.
    if (auto s = store_.set_acked(peer_.name, last); !s) return s.error();
    return consumed;
  }
  const std::string id = node_ + "-" + std::to_string(first) + "-" + std::to_string(last);
  const std::string body = "{\"id\":" + json::serialize(json::string(id)) +
                           ",\"payload\":{\"sender\":" + json::serialize(json::string(node_)) +
                           ",\"sent\":\"" + utc_now_iso() + "\",\"changes\":[" + changes + "]}}";
  auto r = request("/v1/changes", id, &body);
  if (!r) return r.error();
  if (r->status == 409) {
    log_info("sender", "peer `" + peer_.name + "` already had batch " + id);
  } else if ((r->status < 200 || r->status >= 300) && r->status != 422) {
    return make_error(Errc::peer_rejected, "peer `" + peer_.name + "` answered HTTP " +
                                               std::to_string(r->status) + ": " +
                                               r->body.substr(0, 300));
  } else {  // 2xx, or 422: processed, every change refused (logged below, not retried)
    boost::system::error_code ec;
    json::value v = json::parse(r->body, ec);
    if (!ec && v.is_object()) {
      if (auto* results = v.get_object().if_contains("results"); results && results->is_array()) {
        for (const auto& res : results->get_array()) {
          if (!res.is_object()) continue;
          auto* status = res.get_object().if_contains("status");
          if (status && status->is_string() && status->get_string() == "refused") {
            log_warn("sender", "peer `" + peer_.name + "` refused change " +
                                   json::serialize(res.get_object()));
          }
        }
      }
    }
  }
  crash_point("sender.after_send");
  if (auto s = store_.set_acked(peer_.name, last); !s) return s.error();
  if (options_.on_delivered) options_.on_delivered(queued_at);
  state_.last_success_at = unix_now();
  state_.last_error.clear();
  if (auto s = store_.set_peer_state(peer_.name, state_); !s) return s.error();
  log_debug("sender", "delivered " + std::to_string(count) + " change(s) to `" + peer_.name + "`");
  return consumed;
}

}  // namespace civishare
