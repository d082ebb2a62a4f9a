#!/usr/bin/env bash
# End-to-end benchmark: builds (if needed) and runs build/bench/bench_e2e, which starts two
# throw-away MariaDB servers with the CiviCRM fixture and two real agents, and prints throughput,
# latency, memory and disk figures next to the references measured in the same run.
#
#   bench/e2e/run.sh [--contacts N] [--latency-seconds S] [--rate R] [--queue M]
#                    [--source log_tables|binlog]
#
# Defaults: 10,000 contacts (60,000 changes), 20 s at 500 changes/s, 1,000,000 changes queued
# with the receiving agent down. Needs what `deploy/setup.sh --test` installs. Takes ~5 minutes.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
build="${CIVISHARE_BUILD:-$root/build}"
if [[ ! -f "$build/build.ninja" ]]; then
  cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
fi
cmake --build "$build" --target civishare bench_e2e >/dev/null
echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo)," \
  "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
exec "$build/bench/bench_e2e" "$@"
