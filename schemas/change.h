// The change record: one change to one CiviCRM entity, as it travels between nodes.
// Field names match the wire format in docs/ARCHITECTURE.md (contract).
#pragma once

#include <boost/json.hpp>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "schemas/result.h"

namespace civishare {

enum class Operation { create, update, remove };  // wire: "create", "update", "delete"

const char* to_string(Operation op);
std::optional<Operation> operation_from_string(std::string_view s);

struct AttributeChange {
  std::string name;  // column name, or "<column>:<name-field>" when translated
  std::optional<boost::json::value> from;  // absent for create; null = was NULL
  boost::json::value to;                   // null = becomes NULL

  bool operator==(const AttributeChange&) const = default;
};

// Attribute values by wire name, each as its JSON text (`"Karl"`, `12`, `true`, `null`): capture
// keeps the last image of an entity this way, compares texts, and parses only what changed.
using WireValues = std::vector<std::pair<std::string, std::string>>;

struct Change {
  std::string id;                // unique id of this change on its origin node
  std::string type;              // e.g. civishare.change.contact.base
  std::string timestamp;         // origin time, ISO 8601 UTC, "2026-11-28T09:59:58Z"
  std::string entity;            // "Contact", "Email", ...
  std::string entity_reference;  // global reference "<origin node>-<origin id>"
  Operation operation = Operation::update;
  std::map<std::string, std::string> context;  // e.g. contact_reference for emails
  std::vector<AttributeChange> attribute_changes;
  std::vector<std::string> loop_detection;  // signature chain, oldest first

  bool operator==(const Change&) const = default;

  const AttributeChange* find_attribute(std::string_view name) const;
};

boost::json::value to_json(const Change& change);
Result<Change> change_from_json(const boost::json::value& json);
// Appends the text boost::json::serialize(to_json(change)) gives, without building the tree.
void append_json(std::string& out, const Change& change);

// The sha512 signature (base64) a node adds to loop_detection when it emits `change`.
// Covers type, entity, entity_reference, operation, the attribute `to` values, the origin
// timestamp and the sending node, as canonical JSON.
std::string change_signature(const Change& change, std::string_view sending_node);

// The id a node gives a change it captures: "<node>-" and 24 hex digits of the row's hash. The id
// travels unchanged along a chain (a node that applies a change and captures the echo carries the
// id on), so it names the change's origin: a change whose origin is this node came back around a
// loop. origin_of_change_id() gives that node, or "" for an id of another form.
std::string change_id(std::string_view node, std::string_view hex24);
std::string_view origin_of_change_id(std::string_view id);

// One HTTP POST body: {"id": ..., "payload": {"sender", "sent", "changes": [...]}}.
struct Message {
  std::string id;
  std::string sender;
  std::string sent;
  std::vector<Change> changes;
};

boost::json::value to_json(const Message& message);
// Parses the envelope only; the receiver validates each change on its own, so one bad change
// is refused without refusing the batch.
struct ParsedMessage {
  std::string id;
  std::string sender;
  std::string sent;
  std::vector<boost::json::value> raw_changes;  // each validated separately by the receiver
};
Result<ParsedMessage> parse_message(std::string_view body);

// Seconds since the epoch, from the system clock.
std::int64_t unix_now();
// Current UTC time as ISO 8601 with a trailing Z, second resolution.
std::string utc_now_iso();
std::string utc_iso(std::int64_t unix_seconds);

}  // namespace civishare
