#include "agent/metrics.h"

#include <cstdio>

namespace civishare {
namespace json = boost::json;

namespace {
std::string number(double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.6g", v);
  return buf;
}
std::string escape(std::string_view s) {
  std::string out;
  for (char c : s) {
    if (c == '"' || c == '\\') out.push_back('\\');
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    out.push_back(c);
  }
  return out;
}
void family(std::string& out, const char* name, const char* type, const char* help) {
  out += std::string("# HELP ") + name + " " + help + "\n# TYPE " + name + " " + type + "\n";
}
}  // namespace

void Histogram::observe(double value) {
  std::lock_guard lock(mu_);
  std::size_t i = 0;
  while (i < bounds_.size() && value > bounds_[i]) ++i;
  ++counts_[i];
  sum_ += value;
  ++count_;
}

std::string Histogram::render(const std::string& name, const std::string& help) const {
  std::lock_guard lock(mu_);
  std::string out = "# HELP " + name + " " + help + "\n# TYPE " + name + " histogram\n";
  std::uint64_t cumulative = 0;
  for (std::size_t i = 0; i < bounds_.size(); ++i) {
    cumulative += counts_[i];
    out += name + "_bucket{le=\"" + number(bounds_[i]) + "\"} " + std::to_string(cumulative) + "\n";
  }
  cumulative += counts_.back();
  out += name + "_bucket{le=\"+Inf\"} " + std::to_string(cumulative) + "\n";
  out += name + "_sum " + number(sum_) + "\n" + name + "_count " + std::to_string(count_) + "\n";
  return out;
}

void ComponentHealth::error(std::int64_t now, const std::string& message) {
  std::lock_guard lock(mu_);
  last_error_ = message;
  last_error_at = now;
}

std::string ComponentHealth::last_error() const {
  std::lock_guard lock(mu_);
  return last_error_;
}

Metrics::Metrics(const std::vector<std::string>& peer_names) {
  for (const auto& p : peer_names) peers[p] = std::make_unique<Peer>();
}

std::string Metrics::render(const json::object& status) const {
  std::string out;
  auto counter = [&](const char* name, const char* help, std::uint64_t v) {
    family(out, name, "counter", help);
    out += std::string(name) + " " + std::to_string(v) + "\n";
  };
  counter("civishare_captured_changes_total", "Change records captured into the outbox.", captured);
  counter("civishare_capture_errors_total", "Failed capture polls.", capture_errors);
  counter("civishare_applied_changes_total", "Received changes written to the database.", applied);
  counter("civishare_unchanged_changes_total", "Received changes that changed nothing.", unchanged);
  counter("civishare_refused_changes_total", "Received changes that could not be applied here.",
          refused);
  counter("civishare_apply_errors_total", "Apply steps that failed on the database (retried).",
          apply_errors);
  family(out, "civishare_sent_changes_total", "counter", "Changes delivered to a peer.");
  for (const auto& [name, p] : peers) {
    out += "civishare_sent_changes_total{peer=\"" + escape(name) + "\"} " +
           std::to_string(p->sent) + "\n";
  }
  family(out, "civishare_send_errors_total", "counter", "Failed deliveries to a peer (retried).");
  for (const auto& [name, p] : peers) {
    out += "civishare_send_errors_total{peer=\"" + escape(name) + "\"} " +
           std::to_string(p->send_errors) + "\n";
  }
  auto gauge_value = [](const json::object& o, const char* key) -> std::string {
    auto* v = o.if_contains(key);
    if (!v || v->is_null()) return "";
    if (v->is_int64()) return std::to_string(v->get_int64());
    if (v->is_uint64()) return std::to_string(v->get_uint64());
    if (v->is_double()) return number(v->get_double());
    return "";
  };
  auto gauge = [&](const char* name, const char* help, const std::string& v) {
    if (v.empty()) return;
    family(out, name, "gauge", help);
    out += std::string(name) + " " + v + "\n";
  };
  gauge("civishare_capture_lag_seconds", "Seconds between the capture cursor and now.",
        gauge_value(status, "capture_lag_s"));
  gauge("civishare_inbox_changes", "Received changes waiting to be applied.",
        gauge_value(status, "inbox"));
  gauge("civishare_loops_dropped_total",
        "Received changes dropped because they were processed before.",
        gauge_value(status, "loops_dropped"));
  if (auto* peers_v = status.if_contains("peers"); peers_v && peers_v->is_array()) {
    family(out, "civishare_peer_queued_changes", "gauge",
           "Outbox records a peer still has to get.");
    for (const auto& p : peers_v->get_array()) {
      out += "civishare_peer_queued_changes{peer=\"" + escape(p.at("name").as_string()) + "\"} " +
             gauge_value(p.as_object(), "queued") + "\n";
    }
    family(out, "civishare_peer_oldest_queued_age_seconds", "gauge",
           "Age of the oldest record a peer still has to get.");
    for (const auto& p : peers_v->get_array()) {
      out += "civishare_peer_oldest_queued_age_seconds{peer=\"" + escape(p.at("name").as_string()) +
             "\"} " + gauge_value(p.as_object(), "oldest_queued_age_s") + "\n";
    }
  }
  out += capture_to_send.render("civishare_capture_to_send_seconds",
                                "Seconds from capture to delivery at a peer.");
  out += receive_to_apply.render("civishare_receive_to_apply_seconds",
                                 "Seconds from receipt to the applier's commit.");
  return out;
}

}  // namespace civishare
