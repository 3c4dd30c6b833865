#!/usr/bin/env bash
# API benchmark: checkout+return cycles per second with 1 and 4 keep-alive
# clients against the API alone (release build, loopback, private
# redis-server on a unix socket, pool pre-seeded), p50/p99 latency of each
# request, the raw Redis op rate (redis-benchmark) as the ceiling, the
# API process's RSS after the run, and what the machine charges for a system
# call and a loopback round trip. Figures are printed, never asserted.
#
#   bench/api_bench.sh [SECONDS_PER_RUN]   (default 10)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
secs=${1:-10}
build=${VMP_BENCH_BUILD:-$root/build-bench-api}
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$build" --target vmpool-api-test-server -j"$(nproc)" >/dev/null
dir=$(mktemp -d /tmp/vmp-api-bench-XXXXXX)
cc -O2 -o "$dir/api_bench" "$root/bench/api_bench.c"
cc -O2 -o "$dir/machine_probe" "$root/bench/machine_probe.c"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$dir"
}
trap cleanup EXIT

sock=$dir/redis.sock
# Persistence as vmpoold's embedded redis-server has it (append-only file,
# fsync every second); VMP_BENCH_AOF=no for a Redis that keeps nothing.
aof=${VMP_BENCH_AOF:-yes}
redis-server --port 0 --unixsocket "$sock" --save "" --appendonly "$aof" --appendfsync everysec \
  --dir "$dir" >"$dir/redis.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do [ -S "$sock" ] && break; sleep 0.05; done

# Enough VMs that the pool never runs dry during the runs (a return moves a
# VM to completed; with no manager nothing refills the pool).
nvms=${VMP_BENCH_VMS:-400000}
now="2023-11-15 01:13:20 +0000"
awk -v n="$nvms" -v now="$now" 'BEGIN {
  for (i = 1; i <= n; i++) {
    printf "SADD vmpooler__ready__bench b%07d\n", i
    printf "HSET vmpooler__vm__b%07d template bench pool bench clone \"%s\" ready \"%s\"\n", i, now, now
  }
}' | redis-cli -s "$sock" --pipe >/dev/null
# Settle persistence before measuring: the seed alone is enough to trigger
# an append-only file rewrite (a fork and its copy-on-write faults) in the
# middle of the first run otherwise.
if [ "$aof" = yes ]; then
  redis-cli -s "$sock" BGREWRITEAOF >/dev/null
  for _ in $(seq 600); do
    redis-cli -s "$sock" INFO persistence |
      grep -Eq '^aof_rewrite_in_progress:0' && ! redis-cli -s "$sock" INFO persistence |
      grep -Eq '^aof_rewrite_scheduled:1' && break
    sleep 0.1
  done
fi

cat >"$dir/vmpool.yaml" <<YAML
---
:dns_configs:
  :example:
    dns_class: dynamic-dns
    domain: example.com
:pools:
  - name: bench
    template: templates/bench
    size: 1000
    dns_plugin: example
YAML
"$build/tests/vmpool-api-test-server" --config "$dir/vmpool.yaml" \
  --redis-socket "$sock" ${VMP_BENCH_THREADS:+--threads "$VMP_BENCH_THREADS"} --port-file "$dir/port" >"$dir/server.log" 2>&1 &
server=$!
pids+=($server)
for _ in $(seq 200); do [ -s "$dir/port" ] && break; sleep 0.05; done
[ -s "$dir/port" ] || { cat "$dir/server.log"; echo "the API server did not start"; exit 1; }
port=$(cat "$dir/port")

# CPU seconds (user+system) a process has used so far.
cpu() { awk -v hz="$(getconf CLK_TCK)" '{ printf "%.2f", ($14 + $15) / hz }' "/proc/$1/stat"; }
redis_pid=${pids[0]}
echo "== this machine: $("$dir/machine_probe")"
echo "== API checkout+return (pool of $nvms ready VMs, ${secs}s per run, $(nproc) cores," \
  "appendonly $aof, load average $(cut -d' ' -f1-3 /proc/loadavg))"
for n in 1 4; do
  a0=$(cpu "$server"); r0=$(cpu "$redis_pid")
  res=$("$dir/api_bench" 127.0.0.1 "$port" bench "$n" "$secs")
  a1=$(cpu "$server"); r1=$(cpu "$redis_pid")
  cycles=$(echo "$res" | sed -E 's/.*cycles=([0-9]+).*/\1/')
  echo "$res"
  awk -v a="$a0" -v b="$a1" -v c="$r0" -v d="$r1" -v n="$cycles" 'BEGIN {
    if (n > 0) printf "  CPU per cycle: API %.1f us, redis %.1f us\n", (b - a) * 1e6 / n, (d - c) * 1e6 / n }'
  [ "$n" = 4 ] && r4=$res
done
rss=$(awk '/VmRSS/ {print $2, $3}' "/proc/$server/status")
echo "API RSS after the runs: $rss"

echo "== redis-benchmark on the same socket (ceiling)"
rb=$(redis-benchmark -s "$sock" -c 4 -n 200000 -t set,get,sadd,spop -q 2>/dev/null | tr '\r' '\n' |
  grep -E '^(SET|GET|SADD|SPOP): [0-9.]+ requests per second' || true)
echo "$rb"
c4=$(echo "$r4" | sed -E 's/.*cycles_per_sec=([0-9]+).*/\1/')
get=$(echo "$rb" | awk '/^GET:/ {print $2}')
if [ -n "$get" ] && [ -n "$c4" ]; then
  awk -v c="$c4" -v g="$get" 'BEGIN { printf "ratio: API cycles/s (4 clients) / redis GET ops/s = %.3f\n", c / g }'
fi
