#include "capture/binlog_source.h"

#include <charconv>
#include <chrono>
#include <future>
#include <unordered_map>

#include "capture/binlog_rows.h"
#include "capture/binlog_stream.h"
#include "capture/change_mapper.h"
#include "schemas/log.h"

namespace civishare {

namespace {

using Clock = std::chrono::steady_clock;

constexpr const char* kPartialName =
    "binlog.partial";  // "<gtid>:<rows done>" of a held transaction
constexpr std::uint8_t kQuery = 2;
constexpr std::uint8_t kXid = 16;

// The action of a rows event, as the log tables name it.
const char* action_of(std::uint8_t type) {
  switch (type) {
    case binlog::kWriteRowsV1:
    case binlog::kWriteRowsCompressedV1:
      return "Insert";
    case binlog::kUpdateRowsV1:
    case binlog::kUpdateRowsCompressedV1:
      return "Update";
    default:
      return "Delete";
  }
}

// Schema and table of a TABLE_MAP body without decoding its columns (tables we do not capture
// may have columns the decoder does not read).
bool peek_table(std::string_view body, std::string& schema, std::string& table) {
  if (body.size() < 9) return false;
  std::size_t at = 8;
  const std::size_t slen = static_cast<unsigned char>(body[at++]);
  if (at + slen + 2 > body.size()) return false;
  schema.assign(body.substr(at, slen));
  at += slen + 1;
  const std::size_t tlen = static_cast<unsigned char>(body[at++]);
  if (at + tlen > body.size()) return false;
  table.assign(body.substr(at, tlen));
  return true;
}

// The SQL text of a QUERY event: post-header (13 bytes), status variables, db name and NUL.
std::string_view query_text(std::string_view body) {
  if (body.size() < 13) return {};
  const std::size_t db_len = static_cast<unsigned char>(body[8]);
  const std::size_t status_len =
      static_cast<unsigned char>(body[11]) | (static_cast<std::size_t>(body[12]) << 8);
  const std::size_t at = 13 + status_len + db_len + 1;
  return at <= body.size() ? body.substr(at) : std::string_view();
}

struct TableInfo {
  binlog::TableMap map;
  ColumnIndex columns;
  const TypeDefinition* type = nullptr;  // a captured type; nullptr for civishare_applied
};

}  // namespace

// One read of the binlog: the stream and where it is inside a transaction.
struct Reader {
  std::unique_ptr<binlog::Stream> stream;
  std::unordered_map<std::uint64_t, TableInfo> tables;  // table_id -> map, this transaction
  bool in_trx = false;
  bool standalone = false;  // a DDL: its transaction is the next QUERY event
  std::string trx_gtid;
  std::int64_t trx_ts = 0;
  std::uint64_t row_no = 0;     // rows of captured tables read in this transaction
  std::uint64_t skip_rows = 0;  // of them, committed before a crash (held)
  std::optional<Echo> echo;     // the change our applier is writing, per civishare_applied
  std::string position;         // GTID position after the last complete transaction
  std::string partial_gtid;     // the held transaction to resume, and its rows done
  std::uint64_t partial_rows = 0;
};

// What one pass over events produces.
struct Pass {
  ChangeMapper::Images images;
  std::vector<OutboxEntry> records;
  std::size_t pending_bytes = 0;  // estimated memory of records and images since the last commit
  PollResult result;
  // replay: images come from the before-images, and transactions after `to` are skipped
  bool replay = false;
  std::map<std::uint32_t, std::uint64_t> to;
  bool skip_trx = false;
  const SourceRow* before = nullptr;  // the before-image of the row being mapped
};

struct BinlogSource::Impl {
  BinlogOptions o;
  db::ConnectionOptions connection;
  db::Connection lookup;
  Store& store;
  ChangeMapper mapper;
  std::map<std::string, const TypeDefinition*, std::less<>> by_table;
  std::unique_ptr<Reader> live;
  std::string committed;        // the cursor's GTID position as stored
  std::int64_t time_noted = 0;  // when kCursorTimeName was last written at the head
  bool had_partial = true;      // a partial marker may be stored (cleared by the next commit)
  // The batch committed on the mapper's commit thread while the next one is read (one at a time, in
  // order), and what the source notes once it is committed.
  struct InFlight {
    std::future<Status> done;
    std::string position;
    bool in_trx = false;
    bool at_head = false;
    std::int64_t now = 0;
  };
  std::optional<InFlight> in_flight;

  Impl(BinlogOptions options, db::ConnectionOptions conn, db::Connection looker, Store& s)
      : o(std::move(options)),
        connection(std::move(conn)),
        lookup(std::move(looker)),
        store(s),
        mapper(mapper_options(), lookup, s) {
    for (const auto* t : o.types) by_table[t->table] = t;
  }

  MapperOptions mapper_options() {
    MapperOptions m;
    m.node = o.node;
    m.registry = o.registry;
    m.ours = [this](const SourceRow&) { return current && current->echo; };
    m.link = [this](const SourceRow&) -> Result<std::optional<Echo>> {
      return current ? current->echo : std::nullopt;
    };
    return m;
  }
  Reader* current = nullptr;  // the reader whose rows are being mapped

  Result<std::unique_ptr<Reader>> open_reader(const std::string& position, bool follow) {
    binlog::StreamOptions so;
    so.connection = connection;
    so.server_id = o.server_id;
    so.gtid_position = position;
    so.blocking = follow;
    so.heartbeat_ms = follow ? o.heartbeat_ms : 0;
    auto stream = binlog::Stream::open(so);
    if (!stream) return stream.error();
    auto r = std::make_unique<Reader>();
    r->stream = std::move(*stream);
    r->position = position;
    return r;
  }

  Status begin_transaction(Reader& r, const binlog::FileEvent& ev, Pass& pass) {
    r.in_trx = true;
    r.trx_gtid = r.stream->last_gtid();
    r.trx_ts = ev.timestamp;
    r.row_no = 0;
    r.echo.reset();
    r.tables.clear();
    r.standalone = ev.body.size() >= 13 && (static_cast<unsigned char>(ev.body[12]) & 1) != 0;
    r.skip_rows = r.trx_gtid == r.partial_gtid ? r.partial_rows : 0;
    if (pass.replay) {
      pass.skip_trx = true;
      auto parsed = binlog::parse_gtid_position(r.trx_gtid);
      if (!parsed) return parsed.error();
      for (const auto& [domain, seq] : *parsed) {
        auto it = pass.to.find(domain);
        pass.skip_trx = it == pass.to.end() || seq > it->second;
      }
    }
    return ok_status();
  }

  void end_transaction(Reader& r, Pass& pass) {
    r.in_trx = false;
    r.position = r.stream->gtid_position();
    r.tables.clear();
    r.echo.reset();
    if (r.trx_gtid == r.partial_gtid) r.partial_gtid.clear();
    pass.result.watermark = r.trx_ts;
  }

  Status table_map(Reader& r, const binlog::FileEvent& ev) {
    std::string schema, table;
    if (!peek_table(ev.body, schema, table) || schema != o.schema) return ok_status();
    auto it = by_table.find(table);
    const bool applied = table == "civishare_applied";
    if (it == by_table.end() && !applied) return ok_status();
    auto map = binlog::parse_table_map(ev.body);
    if (!map) {
      return make_error(map.error().code,
                        "binlog table map of " + schema + "." + table + ": " + map.error().message);
    }
    TableInfo info;
    std::vector<std::string> names;
    for (const auto& c : map->columns) names.push_back(c.name);
    info.columns = ColumnIndex(names);
    info.type = applied ? nullptr : it->second;
    const auto id = map->table_id;
    info.map = std::move(*map);
    r.tables[id] = std::move(info);
    return ok_status();
  }

  Status rows(Reader& r, const binlog::FileEvent& ev, Pass& pass) {
    auto id = binlog::rows_table_id(ev.body);
    if (!id) return id.error();
    auto it = r.tables.find(*id);
    if (it == r.tables.end()) return ok_status();  // a table we do not capture
    const TableInfo& info = it->second;
    auto parsed = binlog::parse_rows(ev.type, ev.body, info.map);
    if (!parsed) {
      return make_error(parsed.error().code,
                        "binlog rows of " + info.map.table + ": " + parsed.error().message);
    }
    const char* action = action_of(ev.type);
    const bool update = binlog::is_update_rows_event(ev.type);
    if (!info.type) {  // civishare_applied: the rows after an applied one are its echo
      if (std::string_view(action) != "Insert") return ok_status();
      for (const auto& row : parsed->rows) {
        auto get = [&](std::string_view c) { return cell(info.columns, row, c); };
        r.echo = get("outcome").value_or("") == "applied"
                     ? applied_echo(get("change_id"), get("change_timestamp"), get("came_from"),
                                    get("chain"))
                     : std::nullopt;
      }
      return ok_status();
    }
    for (std::size_t i = 0; i < parsed->rows.size(); i += update ? 2 : 1) {
      ++r.row_no;
      ++pass.result.rows;
      if (r.row_no <= r.skip_rows || pass.skip_trx) continue;
      if (update && i + 1 >= parsed->rows.size()) {
        return make_error(Errc::invalid_input,
                          "binlog update of " + info.map.table + " without its after-image");
      }
      SourceRow row;
      row.type = info.type;
      row.ts = ev.timestamp;
      row.action = action;
      row.columns = &info.columns;
      row.row = &parsed->rows[update ? i + 1 : i];
      row.salt = r.trx_gtid + "/" + std::to_string(r.row_no);
      SourceRow before;  // replay takes `from` values from it; live capture from the store
      if (pass.replay && (update || row.action == "Delete")) {
        before = row;
        before.row = &parsed->rows[i];
        pass.before = &before;
      }
      current = &r;
      // A record and an image of the row in JSON, plus the containers around them.
      for (const auto& c : *row.row) pass.pending_bytes += 2 * (c ? c->size() : 0) + 48;
      pass.pending_bytes += 1024;
      auto s = mapper.map_row(row, pass.images, pass.records);
      current = nullptr;
      pass.before = nullptr;
      if (!s) return s;
    }
    return ok_status();
  }

  Status on_event(Reader& r, const binlog::FileEvent& ev, Pass& pass) {
    if (ev.type == binlog::kGtid) return begin_transaction(r, ev, pass);
    if (!r.in_trx) return ok_status();  // format description, rotate, binlog checkpoint, ...
    if (ev.type == binlog::kTableMap) return table_map(r, ev);
    if (binlog::is_rows_event(ev.type)) return rows(r, ev, pass);
    if (ev.type == kXid) {
      end_transaction(r, pass);
    } else if (ev.type == kQuery) {
      const auto q = query_text(ev.body);
      if (r.standalone || q == "COMMIT" || q == "ROLLBACK") end_transaction(r, pass);
    }
    return ok_status();
  }

  // Waits for the batch in flight, if any, and notes its position once it is committed (not if
  // it failed: the source then goes on from what is committed).
  Status settle() {
    if (!in_flight) return ok_status();
    InFlight f = std::move(*in_flight);
    in_flight.reset();
    if (auto s = f.done.get(); !s) return s;
    committed = f.position;
    had_partial = f.in_trx;
    if (f.at_head) time_noted = f.now;
    return ok_status();
  }

  // Commits what the pass has since the last commit with the reader's position (held while
  // inside a transaction), on the mapper's commit thread once the previous batch is committed; its
  // images stay readable to the mapper (Images::in_flight) meanwhile. settle() waits for it.
  Status commit(Reader& r, Pass& pass, bool at_head) {
    if (auto s = settle(); !s) return s;
    CaptureBatch batch;
    if (auto s = mapper.add_primary_emails(pass.records); !s) return s;
    pass.result.records += pass.records.size();
    batch.records = std::move(pass.records);
    pass.records.clear();
    pass.pending_bytes = 0;
    if (r.in_trx) {
      batch.hold = true;
      batch.more_cursors.emplace_back(kPartialName, r.trx_gtid + ":" + std::to_string(r.row_no));
    } else {
      batch.more_cursors.emplace_back(kPartialName, "");
    }
    if (r.position != committed) {
      batch.cursor_name = kCursorName;
      batch.cursor = format_cursor(r.position);
    }
    // When the cursor was current (for the lag and the retention headroom): at the head that is
    // now, noted at most every 10 s while idle.
    const std::int64_t now = unix_now();
    const bool note_head = at_head && now - time_noted >= 10;
    if (r.position != committed || note_head) {
      const std::int64_t at = at_head ? now : pass.result.watermark;
      if (at > 0) batch.more_cursors.emplace_back(kCursorTimeName, std::to_string(at));
    }
    if (batch.records.empty() && batch.cursor_name.empty() && !r.in_trx && !note_head &&
        !had_partial && pass.images.pending.empty()) {
      return ok_status();
    }
    in_flight = InFlight{pass.images.commit_in_background(store, std::move(batch)), r.position,
                         r.in_trx, at_head, now};
    return ok_status();
  }

  Error explain(const Error& e) const {
    if (e.code != Errc::position_lost) return e;
    return make_error(
        Errc::position_lost,
        "the binlog at cursor " + format_cursor(committed) +
            " is no longer on the server (purged; " + e.message +
            "). The changes made since cannot be read from the binlog, and capture will not skip "
            "them. Way out: stop the agent and run `civishare snapshot --reset-cursor` (shares "
            "every captured entity that differs from what was last captured, then captures from "
            "the current binlog position), or, if CiviCRM's log tables cover the gap, set "
            "capture.source = \"log_tables\" and catch up with `civishare run --once`");
  }

  Result<std::string> server_position() {
    auto pos = lookup.scalar("SELECT @@global.gtid_binlog_pos");
    if (!pos) return pos.error();
    return pos->value_or("");
  }

  Status store_cursor(const std::string& position) {
    CaptureBatch batch;
    batch.cursor_name = kCursorName;
    batch.cursor = format_cursor(position);
    batch.more_cursors.emplace_back(kPartialName, "");
    batch.more_cursors.emplace_back(kCursorTimeName, std::to_string(unix_now()));
    auto expire = lookup.scalar("SELECT @@global.binlog_expire_logs_seconds");
    if (!expire) {
      expire = lookup.scalar("SELECT @@global.expire_logs_days * 86400");
      if (!expire) return expire.error();
    }
    batch.more_cursors.emplace_back(kExpiryName, expire->value_or("0"));
    if (auto s = store.commit_capture(std::move(batch)); !s) return s;
    committed = position;
    return ok_status();
  }
};

BinlogSource::BinlogSource(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
BinlogSource::~BinlogSource() = default;

Result<std::unique_ptr<BinlogSource>> BinlogSource::open(BinlogOptions options,
                                                         const db::ConnectionOptions& connection,
                                                         Store& store) {
  if (options.server_id == 0) {
    return make_error(Errc::invalid_config,
                      "capture.server_id must be set (unique among the server's replicas, not 0)");
  }
  auto looker = db::Connection::open(connection);
  if (!looker) return looker.error();
  auto problems = binlog::check_server(*looker);
  if (!problems) return problems.error();
  if (!problems->empty()) {
    std::string all;
    for (const auto& p : *problems) all += (all.empty() ? "" : "; ") + p;
    return make_error(Errc::invalid_config, "the binlog source cannot run: " + all);
  }
  if (options.schema.empty()) {
    auto db = looker->scalar("SELECT DATABASE()");
    if (!db) return db.error();
    options.schema = db->value_or("");
  }
  return std::unique_ptr<BinlogSource>(new BinlogSource(
      std::make_unique<Impl>(std::move(options), connection, std::move(*looker), store)));
}

std::string BinlogSource::format_cursor(const std::string& gtid_position) {
  return "gtid:" + gtid_position;
}

Result<std::string> BinlogSource::parse_cursor(const std::string& cursor) {
  if (cursor.rfind("gtid:", 0) == 0) {
    std::string position = cursor.substr(5);
    if (binlog::parse_gtid_position(position)) return position;
  }
  return make_error(Errc::invalid_input,
                    "`" + cursor +
                        "` is not a binlog cursor (expected "
                        "gtid:<domain-server-sequence,...>, e.g. gtid:0-1-42)");
}

Result<std::string> BinlogSource::ensure_cursor() {
  auto stored = impl_->store.cursor(kCursorName);
  if (!stored) return stored.error();
  if (*stored) {
    auto position = parse_cursor(**stored);
    if (!position) return position.error();
    impl_->committed = *position;
    return **stored;
  }
  auto position = impl_->server_position();
  if (!position) return position.error();
  if (auto s = impl_->store_cursor(*position); !s) return s.error();
  return format_cursor(*position);
}

Result<std::string> BinlogSource::reset_cursor() {
  impl_->live.reset();
  auto position = impl_->server_position();
  if (!position) return position.error();
  if (auto s = impl_->store_cursor(*position); !s) return s.error();
  log_info("capture", "binlog cursor moved to the server's position " + format_cursor(*position));
  return format_cursor(*position);
}

Result<PollResult> BinlogSource::poll() {
  auto& impl = *impl_;
  if (!impl.live) {
    auto cursor = ensure_cursor();
    if (!cursor) return cursor.error();
    auto reader = impl.open_reader(impl.committed, impl.o.follow);
    if (!reader) return reader.error();
    auto partial = impl.store.cursor(kPartialName);
    if (!partial) return partial.error();
    if (*partial && !(*partial)->empty()) {  // "<gtid>:<rows done>", written by commit()
      const std::string& p = **partial;
      const auto colon = p.rfind(':');
      std::uint64_t rows = 0;
      auto [end, ec] = colon == std::string::npos
                           ? std::from_chars_result{p.data(), std::errc::invalid_argument}
                           : std::from_chars(p.data() + colon + 1, p.data() + p.size(), rows);
      if (ec != std::errc() || end != p.data() + p.size()) {
        return make_error(Errc::storage, "the store's binlog.partial marker `" + p +
                                             "` is not <gtid>:<rows>; the store is damaged");
      }
      (*reader)->partial_gtid = p.substr(0, colon);
      (*reader)->partial_rows = rows;
    }
    impl.live = std::move(*reader);
  }
  Reader& r = *impl.live;
  if (auto s = impl.mapper.refresh_unmapped_tables(impl.o.types); !s) return s.error();
  Pass pass;
  pass.images = impl.mapper.store_images();
  const auto deadline = Clock::now() + std::chrono::milliseconds(impl.o.max_poll_ms);
  auto fail = [&](const Error& e) -> Result<PollResult> {
    (void)impl.settle();  // its own failure, if any, leaves the cursor where it was
    impl.live.reset();    // what was read and not committed is read again from the cursor
    return impl.explain(e);
  };
  for (;;) {
    auto ev = r.stream->next();
    if (!ev) return fail(ev.error());
    if (!*ev) {
      pass.result.at_head = !r.in_trx;
      break;
    }
    if (auto s = impl.on_event(r, **ev, pass); !s) return fail(s.error());
    if (pass.records.size() >= impl.o.chunk_records ||
        pass.pending_bytes >= impl.o.max_pending_bytes) {
      if (auto s = impl.commit(r, pass, false); !s) return fail(s.error());
    }
    if (!r.in_trx && impl.o.follow && Clock::now() >= deadline) break;
  }
  if (auto s = impl.commit(r, pass, pass.result.at_head); !s) return fail(s.error());
  if (auto s = impl.settle(); !s) return fail(s.error());
  // A non-blocking dump ends with the binlog: the next poll starts a new one from the cursor.
  if (pass.result.at_head && !impl.o.follow) impl.live.reset();
  if (pass.result.records) {
    log_info("capture", "captured " + std::to_string(pass.result.records) + " change(s) from " +
                            std::to_string(pass.result.rows) + " binlog row(s)");
  }
  if (pass.result.at_head) pass.result.watermark = unix_now();
  return pass.result;
}

Result<std::vector<Change>> BinlogSource::replay(const std::string& from, const std::string& to,
                                                 bool dry_run) {
  auto& impl = *impl_;
  auto from_pos = parse_cursor(from);
  if (!from_pos) return from_pos.error();
  std::string to_text = to;
  if (to_text.empty()) {
    auto current = ensure_cursor();
    if (!current) return current.error();
    to_text = *current;
  }
  auto to_pos = parse_cursor(to_text);
  if (!to_pos) return to_pos.error();
  Pass pass;
  pass.replay = true;
  pass.to = *binlog::parse_gtid_position(*to_pos);
  // `from` values as the binlog had them: the before-image of the row itself.
  pass.images.load = [&](const TypeDefinition& def, const std::string& id, const std::string&,
                         std::string& out) -> Result<bool> {
    if (!pass.before || pass.before->type != &def || pass.before->get(def.key) != id) return false;
    auto none = ChangeMapper::Images::none();
    auto s = impl.mapper.image_of(*pass.before, none, id, impl.current && impl.current->echo, out);
    if (!s) return s.error();
    return true;
  };
  auto reader = impl.open_reader(*from_pos, false);
  if (!reader) return impl.explain(reader.error());
  for (;;) {
    auto ev = (*reader)->stream->next();
    if (!ev) return impl.explain(ev.error());
    if (!*ev) break;
    if (auto s = impl.on_event(**reader, **ev, pass); !s) return s.error();
  }
  if (auto s = impl.mapper.add_primary_emails(pass.records); !s) return s.error();
  std::vector<Change> changes;
  for (const auto& r : pass.records) changes.push_back(r.change);
  if (!dry_run && !pass.records.empty()) {
    CaptureBatch batch;
    batch.records = std::move(pass.records);
    if (auto s = impl.store.commit_capture(std::move(batch)); !s) return s.error();
  }
  return changes;
}

Result<std::size_t> BinlogSource::snapshot(const std::vector<const TypeDefinition*>& types,
                                           const std::string& only_to) {
  return impl_->mapper.snapshot(impl_->lookup, types, only_to);
}

}  // namespace civishare
