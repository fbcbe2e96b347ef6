#!/usr/bin/env bash
# Measures what an idle keep-alive client connection costs VeloFlux in resident memory, the
# way docs/performance.md reports it: a freshly started VeloFlux (fast path, access log off,
# max_client_conns IDLE+1000) in front of an nginx backend on loopback, alone on one core;
# bench/idleconns opens IDLE connections, each gets one answer and then waits. The figure is
# the growth of the resident size (VmRSS) from before the connections to SETTLE seconds after
# the last one had its answer; the growth 2 s after is printed beside it, as bench/run.sh
# measures it.
#
#   bench/idle.sh
#   IDLE=19000 SETTLE=5 ROUNDS=3 VF_BIN=/tmp/veloflux bench/idle.sh
#
# ROUNDS starts a fresh process per round. The CPU time VeloFlux spent from the last answer to
# the end of SETTLE (its utime+stime from /proc/PID/stat) is printed too: with every
# connection idle, that is the sweeps and the return of freed memory. LOG_LEVEL=debug prints
# VeloFlux's log of each return (how much it found and how long it took). GODEBUG passes
# through, so GODEBUG=gctrace=1 prints the collections. It listens on 127.0.0.1 only and
# stops only the processes it started, by PID.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck disable=SC1091 # bench/lib.sh is checked on its own
. bench/lib.sh

IDLE=${IDLE:-19000}
SETTLE=${SETTLE:-5}
ROUNDS=${ROUNDS:-1}
PROXY_CPU=${PROXY_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}
PATH_=/plain
VF_PORT=${VF_PORT:-18090} B1=${B1:-19111}
VF_BIN=${VF_BIN:-./veloflux}
LOG_LEVEL=${LOG_LEVEL:-warn}

install_missing nginx:nginx-light taskset:util-linux
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
if [ "$IDLE" -ge "$(ulimit -n)" ]; then
  echo "IDLE=$IDLE needs more open files than ulimit -n ($(ulimit -n)) allows" >&2
  exit 2
fi

work=$(mktemp -d)
pids=()
trap cleanup EXIT INT TERM

[ -x "$VF_BIN" ] || make build BIN="$VF_BIN" >/dev/null
go build -o "$work/idleconns" ./bench/idleconns
backend_conf "$work/backend.conf" "$work" "$(head -c 99 /dev/zero | tr '\0' x)" "$B1"
cat > "$work/veloflux.yaml" <<YAML
global:
  bind_address: "127.0.0.1:$VF_PORT"
  metrics_address: ""
  admin_address: ""
  access_log: false
  log_level: $LOG_LEVEL
  limits:
    max_client_conns: $((IDLE + 1000))
$(bench_pools "$B1")
YAML

taskset -c "$LOAD_CPU" "$NGINX" -c "$work/backend.conf" -g 'daemon off;' 2>"$work/backend.out" & pids+=($!)
wait_up "$B1" "$PATH_"

rss_kib() { awk '$1 == "VmRSS:" { print $2 }' "/proc/$1/status"; }
cpu_ms() { awk -v hz="$(getconf CLK_TCK)" '{ print ($14 + $15) * 1000 / hz }' "/proc/$1/stat"; }
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
for round in $(seq "$ROUNDS"); do
  taskset -c "$PROXY_CPU" "$VF_BIN" -config "$work/veloflux.yaml" 2>>"$work/veloflux.log" & vf=$!
  pids+=("$vf")
  wait_up "$VF_PORT" "$PATH_"
  before=$(rss_kib "$vf")
  : >"$work/idle.out"
  taskset -c "$LOAD_CPU" "$work/idleconns" -n "$IDLE" "127.0.0.1:$VF_PORT" "$PATH_" >"$work/idle.out" 2>&1 &
  hold=$!
  for _ in $(seq 1200); do
    grep -q '^ready' "$work/idle.out" && break
    kill -0 "$hold" 2>/dev/null || break
    sleep 0.1
  done
  if ! grep -q '^ready' "$work/idle.out"; then
    echo "round $round: the idle connections did not all open: $(cat "$work/idle.out")" >&2
    exit 1
  fi
  cpu0=$(cpu_ms "$vf")
  sleep 2
  at2=$(rss_kib "$vf")
  sleep "$((SETTLE > 2 ? SETTLE - 2 : 0))"
  after=$(rss_kib "$vf")
  cpu1=$(cpu_ms "$vf")
  printf 'round %s: %d idle connections: RSS %d KiB before, %d after 2 s (%d B each), %d after %d s (%d B each); %d ms CPU while idle\n' \
    "$round" "$IDLE" "$before" "$at2" $(((at2 - before) * 1024 / IDLE)) "$after" "$SETTLE" $(((after - before) * 1024 / IDLE)) $((cpu1 - cpu0))
  kill "$hold" 2>/dev/null || true
  wait "$hold" 2>/dev/null || true
  kill "$vf" 2>/dev/null || true
  wait "$vf" 2>/dev/null || true
done
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
if [[ ${GODEBUG:-} == *gctrace* ]]; then grep '^gc \|scvg' "$work/veloflux.log" || true; fi
if [ "$LOG_LEVEL" = debug ]; then grep 'freed memory' "$work/veloflux.log" || true; fi
