# Shared helpers for vmpool's black-box shell tests. Source it, then call
# bb_init. Every test gets a private temp dir (removed at exit), its own
# redis-server on a unix socket there (bb_start_redis), and pass/fail
# counters that bb_finish prints as "N passed, M failed". BB_KEEP_TMP=1 keeps
# the temp dir (logs) for a look after the run.

bb_init() {
  BB_NAME=$1
  BB_PASSED=0
  BB_FAILED=0
  BB_PIDS=()
  BB_TMP=$(mktemp -d "/tmp/vmpool-$BB_NAME-XXXXXX")
  trap bb_cleanup EXIT
}

bb_cleanup() {
  local pid
  for pid in "${BB_PIDS[@]}"; do
    kill -TERM "$pid" 2>/dev/null
  done
  for pid in "${BB_PIDS[@]}"; do
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null
  done
  if [ -n "${BB_KEEP_TMP:-}" ]; then echo "# kept $BB_TMP"; else rm -rf "$BB_TMP"; fi
}

bb_ok() { BB_PASSED=$((BB_PASSED + 1)); echo "ok - $*"; }
bb_fail() { BB_FAILED=$((BB_FAILED + 1)); echo "not ok - $*"; }

# bb_check DESCRIPTION COMMAND...: passes when the command succeeds.
bb_check() {
  local what=$1
  shift
  if "$@"; then bb_ok "$what"; else bb_fail "$what"; fi
}

# bb_eq DESCRIPTION EXPECTED ACTUAL
bb_eq() {
  if [ "$2" = "$3" ]; then bb_ok "$1"; else bb_fail "$1: expected '$2', got '$3'"; fi
}

bb_finish() {
  if [ "$BB_FAILED" -gt 0 ]; then
    # The logs of what ran, so a failure in CI can be understood.
    local f
    for f in "$BB_TMP"/*.log; do
      [ -f "$f" ] || continue
      echo "# --- last lines of $(basename "$f")"
      tail -n 25 "$f" | sed 's/^/# /'
    done
  fi
  echo "$BB_NAME: $BB_PASSED passed, $BB_FAILED failed"
  [ "$BB_FAILED" -eq 0 ]
}

# Starts redis-server on $BB_TMP/redis.sock; sets BB_REDIS_SOCK and
# BB_REDIS_PID.
bb_start_redis() {
  BB_REDIS_SOCK=$BB_TMP/redis.sock
  redis-server --port 0 --unixsocket "$BB_REDIS_SOCK" --unixsocketperm 700 \
    --dir "$BB_TMP" --save '' --appendonly no --daemonize no \
    --logfile "$BB_TMP/redis.log" &
  BB_REDIS_PID=$!
  BB_PIDS+=("$BB_REDIS_PID")
  bb_wait_for "redis-server answers" 10 bb_redis PING
}

bb_redis() { redis-cli -s "$BB_REDIS_SOCK" "$@"; }

# bb_wait_for DESCRIPTION SECONDS COMMAND...: waits until the command
# succeeds (quietly), up to SECONDS. Returns non-zero on timeout.
bb_wait_for() {
  local what=$1 limit=$2
  shift 2
  local deadline=$((SECONDS + limit))
  while [ "$SECONDS" -lt "$deadline" ]; do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 0.2
  done
  echo "# timed out after ${limit}s waiting for: $what" >&2
  return 1
}

# bb_scard STATE POOL: size of a pool's state set.
bb_scard() { bb_redis SCARD "vmpooler__$1__$2"; }

# bb_pool_full POOL SIZE: ready == SIZE and nothing pending or completed.
bb_pool_full() {
  [ "$(bb_scard ready "$1")" = "$2" ] && [ "$(bb_scard pending "$1")" = 0 ] &&
    [ "$(bb_scard completed "$1")" = 0 ]
}

# Free TCP port on 127.0.0.1.
# Taken below the kernel's ephemeral range, so no outgoing connection of a
# test running alongside can be holding it when the daemon binds.
bb_free_port() {
  local port low=32768
  read -r low _ </proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || low=32768
  [ "$low" -gt 11000 ] || low=32768
  for _ in $(seq 100); do
    port=$((10000 + RANDOM % (low - 10000)))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      echo "$port"
      return 0
    fi
  done
  return 1
}

# bb_start_listener PORT: a TCP service on 127.0.0.1:PORT that accepts and
# closes connections (a stand-in for a VM's SSH port in readiness checks);
# sets BB_LISTENER_PID.
bb_start_listener() {
  perl -MIO::Socket::INET -e '
    my $s = IO::Socket::INET->new(LocalAddr => "127.0.0.1", LocalPort => $ARGV[0],
                                  Listen => 128, ReuseAddr => 1) or die "listen: $!\n";
    while (my $c = $s->accept) { close $c }' "$1" &
  BB_LISTENER_PID=$!
  BB_PIDS+=("$BB_LISTENER_PID")
  bb_wait_for "listener on port $1" 10 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1"
}
