#!/usr/bin/env bash
# vSphere benchmark against a private vcsim: the provider alone (SOAP round
# trips and bytes per VM lifecycle and per op, the time to fill a 50-VM pool
# with 10 threads, one inventory pass of a 100-VM pool) and the lifecycle
# engine with it on a private redis-server (filling a 50-VM pool with
# task_limit 10, emptying it, optionally a quiet full pool for IDLE_S
# seconds). Clones vcsim keeps running CLONE_MS are measured too. Figures
# are printed, never asserted.
#
#   bench/vsphere_bench.sh [LIFECYCLES] [CLONE_MS] [IDLE_S]   (defaults 20, 1000, 0)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${VMP_BENCH_BUILD:-$root/build-bench-vsphere}
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$build" --target vsphere_bench -j"$(nproc)" >/dev/null
"$build/bench/vsphere_bench" "$root/../shared/vcsim" "${1:-20}" "${2:-1000}" "${3:-0}"
