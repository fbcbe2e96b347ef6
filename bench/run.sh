#!/usr/bin/env bash
# Compares VeloFlux, nginx and HAProxy as HTTP/1.1 reverse proxies in front of the same two
# backends on loopback, the way docs/performance.md reports it:
#
#   - each proxy runs alone on one core (taskset), with one worker or thread; the load
#     generators and the backends (an nginx answering SIZE bytes) share the other core;
#   - CPU per request is the proxy's utime+stime from /proc/PID/stat over the requests wrk
#     completed, at full keep-alive load (wrk, CONNS connections);
#   - latency is vegeta's p50 and p99 at a fixed RATE requests/s over LAT_CONNS connections;
#   - idle memory is the growth of the proxy's resident memory (all its processes) when IDLE
#     keep-alive client connections, each having had one answer, sit idle on a freshly
#     started proxy;
#   - the three proxies run in turn within each round (interleaved, so drift in machine load
#     hits all alike) and the report gives medians over ROUNDS and the ratios to HAProxy,
#     with the load average before and after as the note of how busy the machine was.
#
#   bench/run.sh
#   ROUNDS=5 DURATION=20s IDLE=19000 bench/run.sh
#   PROXIES="veloflux veloflux-nethttp haproxy" VF_BIN=/tmp/veloflux VF_PORT=28080 bench/run.sh
#
# PROXIES picks the proxies and their order (default "veloflux nginx haproxy"; haproxy is the
# reference of the ratios and must be among them); veloflux-nethttp is VeloFlux with
# global.http1_fast_path off, served by Go's net/http; veloflux-procs1 is VeloFlux with
# GOMAXPROCS=1 in its environment (what Go chooses on one CPU; it tells whether a binary's own
# choice differs from it). VF_BIN is the binary to measure
# (default ./veloflux, built when missing); VF_PORT, VF_STD_PORT, VF_P1_PORT, NGINX_PORT, HAPROXY_PORT, B1
# and B2 move the ports when another run holds the defaults. HAProxy's maxconn is IDLE+1000,
# as is VeloFlux's max_client_conns (its default, half the open-files limit, is sized for a
# backend connection beside each client), so IDLE must stay below the open-files limit with room for that.
#
# NICE (for example -20) runs the whole benchmark in a session of its own whose scheduler group
# (the kernel's autogroup) has that nice value: on a machine shared with other work, the
# proxies, the backends and the load generators then get the CPU before other sessions'
# processes, and share it among themselves as on a quiet machine. It needs root and
# kernel.sched_autogroup_enabled; a plain nice does nothing against another session's group.
#
# It installs what it lacks (Debian wrk, nginx-light, haproxy; vegeta built from tools/vegeta
# into the cache), listens on 127.0.0.1 only and stops only the processes it started, by PID.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -n "${NICE:-}" ] && [ -z "${BENCH_AUTOGROUP:-}" ]; then
  # shellcheck disable=SC2016 # $$ and $@ are the new session's
  exec env BENCH_AUTOGROUP="$NICE" setsid -w bash -c 'echo "$BENCH_AUTOGROUP" > /proc/$$/autogroup && exec "$@"' bench bench/run.sh "$@"
fi
# shellcheck disable=SC1091 # bench/lib.sh is checked on its own
. bench/lib.sh

ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10s}
CONNS=${CONNS:-64}
RATE=${RATE:-5000}
LAT_CONNS=${LAT_CONNS:-32}
LAT_DURATION=${LAT_DURATION:-10s}
IDLE=${IDLE:-10000}
SIZE=${SIZE:-100}
PROXY_CPU=${PROXY_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}
PATH_=/plain
OUT=${OUT:-bench/results}
VEGETA_BIN=${VEGETA_BIN:-$HOME/.cache/veloflux/vegeta-$(awk '$1 == "github.com/tsenart/vegeta/v12" { print $2 }' tools/vegeta/go.mod)}
VF_PORT=${VF_PORT:-18080} VF_STD_PORT=${VF_STD_PORT:-18083} VF_P1_PORT=${VF_P1_PORT:-18084} NGINX_PORT=${NGINX_PORT:-18081}
HAPROXY_PORT=${HAPROXY_PORT:-18082} B1=${B1:-19101} B2=${B2:-19102}
VF_BIN=${VF_BIN:-./veloflux}
read -r -a proxies <<<"${PROXIES:-veloflux nginx haproxy}"

install_missing wrk:wrk nginx:nginx-light haproxy:haproxy taskset:util-linux
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
HAPROXY=$(command -v haproxy || echo /usr/sbin/haproxy)
if [ ! -x "$VEGETA_BIN" ]; then
  echo "building vegeta into $VEGETA_BIN (once)"
  mkdir -p "$(dirname "$VEGETA_BIN")"
  (cd tools/vegeta && CGO_ENABLED=0 go build -trimpath -o "$VEGETA_BIN.tmp" github.com/tsenart/vegeta/v12) && mv "$VEGETA_BIN.tmp" "$VEGETA_BIN"
fi
if [ "$IDLE" -ge "$(ulimit -n)" ]; then
  echo "IDLE=$IDLE needs more open files than ulimit -n ($(ulimit -n)) allows" >&2
  exit 2
fi

work=$(mktemp -d)
pids=()
trap cleanup EXIT INT TERM

mkdir -p "$OUT"
[ -x "$VF_BIN" ] || make build BIN="$VF_BIN" >/dev/null
go build -o "$work/idleconns" ./bench/idleconns
body=$(head -c "$((SIZE - 1))" /dev/zero | tr '\0' x)

backend_conf "$work/backend.conf" "$work" "$body" "$B1" "$B2"

for variant in veloflux:$VF_PORT:true veloflux-nethttp:$VF_STD_PORT:false veloflux-procs1:$VF_P1_PORT:true; do
IFS=: read -r name vport fast <<<"$variant"
cat > "$work/$name.yaml" <<YAML
global:
  bind_address: "127.0.0.1:$vport"
  metrics_address: ""
  admin_address: ""
  access_log: false
  log_level: warn
  http1_fast_path: $fast
  limits:
    max_client_conns: $((IDLE + 1000))
$(bench_pools "$B1" "$B2")
YAML
done

cat > "$work/nginx.conf" <<NGINX
worker_processes 1;
worker_rlimit_nofile $(ulimit -n);
pid $work/nginx.pid;
error_log $work/nginx-error.log warn;
events { worker_connections $((IDLE + 1000)); }
http {
  access_log off;
  keepalive_requests 100000000;
  upstream bench { server 127.0.0.1:$B1; server 127.0.0.1:$B2; keepalive 64; }
  server {
    listen 127.0.0.1:$NGINX_PORT;
    location / {
      proxy_pass http://bench;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host \$host;
      proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
    }
  }
}
NGINX

cat > "$work/haproxy.cfg" <<HAPROXY
global
  nbthread 1
  maxconn $((IDLE + 1000))
defaults
  mode http
  timeout connect 5s
  timeout client 60s
  timeout server 60s
  option http-keep-alive
  option forwardfor
frontend fe
  bind 127.0.0.1:$HAPROXY_PORT
  default_backend be
backend be
  balance roundrobin
  http-reuse always
  server b1 127.0.0.1:$B1
  server b2 127.0.0.1:$B2
HAPROXY

taskset -c "$LOAD_CPU" "$NGINX" -c "$work/backend.conf" -g 'daemon off;' 2>"$work/backend.out" & pids+=($!)

declare -A port=([veloflux]=$VF_PORT [veloflux-nethttp]=$VF_STD_PORT [veloflux-procs1]=$VF_P1_PORT [nginx]=$NGINX_PORT [haproxy]=$HAPROXY_PORT)
declare -A main_pid=()

# start runs proxy $1 alone on PROXY_CPU and waits until it answers.
start() {
  case $1 in
    veloflux-procs1) GOMAXPROCS=1 taskset -c "$PROXY_CPU" "$VF_BIN" -config "$work/$1.yaml" 2>>"$work/$1.log" & ;;
    veloflux*) taskset -c "$PROXY_CPU" "$VF_BIN" -config "$work/$1.yaml" 2>>"$work/$1.log" & ;;
    nginx) taskset -c "$PROXY_CPU" "$NGINX" -c "$work/nginx.conf" -g 'daemon off;' 2>>"$work/nginx.out" & ;;
    haproxy) taskset -c "$PROXY_CPU" "$HAPROXY" -f "$work/haproxy.cfg" -db 2>>"$work/haproxy.out" & ;;
  esac
  main_pid[$1]=$!
  pids+=($!)
  wait_up "${port[$1]}" "$PATH_"
}

stop() {
  local pid=${main_pid[$1]}
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}

# procs lists proxy $1's processes: the one started and, for nginx, its workers.
procs() { echo "${main_pid[$1]}"; pgrep -P "${main_pid[$1]}" || true; }
# cpu_ticks is the user plus system CPU time of proxy $1's processes, in clock ticks.
cpu_ticks() { for pid in $(procs "$1"); do cat "/proc/$pid/stat"; done | awk '{ t += $14 + $15 } END { print t }'; }
# rss_kib is the resident memory of proxy $1's processes.
rss_kib() { for pid in $(procs "$1"); do cat "/proc/$pid/status"; done | awk '$1 == "VmRSS:" { t += $2 } END { print t }'; }
hz=$(getconf CLK_TCK)
to_ms() { awk -v v="$1" 'BEGIN { n=v+0; if (v ~ /us$/) n/=1000; else if (v ~ /ms$/) ; else if (v ~ /s$/) n*=1000; printf "%.3f", n }'; }

stamp=$(date -u +%Y%m%dT%H%M%SZ)
results="$OUT/$stamp.tsv"
printf 'round\tproxy\tmetric\tvalue\n' > "$results"
record() { printf '%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" >> "$results"; }
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
wait_up "$B1" "$PATH_" && wait_up "$B2" "$PATH_"

for p in "${proxies[@]}"; do start "$p"; done
for round in $(seq "$ROUNDS"); do
  for p in "${proxies[@]}"; do
    before=$(cpu_ticks "$p")
    out=$(taskset -c "$LOAD_CPU" wrk -t1 -c"$CONNS" -d"$DURATION" --latency "http://127.0.0.1:${port[$p]}$PATH_")
    after=$(cpu_ticks "$p")
    n=$(awk '/requests in/ { print $1 }' <<<"$out")
    rps=$(awk '/^Requests\/sec:/ { print $2 }' <<<"$out")
    p99=$(to_ms "$(awk '$1 == "99%" { print $2 }' <<<"$out")")
    bad=$(awk '/Non-2xx|Socket errors/' <<<"$out")
    [ -n "$bad" ] && echo "warning: $p: $bad" >&2
    us=$(awk -v t=$((after - before)) -v hz="$hz" -v n="$n" 'BEGIN { printf "%.1f", t / hz * 1e6 / n }')
    record "$round" "$p" cpu_us_per_request "$us"
    record "$round" "$p" requests_per_s "$rps"
    record "$round" "$p" wrk_p99_ms "$p99"
    printf 'round %s %-16s %10s req/s  %6s us CPU/request  p99 %s ms\n' "$round" "$p" "$rps" "$us" "$p99"
  done
  for p in "${proxies[@]}"; do
    rep=$(echo "GET http://127.0.0.1:${port[$p]}$PATH_" |
      taskset -c "$LOAD_CPU" "$VEGETA_BIN" attack -rate="$RATE/s" -duration="$LAT_DURATION" \
        -connections="$LAT_CONNS" -max-connections="$LAT_CONNS" -keepalive |
      "$VEGETA_BIN" report -type=json)
    read -r p50 p99 ok < <(awk -v RS=',' -F':' '
      /"50th"/ { p50 = $2 } /"99th"/ { p99 = $2 } /"success"/ { ok = $2 }
      END { printf "%.3f %.3f %s\n", p50 / 1e6, p99 / 1e6, ok }' <<<"$rep")
    record "$round" "$p" fixed_rate_p50_ms "$p50"
    record "$round" "$p" fixed_rate_p99_ms "$p99"
    [ "$ok" = "1" ] || echo "warning: $p: success ratio $ok at $RATE req/s" >&2
    printf 'round %s %-16s at %s req/s: p50 %s ms  p99 %s ms\n' "$round" "$p" "$RATE" "$p50" "$p99"
  done
done
for p in "${proxies[@]}"; do stop "$p"; done

# Idle connections, each proxy freshly started.
for p in "${proxies[@]}"; do
  start "$p"
  before=$(rss_kib "$p")
  taskset -c "$LOAD_CPU" "$work/idleconns" -n "$IDLE" "127.0.0.1:${port[$p]}" "$PATH_" >"$work/idle.out" 2>&1 &
  hold=$!
  for _ in $(seq 1200); do
    grep -q '^ready' "$work/idle.out" && break
    kill -0 "$hold" 2>/dev/null || break
    sleep 0.1
  done
  if ! grep -q '^ready' "$work/idle.out"; then
    echo "$p: the idle connections did not all open: $(cat "$work/idle.out")" >&2
  else
    sleep 2
    after=$(rss_kib "$p")
    per=$(( (after - before) * 1024 / IDLE ))
    record 1 "$p" idle_bytes_per_conn "$per"
    printf '%-16s %d idle connections: RSS %d -> %d KiB, %d bytes each\n' "$p" "$IDLE" "$before" "$after" "$per"
  fi
  kill "$hold" 2>/dev/null || true
  wait "$hold" 2>/dev/null || true
  stop "$p"
done
load_after=$(cut -d' ' -f1-3 /proc/loadavg)

echo
echo "medians of $ROUNDS rounds; proxy alone on CPU $PROXY_CPU; wrk -t1 -c$CONNS -d$DURATION; vegeta $RATE/s over $LAT_CONNS connections for $LAT_DURATION; $IDLE idle connections; $SIZE-byte answers; $(nproc) cores"
echo "load average before: $load_before; after: $load_after; scheduler group: $(cat /proc/self/autogroup 2>/dev/null || echo none)"
awk -F'\t' -v order="${proxies[*]}" 'NR > 1 { v[$2, $3] = v[$2, $3] " " $4 }
  function median(s,   a, n, i, j, t) {
    n = split(s, a, " ")
    for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] + 0 < a[i] + 0) { t = a[i]; a[i] = a[j]; a[j] = t }
    return (n % 2) ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
  }
  END {
    printf "%-16s %12s %10s %10s %10s %14s %14s %12s\n", "proxy", "CPU us/req", "x HAProxy", "req/s", "p99 ms", "p50 ms @rate", "p99 ms @rate", "idle B/conn"
    h = median(v["haproxy", "cpu_us_per_request"])
    n = split(order, names, " ")
    for (i = 1; i <= n; i++) {
      p = names[i]; c = median(v[p, "cpu_us_per_request"])
      printf "%-16s %12.1f %10.2f %10.0f %10.2f %14.2f %14.2f %12s\n", p, c, c / h, median(v[p, "requests_per_s"]),
        median(v[p, "wrk_p99_ms"]), median(v[p, "fixed_rate_p50_ms"]), median(v[p, "fixed_rate_p99_ms"]), v[p, "idle_bytes_per_conn"]
    }
  }' "$results"
echo "raw rows: $results"
