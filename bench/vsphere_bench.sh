#!/usr/bin/env bash
# vSphere provider benchmark against a private vcsim: SOAP round trips and
# bytes per VM lifecycle and per op, the time to fill a 50-VM pool with 10
# threads (instant clones, then clones vcsim keeps running CLONE_MS), and
# one inventory pass of a 100-VM pool. Figures are printed, never asserted.
#
#   bench/vsphere_bench.sh [LIFECYCLES] [CLONE_MS]    (defaults 20, 1000)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${VMP_BENCH_BUILD:-$root/build-bench-vsphere}
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$build" --target vmp_vsphere -j"$(nproc)" >/dev/null
dir=$(mktemp -d /tmp/vmp-vsphere-bench-XXXXXX)
trap 'rm -rf "$dir"' EXIT
cc -O2 -D_GNU_SOURCE -std=c11 -o "$dir/vsphere_bench" "$root/bench/vsphere_bench.c" \
  "$root/tests/support/vcsim.c" -I"$root/src" -I"$root/providers" -I"$root/tests/support" \
  $(pkg-config --cflags libxml-2.0) \
  "$build/libvmp_vsphere.a" "$build/libvmp_provider.a" "$build/libvmp_config.a" \
  "$build/libvmp_base.a" $(pkg-config --libs libcurl libxml-2.0 yaml-0.1) -lpthread -lm
"$dir/vsphere_bench" "$root/../shared/vcsim" "${1:-20}" "${2:-1000}"
