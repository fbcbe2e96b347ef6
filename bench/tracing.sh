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

need=()
command -v wrk >/dev/null || need+=(wrk)
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || need+=(nginx-light)
command -v taskset >/dev/null || need+=(util-linux)
if [ ${#need[@]} -gt 0 ]; then
  echo "installing ${need[*]} (Debian packages)"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
[ -x "$JAEGER_BIN" ] || make jaeger >/dev/null
[ -x "$VF_BIN" ] || make build BIN="$VF_BIN" >/dev/null

work=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT INT TERM

cat > "$work/backend.conf" <<NGINX
worker_processes 1;
pid $work/backend.pid;
error_log $work/backend-error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_requests 100000000;
  server { listen 127.0.0.1:$B1; location / { return 200 "ok\n"; } }
}
NGINX

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

wait_up() {
  for _ in $(seq 100); do curl -fsS -o /dev/null "http://127.0.0.1:$1/" 2>/dev/null && return 0; sleep 0.1; done
  echo "nothing answers on port $1" >&2
  return 1
}

taskset -c "$LOAD_CPU" "$NGINX" -c "$work/backend.conf" -g 'daemon off;' 2>"$work/backend.out" & pids+=($!)
JAEGER_OTLP_PORT=$OTLP JAEGER_QUERY_PORT=$QUERY JAEGER_QUERY_GRPC_PORT=$QUERY_GRPC OTEL_TRACES_EXPORTER=none \
  taskset -c "$LOAD_CPU" "$JAEGER_BIN" --config file:bench/jaeger.yaml >"$work/jaeger.out" 2>&1 & pids+=($!)
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
awk -F'\t' -v order="${variants[*]}" '{ v[$1] = v[$1] " " $2 }
  function median(s,   a, n, i, j, t) {
    n = split(s, a, " ")
    for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] + 0 < a[i] + 0) { t = a[i]; a[i] = a[j]; a[j] = t }
    return (n % 2) ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
  }
  END {
    printf "%-11s %12s %10s %14s   %s\n", "tracing", "CPU us/req", "x off", "paired x off", "per round"
    off = median(v["off"])
    split(v["off"], offs, " ")
    n = split(order, names, " ")
    for (i = 1; i <= n; i++) {
      c = median(v[names[i]])
      r = ""
      m = split(v[names[i]], vals, " ")
      for (j = 1; j <= m; j++) r = r " " vals[j] / offs[j]
      printf "%-11s %12.2f %10.3f %14.3f  %s\n", names[i], c, c / off, median(r), v[names[i]]
    }
  }' "$rows"
