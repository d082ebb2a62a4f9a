#!/usr/bin/env bash
# The binlog bench: builds bench_binlog (release), installs ZongJi from npm into bench/binlog/
# (skipped with a note when npm or the registry is not there), and runs it.
#   bench/binlog/run.sh [row events, default 1000000]
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
build="${CIVISHARE_BUILD_DIR:-$root/build}"
cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$build" --target bench_binlog
if command -v npm >/dev/null; then
  (cd "$root/bench/binlog" && npm install --no-audit --no-fund --silent) ||
    echo "note: npm install of @vlasky/zongji failed; ZongJi is left out" >&2
else
  echo "note: no npm; ZongJi is left out" >&2
fi
exec "$build/bench/bench_binlog" "${1:-1000000}" "$root/bench/binlog"
