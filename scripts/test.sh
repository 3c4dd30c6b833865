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
sanitize=0
if [ "${1:-}" = "--sanitize" ]; then
  sanitize=1
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
  case "$build" in /*) bdir=$build ;; *) bdir=$root/$build ;; esac
  busted_env=(VMP_BUILD_DIR="$bdir")
  if [ "$sanitize" = 1 ]; then
    # vmpool/core.so is instrumented, the lua5.4 loading it is not: preload
    # the sanitizer runtime. Leaks are checked by the cmocka tests; here
    # they would be the interpreter's and busted's.
    busted_env+=(LD_PRELOAD="$(gcc -print-file-name=libasan.so)"
                 ASAN_OPTIONS=detect_leaks=0:abort_on_error=1)
  fi
  env "${busted_env[@]}" busted --lua=lua5.4 -o utfTerminal spec || status=1
fi
exit $status
