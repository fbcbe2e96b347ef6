#!/usr/bin/env bash
# Measures what tracing costs VeloFlux in CPU per request, the way docs/performance.md states
# it: the same binary with tracing off, on at sample_ratio 0.01 and on at 1, each alone on one
# core (taskset) in front of the same backend, exporting to a real Jaeger all-in-one over
# OTLP/gRPC; CPU per request is the proxy's utime+stime from /proc/PID/stat over the requests
# wrk completed at full keep-alive load. The variants run in turn within each round
# (interleaved, so drift in machine load hits all alike); the report gives medians over ROUNDS,
# the ratio of each median to tracing off, the median of the per-round ratios (each round's
# figure over the same round's tracing off: the paired figure, less moved by load that drifts
# between rounds) and the load average before and after.
#
#   bench/tracing.sh
#   ROUNDS=15 DURATION=8s VARIANTS="off ratio_0.01" bench/tracing.sh
#
# It installs what it lacks (Debian wrk and nginx-light; Jaeger through make jaeger), listens
# on 127.0.0.1 only and stops only the processes it started, by PID.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck disable=SC1091 # bench/lib.sh is checked on its own
. bench/lib.sh

ROUNDS=${ROUNDS:-5}
DURATION=${DURATION:-10s}
CONNS=${CONNS:-64}
PROXY_CPU=${PROXY_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}
VF_BIN=${VF_BIN:-./veloflux}
JAEGER_BIN=${JAEGER_BIN:-$HOME/.cache/veloflux/jaeger-$(awk '$1 == "github.com/jaegertracing/jaeger" { print $2 }' tools/jaeger/go.mod)}
B1=19201 OTLP=19202 QUERY=19203 QUERY_GRPC=19204
declare -A port=([off]=19211 [ratio_0.01]=19212 [ratio_1]=19213)
declare -A ratio=([ratio_0.01]=0.01 [ratio_1]=1)
read -r -a variants <<<"${VARIANTS:-off ratio_0.01 ratio_1}"
[ "${variants[0]}" = off ] || { echo "VARIANTS must start with off" >&2; exit 2; }

install_missing wrk:wrk nginx:nginx-light taskset:util-linux
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
[ -x "$JAEGER_BIN" ] || make jaeger >/dev/null
[ -x "$VF_BIN" ] || make build BIN="$VF_BIN" >/dev/null

work=$(mktemp -d)
pids=()
trap cleanup EXIT INT TERM

backend_conf "$work/backend.conf" "$work" ok "$B1"

for v in "${variants[@]}"; do
  tracing="tracing: {enabled: false}"
  if [ "$v" != off ]; then
    tracing="tracing: {enabled: true, endpoint: \"127.0.0.1:$OTLP\", insecure: true, sample_ratio: ${ratio[$v]}}"
  fi
  cat > "$work/$v.yaml" <<YAML
global:
  bind_address: "127.0.0.1:${port[$v]}"
  metrics_address: ""
  admin_address: ""
  access_log: false
  log_level: warn
$tracing
pools:
  - name: bench
    backends:
      - address: "127.0.0.1:$B1"
routes:
  - pool: bench
YAML
done

taskset -c "$LOAD_CPU" "$NGINX" -c "$work/backend.conf" -g 'daemon off;' 2>"$work/backend.out" & pids+=($!)
JAEGER_OTLP_PORT=$OTLP JAEGER_QUERY_PORT=$QUERY JAEGER_QUERY_GRPC_PORT=$QUERY_GRPC OTEL_TRACES_EXPORTER=none \
  taskset -c "$LOAD_CPU" "$JAEGER_BIN" --config file:tools/jaeger/config.yaml >"$work/jaeger.out" 2>&1 & pids+=($!)
wait_up "$B1"
for _ in $(seq 100); do curl -fsS -o /dev/null "http://127.0.0.1:$QUERY/api/services" 2>/dev/null && break; sleep 0.1; done

declare -A vf_pid=()
for v in "${variants[@]}"; do
  taskset -c "$PROXY_CPU" "$VF_BIN" -config "$work/$v.yaml" 2>>"$work/$v.log" &
  vf_pid[$v]=$!
  pids+=($!)
  wait_up "${port[$v]}"
done

cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
hz=$(getconf CLK_TCK)
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
rows="$work/rows"
: > "$rows"
for round in $(seq "$ROUNDS"); do
  for v in "${variants[@]}"; do
    before=$(cpu_ticks "${vf_pid[$v]}")
    out=$(taskset -c "$LOAD_CPU" wrk -t1 -c"$CONNS" -d"$DURATION" "http://127.0.0.1:${port[$v]}/")
    after=$(cpu_ticks "${vf_pid[$v]}")
    n=$(awk '/requests in/ { print $1 }' <<<"$out")
    bad=$(awk '/Non-2xx|Socket errors/' <<<"$out")
    [ -n "$bad" ] && echo "warning: $v: $bad" >&2
    us=$(awk -v t=$((after - before)) -v hz="$hz" -v n="$n" 'BEGIN { printf "%.2f", t / hz * 1e6 / n }')
    printf '%s\t%s\t%s\n' "$v" "$us" "$n" >> "$rows"
    printf 'round %s %-11s %9s requests  %6s us CPU/request\n' "$round" "$v" "$n" "$us"
  done
done
load_after=$(cut -d' ' -f1-3 /proc/loadavg)
spans=$(curl -fsS "http://127.0.0.1:$QUERY/api/services" || echo "(query failed)")

echo
echo "medians of $ROUNDS rounds; each VeloFlux alone on CPU $PROXY_CPU; wrk -t1 -c$CONNS -d$DURATION; nginx backend and Jaeger on CPU $LOAD_CPU; $(nproc) cores"
echo "load average before: $load_before; after: $load_after"
echo "Jaeger services: $spans"
paired_report off "${variants[*]}" "$rows"
