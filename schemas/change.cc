#include "schemas/change.h"

#include <algorithm>
#include <chrono>
#include <ctime>
#include <limits>

#include "schemas/canonical_json.h"
#include "schemas/crypto.h"

namespace civishare {
namespace json = boost::json;

const char* to_string(Operation op) {
  switch (op) {
    case Operation::create:
      return "create";
    case Operation::update:
      return "update";
    case Operation::remove:
      return "delete";
  }
  return "update";
}

std::optional<Operation> operation_from_string(std::string_view s) {
  if (s == "create") return Operation::create;
  if (s == "update") return Operation::update;
  if (s == "delete") return Operation::remove;
  return std::nullopt;
}

const AttributeChange* Change::find_attribute(std::string_view name) const {
  for (const auto& a : attribute_changes) {
    if (a.name == name) return &a;
  }
  return nullptr;
}

json::value to_json(const Change& c) {
  json::object o;
  o["id"] = c.id;
  o["type"] = c.type;
  o["timestamp"] = c.timestamp;
  o["entity"] = c.entity;
  o["entity_reference"] = c.entity_reference;
  o["operation"] = to_string(c.operation);
  json::object ctx;
  for (const auto& [k, v] : c.context) ctx[k] = v;
  o["context"] = std::move(ctx);
  json::array attrs;
  for (const auto& a : c.attribute_changes) {
    json::object ao;
    ao["name"] = a.name;
    if (a.from) ao["from"] = *a.from;
    ao["to"] = a.to;
    attrs.push_back(std::move(ao));
  }
  o["attribute_changes"] = std::move(attrs);
  json::array chain;
  for (const auto& s : c.loop_detection) chain.push_back(json::string(s));
  o["loop_detection"] = std::move(chain);
  return o;
}

namespace {

Result<std::string> required_string(const json::object& o, std::string_view key) {
  auto* v = o.if_contains(key);
  if (!v || !v->is_string() || v->get_string().empty()) {
    return make_error(Errc::invalid_input,
                      "field `" + std::string(key) + "` must be a non-empty string");
  }
  return std::string(v->get_string());
}

bool is_scalar(const json::value& v) {
  return !v.is_object() && !v.is_array();
}

}  // namespace

Result<Change> change_from_json(const json::value& value) {
  if (!value.is_object()) return make_error(Errc::invalid_input, "a change must be a JSON object");
  const auto& o = value.get_object();
  Change c;
  for (auto [key, field] : {std::pair{"id", &c.id},
                            {"type", &c.type},
                            {"timestamp", &c.timestamp},
                            {"entity", &c.entity},
                            {"entity_reference", &c.entity_reference}}) {
    auto s = required_string(o, key);
    if (!s) return s.error();
    *field = std::move(*s);
  }
  auto op = required_string(o, "operation");
  if (!op) return op.error();
  auto parsed_op = operation_from_string(*op);
  if (!parsed_op) {
    return make_error(Errc::invalid_input,
                      "field `operation` must be create, update or delete, not `" + *op + "`");
  }
  c.operation = *parsed_op;
  if (auto* ctx = o.if_contains("context"); ctx && !ctx->is_null()) {
    if (!ctx->is_object())
      return make_error(Errc::invalid_input, "field `context` must be an object");
    for (const auto& kv : ctx->get_object()) {
      if (!kv.value().is_string()) {
        return make_error(Errc::invalid_input, "context values must be strings");
      }
      c.context[std::string(kv.key())] = std::string(kv.value().get_string());
    }
  }
  auto* attrs = o.if_contains("attribute_changes");
  if (!attrs || !attrs->is_array()) {
    return make_error(Errc::invalid_input, "field `attribute_changes` must be an array");
  }
  for (const auto& a : attrs->get_array()) {
    if (!a.is_object())
      return make_error(Errc::invalid_input, "each attribute change must be an object");
    const auto& ao = a.get_object();
    auto name = required_string(ao, "name");
    if (!name) return name.error();
    AttributeChange ac;
    ac.name = std::move(*name);
    auto* to = ao.if_contains("to");
    if (!to || !is_scalar(*to)) {
      return make_error(Errc::invalid_input, "attribute `" + ac.name + "` needs a scalar `to`");
    }
    ac.to = *to;
    if (auto* from = ao.if_contains("from")) {
      if (!is_scalar(*from)) {
        return make_error(Errc::invalid_input,
                          "attribute `" + ac.name + "`: `from` must be a scalar");
      }
      ac.from = *from;
    }
    c.attribute_changes.push_back(std::move(ac));
  }
  if (auto* chain = o.if_contains("loop_detection"); chain && !chain->is_null()) {
    if (!chain->is_array()) {
      return make_error(Errc::invalid_input, "field `loop_detection` must be an array of strings");
    }
    for (const auto& s : chain->get_array()) {
      if (!s.is_string()) {
        return make_error(Errc::invalid_input,
                          "field `loop_detection` must be an array of strings");
      }
      c.loop_detection.emplace_back(s.get_string());
    }
  }
  return c;
}

namespace {

// `"key":"value"` members, comma-separated (and after a comma unless `first`).
void append_string_fields(
    std::string& out, std::initializer_list<std::pair<std::string_view, std::string_view>> fields,
    bool first = false) {
  for (const auto& [key, value] : fields) {
    if (!first) out.push_back(',');
    first = false;
    append_json_string(out, key);
    out.push_back(':');
    append_json_string(out, value);
  }
}

}  // namespace

std::string change_id(std::string_view node, std::string_view hex24) {
  std::string id;
  id.reserve(node.size() + 1 + hex24.size());
  id.append(node).append(1, '-').append(hex24);
  return id;
}

std::string_view origin_of_change_id(std::string_view id) {
  constexpr std::size_t kDigits = 24;
  if (id.size() < kDigits + 2 || id[id.size() - kDigits - 1] != '-') return {};
  for (char c : id.substr(id.size() - kDigits)) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return {};
  }
  return id.substr(0, id.size() - kDigits - 1);
}

std::string change_signature(const Change& c, std::string_view sending_node) {
  // The canonical JSON of {type, entity, entity_reference, operation, timestamp, sender,
  // attributes: {name: to}}, written directly: keys in byte order, attributes sorted by name (the
  // last of equal names wins, as it would in an object).
  std::vector<const AttributeChange*> attrs;
  attrs.reserve(c.attribute_changes.size());
  for (const auto& a : c.attribute_changes) attrs.push_back(&a);
  std::stable_sort(
      attrs.begin(), attrs.end(),
      [](const AttributeChange* a, const AttributeChange* b) { return a->name < b->name; });
  std::string text;
  text.reserve(256);
  text += "{\"attributes\":{";
  bool first = true;
  for (std::size_t i = 0; i < attrs.size(); ++i) {
    if (i + 1 < attrs.size() && attrs[i + 1]->name == attrs[i]->name) continue;
    if (!first) text.push_back(',');
    first = false;
    append_json_string(text, attrs[i]->name);
    text.push_back(':');
    append_canonical_json(text, attrs[i]->to);
  }
  text += "}";
  append_string_fields(text, {{"entity", c.entity},
                              {"entity_reference", c.entity_reference},
                              {"operation", to_string(c.operation)},
                              {"sender", sending_node},
                              {"timestamp", c.timestamp},
                              {"type", c.type}});
  text.push_back('}');
  return base64_encode(sha512(text));
}

void append_json(std::string& out, const Change& c) {
  out += "{";
  append_string_fields(out,
                       {{"id", c.id},
                        {"type", c.type},
                        {"timestamp", c.timestamp},
                        {"entity", c.entity},
                        {"entity_reference", c.entity_reference},
                        {"operation", to_string(c.operation)}},
                       true);
  out += ",\"context\":{";
  bool first = true;
  for (const auto& [k, v] : c.context) {
    if (!first) out.push_back(',');
    first = false;
    append_json_string(out, k);
    out.push_back(':');
    append_json_string(out, v);
  }
  out += "},\"attribute_changes\":[";
  first = true;
  for (const auto& a : c.attribute_changes) {
    if (!first) out.push_back(',');
    first = false;
    out += "{\"name\":";
    append_json_string(out, a.name);
    if (a.from) {
      out += ",\"from\":";
      append_json(out, *a.from);
    }
    out += ",\"to\":";
    append_json(out, a.to);
    out.push_back('}');
  }
  out += "],\"loop_detection\":[";
  first = true;
  for (const auto& s : c.loop_detection) {
    if (!first) out.push_back(',');
    first = false;
    append_json_string(out, s);
  }
  out += "]}";
}

json::value to_json(const Message& m) {
  json::array changes;
  for (const auto& c : m.changes) changes.push_back(to_json(c));
  return json::object{
      {"id", m.id},
      {"payload",
       json::object{{"sender", m.sender}, {"sent", m.sent}, {"changes", std::move(changes)}}}};
}

Result<ParsedMessage> parse_message(std::string_view body) {
  boost::system::error_code ec;
  json::value v = json::parse(body, ec);
  if (ec) return make_error(Errc::invalid_input, "body is not valid JSON: " + ec.message());
  if (!v.is_object()) return make_error(Errc::invalid_input, "body must be a JSON object");
  const auto& o = v.get_object();
  ParsedMessage m;
  auto id = required_string(o, "id");
  if (!id) return id.error();
  m.id = std::move(*id);
  auto* payload = o.if_contains("payload");
  if (!payload || !payload->is_object()) {
    return make_error(Errc::invalid_input, "field `payload` must be an object");
  }
  const auto& p = payload->get_object();
  auto sender = required_string(p, "sender");
  if (!sender) return sender.error();
  m.sender = std::move(*sender);
  if (auto* sent = p.if_contains("sent"); sent && sent->is_string()) m.sent = sent->get_string();
  auto* changes = p.if_contains("changes");
  if (!changes || !changes->is_array()) {
    return make_error(Errc::invalid_input, "field `payload.changes` must be an array");
  }
  for (const auto& c : changes->get_array()) m.raw_changes.push_back(c);
  return m;
}

std::string utc_iso(std::int64_t unix_seconds) {
  // Capture stamps thousands of changes per second with the same second: format it once.
  static thread_local std::int64_t last = std::numeric_limits<std::int64_t>::min();
  static thread_local std::string last_text;
  if (unix_seconds == last) return last_text;
  std::time_t t = static_cast<std::time_t>(unix_seconds);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  last = unix_seconds;
  last_text = buf;
  return last_text;
}

std::int64_t unix_now() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string utc_now_iso() {
  return utc_iso(unix_now());
}

}  // namespace civishare
