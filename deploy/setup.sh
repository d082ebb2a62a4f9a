#!/usr/bin/env bash
# Installs everything CiviShare needs from Debian 12 packages, builds it, and then (optionally)
# runs the demo or the test suite. Idempotent: re-running skips what is already there.
#
#   deploy/setup.sh            install + build
#   deploy/setup.sh --demo     install + build + run the two-instance demo
#   deploy/setup.sh --test     install + build + run the whole test suite
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${CIVISHARE_BUILD_DIR:-$root/build}"
mode="${1:-}"
case "$mode" in
  ""|--demo|--test) ;;
  *) echo "usage: deploy/setup.sh [--demo|--test]" >&2; exit 2 ;;
esac

packages=(
  build-essential cmake ninja-build pkg-config git ca-certificates curl
  libmariadb-dev libboost1.81-dev libboost-json1.81-dev librocksdb-dev
  libcurl4-openssl-dev libssl-dev libtomlplusplus-dev libgtest-dev libbenchmark-dev
  mariadb-server mariadb-client
)

sudo_cmd=()
if [ "$(id -u)" -ne 0 ]; then sudo_cmd=(sudo); fi

# The test suite also drives the status page in a browser and verifies the systemd units.
if [ "$mode" = "--test" ]; then packages+=(chromium systemd openssl); fi

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "==> installing: ${missing[*]}"
  "${sudo_cmd[@]}" apt-get update -qq
  # (The packaged MariaDB service is not used: the tests and the demo start their own servers.)
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends \
    "${missing[@]}"
fi

# The named crash points (schemas/crash_point.h) are compiled in for the test suite only.
crash_points=OFF
if [ "$mode" = "--test" ]; then crash_points=ON; fi

echo "==> building in $build"
cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCIVISHARE_CRASH_POINTS="$crash_points" >/dev/null
cmake --build "$build" -j "$(nproc)"

case "$mode" in
  --demo) exec "$root/deploy/demo.sh" "$build/agent/civishare" ;;
  --test) cd "$build" && exec ctest --output-on-failure --timeout 900 ;;
esac
echo "==> built $build/agent/civishare"
