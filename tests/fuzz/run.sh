#!/usr/bin/env bash
# Runs every libFuzzer target for a while, starting from the seed corpus in tests/fuzz/corpus.
#   tests/fuzz/run.sh BUILD_DIR [SECONDS_EACH]     (BUILD_DIR configured with -DCIVISHARE_FUZZ=ON)
# CI runs 30 s each; for a real campaign give it hours and keep the work dir's corpus.
# Exit status: non-zero when a target finds a crash (the reproducer is left in the work dir).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
build="$1"
seconds="${2:-30}"
work="${FUZZ_WORK_DIR:-$(mktemp -d /tmp/civishare-fuzz.XXXXXX)}"
status=0
for target in message signature config log_row binlog_rows; do
  mkdir -p "$work/$target"
  cp -n "$here/corpus/$target/"* "$work/$target/" 2>/dev/null || true
  echo "==> fuzz_$target for ${seconds}s"
  if ! (cd "$work" && "$build/tests/fuzz/fuzz_$target" -max_total_time="$seconds" \
          -rss_limit_mb=2048 -timeout=10 -print_final_stats=1 "$work/$target" \
          > "$work/fuzz_$target.log" 2>&1); then
    echo "fuzz_$target FOUND A PROBLEM (reproducer and log in $work):"
    tail -n 40 "$work/fuzz_$target.log"
    status=1
  else
    grep -E "^stat::number_of_executed_units|^stat::new_units_added" "$work/fuzz_$target.log" \
      | sed "s/^/    /" || true
  fi
done
exit "$status"
