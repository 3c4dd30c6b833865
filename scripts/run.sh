#!/usr/bin/env bash
# Builds vmpool (release) and runs vmpoold in the foreground on
# config/vmpool.yaml, or on the configuration file given as the first
# argument. Installs what is missing first. Extra arguments go to vmpoold.
#
#   scripts/run.sh                       # dummy pools, embedded Redis, API on 127.0.0.1:4567
#   scripts/run.sh my.yaml --log-level debug
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
config=config/vmpool.yaml
if [ "$#" -gt 0 ] && [ "${1#-}" = "$1" ]; then
  config=$1
  shift
fi
config=$(realpath "$config")

cd "$root"
scripts/install-deps.sh
build=${VMP_BUILD_DIR:-build-release}
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DVMP_TESTS=OFF >/dev/null
cmake --build "$build" -j"$(nproc)" --target vmpoold >/dev/null
exec "$build/vmpoold" --config "$config" "$@"
