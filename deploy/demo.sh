#!/usr/bin/env bash
# The CiviShare demo: two throw-away MariaDB instances with the CiviCRM schema (their reference
# ids differ, as real sites' do), two linked agents, a contact created and edited on the first
# instance and shown arriving on the second. Stops and deletes everything it started.
#
#   deploy/demo.sh [path/to/civishare]
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bin="${1:-$root/build/agent/civishare}"
[ -x "$bin" ] || { echo "no civishare binary at $bin: run deploy/setup.sh first" >&2; exit 1; }
work="$(mktemp -d /tmp/civishare-demo-XXXXXX)"
pids=()

cleanup() {
  # The servers are started inside $(...), so they are not in `pids`: each left its pid in a file.
  local servers=() f pid
  for f in "$work"/*/server.pid; do [ -f "$f" ] && servers+=("$(cat "$f")"); done
  for pid in "${pids[@]}" "${servers[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  for pid in "${servers[@]}"; do  # not our children: wait until they are gone
    for _ in $(seq 1 300); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  done
  rm -rf "$work"
}
trap cleanup EXIT

free_port() {
  local p
  while :; do
    p=$((20000 + RANDOM % 20000))
    (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null || { echo "$p"; return; }
  done
}

user_flag=()
if [ "$(id -u)" -eq 0 ]; then user_flag=(--user=root); fi

start_mariadb() {  # name offset -> prints port
  local name=$1 offset=$2 dir="$work/$1" port
  port=$(free_port)
  mkdir -p "$dir"
  mariadb-install-db --no-defaults --datadir="$dir/data" "${user_flag[@]}" \
    --auth-root-authentication-method=normal --skip-test-db >"$dir/install.log" 2>&1
  mariadbd --no-defaults --datadir="$dir/data" --socket="$dir/mysqld.sock" --port="$port" \
    --bind-address=127.0.0.1 --log-error="$dir/mariadb.log" --pid-file="$dir/mysqld.pid" \
    --log-bin="$dir/data/binlog" --binlog-format=ROW --binlog-row-metadata=FULL --server-id=1 \
    --innodb-buffer-pool-size=64M --log-bin-trust-function-creators=1 \
    --character-set-server=utf8mb4 --collation-server=utf8mb4_unicode_ci "${user_flag[@]}" \
    >>"$dir/mariadb.log" 2>&1 &
  echo $! >"$dir/server.pid"  # for cleanup: this function runs in a subshell
  for _ in $(seq 1 300); do
    mariadb --no-defaults -uroot --socket="$dir/mysqld.sock" -e "SELECT 1" >/dev/null 2>&1 && break
    sleep 0.1
  done
  mariadb --no-defaults -uroot --socket="$dir/mysqld.sock" <<SQL
CREATE DATABASE civicrm CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;
USE civicrm;
SET @civishare_id_offset = $offset;
SOURCE $root/tests/fixtures/reference_data.sql;
SOURCE $root/tests/fixtures/civicrm_schema.sql;
CREATE USER 'civishare'@'127.0.0.1' IDENTIFIED BY 'civishare';
GRANT ALL ON civicrm.* TO 'civishare'@'127.0.0.1';
GRANT PROCESS ON *.* TO 'civishare'@'127.0.0.1';
-- Like a real site, each instance already has contacts of its own, so ids differ.
ALTER TABLE civicrm_contact AUTO_INCREMENT = $((offset * 4 + 100));
SQL
  echo "$port"
}

sql() {  # name, statement
  mariadb --no-defaults -uroot --socket="$work/$1/mysqld.sock" civicrm -t -e "$2"
}

echo "==> starting two MariaDB instances with the CiviCRM schema"
port_a=$(start_mariadb civi1 0)
port_b=$(start_mariadb civi2 10)
recv_a=$(free_port)
recv_b=$(free_port)
secret=$("$bin" secret)

write_config() {  # name db_port listen_port peer peer_port
  cat >"$work/$1.toml" <<TOML
[node]
name = "$1"
data_dir = "$work/$1/agent"

[database]
host = "127.0.0.1"
port = $2
user = "civishare"
password = "civishare"
schema = "civicrm"

[capture]
source = "log_tables"
poll_interval_ms = 250

[receiver]
listen = "127.0.0.1:$3"

[applier]
kind = "sql"

[[peer]]
name = "$4"
url = "http://127.0.0.1:$5"
secret = "$secret"
outgoing = ["civishare.change.contact.base"]
incoming = ["civishare.change.contact.base"]
TOML
  chmod 600 "$work/$1.toml"
}
write_config civi1 "$port_a" "$recv_a" civi2 "$recv_b"
write_config civi2 "$port_b" "$recv_b" civi1 "$recv_a"

echo "==> civishare init on both nodes"
"$bin" init --add-indexes --config "$work/civi1.toml" 2>&1 | sed 's/^/    civi1 | /'
"$bin" init --add-indexes --config "$work/civi2.toml" 2>&1 | sed 's/^/    civi2 | /'

echo "==> starting the two linked agents (logs: $work/civi*.log)"
"$bin" run --config "$work/civi1.toml" >"$work/civi1.log" 2>&1 & pids+=($!)
"$bin" run --config "$work/civi2.toml" >"$work/civi2.log" 2>&1 & pids+=($!)
sleep 1

wait_for() {  # name, query, expected
  for _ in $(seq 1 150); do
    got=$(mariadb --no-defaults -uroot --socket="$work/$1/mysqld.sock" civicrm -N -B -e "$2" 2>/dev/null || true)
    [ "$got" = "$3" ] && return 0
    sleep 0.2
  done
  echo "!! timed out waiting on $1 for: $2 = $3 (got '$got')" >&2
  echo "--- civi1 log"; cat "$work/civi1.log"; echo "--- civi2 log"; cat "$work/civi2.log"
  exit 1
}

show='SELECT c.id, c.first_name, c.last_name, c.external_identifier, c.gender_id,
  (SELECT v.name FROM civicrm_option_value v JOIN civicrm_option_group g ON g.id = v.option_group_id
    WHERE g.name = "gender" AND v.value = c.gender_id) AS gender, c.display_name,
  m.global_ref FROM civicrm_contact c LEFT JOIN civishare_idmap m ON m.local_id = c.id
  AND m.entity_table = "civicrm_contact"'

echo
echo "==> on civi1: a contact is created (gender Female is value 1 on civi1, 11 on civi2;"
echo "    contact ids start at 100 on civi1 and 140 on civi2)"
sql civi1 "INSERT INTO civicrm_contact (contact_type, first_name, last_name, external_identifier, gender_id,
             display_name, sort_name)
           VALUES ('Individual', 'Ada', 'Lovelace', 'MEMBER-1815', 1, 'Ada Lovelace', 'Lovelace, Ada'); $show"
wait_for civi2 "SELECT first_name FROM civicrm_contact WHERE external_identifier = 'MEMBER-1815'" "Ada"
echo "==> on civi2: the contact has arrived, with civi2's own id and gender value"
sql civi2 "$show"

echo
echo "==> on civi1: the contact is edited"
sql civi1 "UPDATE civicrm_contact SET first_name = 'Augusta Ada', last_name = 'King',
             display_name = 'Augusta Ada King', sort_name = 'King, Augusta Ada' WHERE external_identifier = 'MEMBER-1815'"
wait_for civi2 "SELECT last_name FROM civicrm_contact WHERE external_identifier = 'MEMBER-1815'" "King"
echo "==> on civi2: the edit has arrived"
sql civi2 "$show"

echo
echo "==> on civi2: a job title is set; it flows back to civi1 (the link is two-way)"
sql civi2 "UPDATE civicrm_contact SET job_title = 'Mathematician' WHERE external_identifier = 'MEMBER-1815'"
wait_for civi1 "SELECT job_title FROM civicrm_contact WHERE external_identifier = 'MEMBER-1815'" "Mathematician"
sql civi1 "SELECT id, display_name, job_title FROM civicrm_contact"

echo
echo "==> what the agents logged"
sed 's/^/    civi1 | /' "$work/civi1.log"
sed 's/^/    civi2 | /' "$work/civi2.log"
echo
echo "==> demo done; stopping everything it started"
