#!/usr/bin/env bash
# Builds vmpool and runs every test: the cmocka unit tests and black-box
# tests through ctest, then the busted specs. Installs what is missing first.
#
#   scripts/test.sh              # release-type build in build/
#   scripts/test.sh --sanitize   # ASan+UBSan build in build-asan/
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

build=build
cmake_args=(-DCMAKE_BUILD_TYPE=RelWithDebInfo)
if [ "${1:-}" = "--sanitize" ]; then
  build=build-asan
  cmake_args=(-DCMAKE_BUILD_TYPE=Debug -DVMP_SANITIZE=ON)
  export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
  export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
fi
build=${VMP_BUILD_DIR:-$build}

scripts/install-deps.sh
cmake -S . -B "$build" "${cmake_args[@]}" >/dev/null
cmake --build "$build" -j"$(nproc)"

export VMP_REQUIRE_VCSIM=${VMP_REQUIRE_VCSIM:-1} # the vSphere tests fail, not skip, without vcsim
status=0
ctest --test-dir "$build" --output-on-failure -j"$(nproc)" || status=1

if compgen -G "spec/*_spec.lua" >/dev/null; then
  VMP_BUILD_DIR="$root/$build" busted --lua=lua5.4 -o utfTerminal spec || status=1
fi
exit $status
