#!/usr/bin/env bash
# Installs everything CiviShare needs from Debian 12 packages, builds it, and then (optionally)
# runs the demo or the test suite. Idempotent: re-running skips what is already there.
#
#   deploy/setup.sh            install + build
#   deploy/setup.sh --demo     install + build + run the two-instance demo
#   deploy/setup.sh --test     install + build the test build + run the whole test suite
#
# The test build (build-test/) is not the release build (build/): clang with AddressSanitizer,
# UBSan and fuzzing instrumentation, and the crash points compiled in (docs/RELIABILITY.md).
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
  libcurl4-openssl-dev libssl-dev libtomlplusplus-dev zlib1g-dev libjemalloc-dev libgtest-dev
  libbenchmark-dev
  mariadb-server mariadb-client
)

sudo_cmd=()
if [ "$(id -u)" -ne 0 ]; then sudo_cmd=(sudo); fi

# The test suite also drives the status page in a browser, verifies the systemd units, and is
# built with clang's sanitizers and libFuzzer.
if [ "$mode" = "--test" ]; then
  packages+=(chromium systemd openssl clang libclang-rt-14-dev llvm-14)
fi

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

if [ "$mode" = "--test" ]; then
  build="${CIVISHARE_TEST_BUILD_DIR:-$root/build-test}"
  echo "==> building the test build (clang, ASan + UBSan, fuzzers, crash points) in $build"
  CC=clang CXX=clang++ cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DCIVISHARE_FUZZ=ON -DCIVISHARE_CRASH_POINTS=ON -DCIVISHARE_BENCH=OFF >/dev/null
  cmake --build "$build" -j "$(nproc)"
  export ASAN_SYMBOLIZER_PATH=/usr/lib/llvm-14/bin/llvm-symbolizer
  export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:halt_on_error=1}"
  export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
  cd "$build" && exec ctest --output-on-failure --timeout 900
fi

echo "==> building in $build"
cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCIVISHARE_CRASH_POINTS=OFF >/dev/null
cmake --build "$build" -j "$(nproc)"

case "$mode" in
  --demo) exec "$root/deploy/demo.sh" "$build/agent/civishare" ;;
esac
echo "==> built $build/agent/civishare"
