#!/usr/bin/env bash
# systemd-analyze verify on the shipped units, pointed at the binary under test and run as root
# (the civishare user does not exist on a build machine). Fails when systemd rejects a unit.
set -euo pipefail
src="$1"; bin="$2"
command -v systemd-analyze >/dev/null || { echo "systemd-analyze is missing (package systemd)"; exit 1; }
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
for f in "$src"/deploy/systemd/*; do
  sed -e "s|/usr/local/bin/civishare|$bin|" -e "s|^User=civishare|User=root|" \
      -e "s|^Group=civishare|Group=root|" "$f" > "$dir/$(basename "$f")"
done
out=$(cd "$dir" && systemd-analyze verify ./*.service ./*.timer 2>&1) || { echo "$out"; exit 1; }
# verify prints warnings without failing; treat any line about our units as a failure.
if echo "$out" | grep -q "civishare"; then echo "$out"; exit 1; fi
echo "systemd-analyze verify: all units accepted"
