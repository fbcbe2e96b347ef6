#!/usr/bin/env bash
# Counts the CPU instructions each proxy executes per proxied request, with valgrind's
# callgrind: a figure that, unlike CPU time, does not move with how busy the machine is. Each
# proxy runs under callgrind in front of the same two nginx backends (100-byte answers, as in
# bench/run.sh); instrumentation is switched on after a warm-up, wrk sends keep-alive GETs over
# CONNS connections for DURATION, and the instructions counted (Ir) are divided by the
# requests wrk completed. Startup, configuration and the warm-up are not counted; a Go
# proxy's garbage collector and timers during the run are.
#
#   bench/callgrind.sh
#   PROXIES="veloflux veloflux-nethttp haproxy" DURATION=20s bench/callgrind.sh
#   PROXIES="veloflux veloflux-tracing" TRACE_RATIO=0.01 bench/callgrind.sh
#
# veloflux-tracing is veloflux (the HTTP/1.1 fast path) with tracing on at TRACE_RATIO,
# exporting over OTLP/gRPC to a Jaeger all-in-one (built by make jaeger when missing, on
# tools/jaeger/config.yaml) outside callgrind: the proxy's share of tracing, exporter
# included, is counted. Its warm-up lasts until its first spans reached Jaeger.
#
# Needs valgrind, wrk, nginx (and haproxy when listed), which it installs with apt when
# missing. It listens on 127.0.0.1 only and stops only the processes it started, by PID.
# The callgrind output files stay in OUT, for callgrind_annotate.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck disable=SC1091 # bench/lib.sh is checked on its own
. bench/lib.sh

DURATION=${DURATION:-10s}
CONNS=${CONNS:-8}
SIZE=${SIZE:-100}
OUT=${OUT:-bench/results/callgrind}
VF_BIN=${VF_BIN:-./veloflux}
# Below 32768, outside the ephemeral range where outgoing connections take their ports.
PORT=${PORT:-21080} B1=${B1:-21101} B2=${B2:-21102}
OTLP=${OTLP:-21111} QUERY=${QUERY:-21112} QUERY_GRPC=${QUERY_GRPC:-21113}
TRACE_RATIO=${TRACE_RATIO:-0.01}
JAEGER_BIN=${JAEGER_BIN:-$HOME/.cache/veloflux/jaeger-$(awk '$1 == "github.com/jaegertracing/jaeger" { print $2 }' tools/jaeger/go.mod)}
read -r -a proxies <<<"${PROXIES:-veloflux veloflux-nethttp haproxy}"

install_missing valgrind:valgrind wrk:wrk nginx:nginx-light haproxy:haproxy
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
HAPROXY=$(command -v haproxy || echo /usr/sbin/haproxy)

work=$(mktemp -d)
pids=()
trap cleanup EXIT INT TERM
mkdir -p "$OUT"
[ -x "$VF_BIN" ] || make build BIN="$VF_BIN" >/dev/null
body=$(head -c "$((SIZE - 1))" /dev/zero | tr '\0' x)

backend_conf "$work/backend.conf" "$work" "$body" "$B1" "$B2"
for variant in veloflux:true:false veloflux-nethttp:false:false veloflux-tracing:true:true; do
  IFS=: read -r name fast traced <<<"$variant"
  tracing="tracing: {enabled: false}"
  if [ "$traced" = true ]; then
    tracing="tracing: {enabled: true, endpoint: \"127.0.0.1:$OTLP\", insecure: true, sample_ratio: $TRACE_RATIO}"
  fi
  cat > "$work/$name.yaml" <<YAML
global:
  bind_address: "127.0.0.1:$PORT"
  metrics_address: ""
  admin_address: ""
  access_log: false
  log_level: warn
  http1_fast_path: $fast
$tracing
$(bench_pools "$B1" "$B2")
YAML
done
cat > "$work/haproxy.cfg" <<HAPROXY
global
  nbthread 1
defaults
  mode http
  timeout connect 5s
  timeout client 60s
  timeout server 60s
  option http-keep-alive
  option forwardfor
frontend fe
  bind 127.0.0.1:$PORT
  default_backend be
backend be
  balance roundrobin
  http-reuse always
  server b1 127.0.0.1:$B1
  server b2 127.0.0.1:$B2
HAPROXY

"$NGINX" -c "$work/backend.conf" -g "daemon off;" 2>"$OUT/backend.err" & pids+=($!)

wait_up "$B1" /plain
wait_up "$B2" /plain
if [[ " ${proxies[*]} " == *" veloflux-tracing "* ]]; then
  [ -x "$JAEGER_BIN" ] || make jaeger >/dev/null
  JAEGER_OTLP_PORT=$OTLP JAEGER_QUERY_PORT=$QUERY JAEGER_QUERY_GRPC_PORT=$QUERY_GRPC OTEL_TRACES_EXPORTER=none \
    "$JAEGER_BIN" --config file:tools/jaeger/config.yaml >"$OUT/jaeger.out" 2>&1 & pids+=($!)
  for _ in $(seq 600); do curl -fsS -o /dev/null "http://127.0.0.1:$QUERY/api/services" 2>/dev/null && break; sleep 0.1; done
fi

load_before=$(cut -d' ' -f1-3 /proc/loadavg)
printf 'proxy\trequests\tinstructions\tinstructions_per_request\n' > "$OUT/summary.tsv"
for p in "${proxies[@]}"; do
  case $p in
    # Valgrind 3.19 (Debian 12) does not know RDTSCP, which Go's runtime reads the clock with
    # when the CPU has it, and callgrind trips over the signals of Go's asynchronous
    # preemption: GODEBUG turns both off (the runtime then uses RDTSC with fences, and
    # preempts at function calls only). golang.org/x/sys/cpu, which reads GODEBUG too, warns
    # that it does not know the first name.
    veloflux*) cmd=("$VF_BIN" -config "$work/$p.yaml") ;;
    haproxy) cmd=("$HAPROXY" -f "$work/haproxy.cfg" -db) ;;
    *) echo "unknown proxy $p" >&2; exit 2 ;;
  esac
  rm -f "$OUT/$p.out"*
  GODEBUG=cpu.rdtscp=off,asyncpreemptoff=1 valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$OUT/$p.out" "${cmd[@]}" 2>"$OUT/$p.valgrind" &
  pid=$!
  pids+=("$pid")
  wait_up "$PORT" /plain
  wrk -t1 -c"$CONNS" -d3s "http://127.0.0.1:$PORT/plain" >/dev/null # warm-up: pools, caches
  if [ "$p" = veloflux-tracing ]; then
    # The warm-up lasts until the first batch of spans reached Jaeger, so the exporter's
    # one-time setup (its connection, protobuf's message tables) counts as startup.
    for _ in $(seq 600); do
      curl -fsS "http://127.0.0.1:$QUERY/api/services" 2>/dev/null | grep -q '"veloflux"' && break
      sleep 0.1
    done
  fi
  callgrind_control -z "$pid" >/dev/null 2>&1
  callgrind_control -i on "$pid" >/dev/null 2>&1
  out=$(wrk -t1 -c"$CONNS" -d"$DURATION" "http://127.0.0.1:$PORT/plain")
  callgrind_control -i off "$pid" >/dev/null 2>&1
  callgrind_control -d "$p" "$pid" >/dev/null 2>&1
  n=$(awk '/requests in/ { print $1 }' <<<"$out")
  bad=$(awk '/Non-2xx|Socket errors/' <<<"$out")
  [ -n "$bad" ] && echo "warning: $p: $bad" >&2
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  ir=$(cat "$OUT/$p.out"* | awk '/^(summary|totals):/ { if ($2 > t) t = $2 } END { print t + 0 }')
  per=$(awk -v ir="$ir" -v n="$n" 'BEGIN { printf "%.0f", ir / n }')
  printf '%s\t%s\t%s\t%s\n' "$p" "$n" "$ir" "$per" >> "$OUT/summary.tsv"
  printf '%-16s %8s requests  %14s instructions  %9s per request\n' "$p" "$n" "$ir" "$per"
done
echo "wrk -t1 -c$CONNS -d$DURATION after a 3 s warm-up; $SIZE-byte answers; veloflux-tracing at sample_ratio $TRACE_RATIO; load average before $load_before, after $(cut -d' ' -f1-3 /proc/loadavg)"
