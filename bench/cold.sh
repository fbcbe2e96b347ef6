#!/usr/bin/env bash
# The cold facts of docs/performance.md: the size of the binary `make build` makes, the time
# from start to ready with ROUTES routes, and configuration reloads that swap a table of
# BACKENDS backends while requests run at RATE per second (bench/coldfacts), plus the Go
# benchmark of a reload alone (BenchmarkReload10000Backends in cmd/velofluxlb).
#
#   bench/cold.sh
#   STARTS=20 DURATION=20s bench/cold.sh
#
# VeloFlux runs alone on PROXY_CPU (taskset), the load and the backends on LOAD_CPU. It
# listens on 127.0.0.1 only and stops only the processes it started.
set -euo pipefail
cd "$(dirname "$0")/.."

VF_BIN=${VF_BIN:-./veloflux}
ROUTES=${ROUTES:-100}
STARTS=${STARTS:-10}
BACKENDS=${BACKENDS:-10000}
RATE=${RATE:-2000}
CONNS=${CONNS:-16}
DURATION=${DURATION:-10s}
EVERY=${EVERY:-2s}
PROXY_CPU=${PROXY_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}
command -v taskset >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq util-linux >/dev/null; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT INT TERM
[ -x "$VF_BIN" ] || make build BIN="$VF_BIN" >/dev/null
go build -o "$work/coldfacts" ./bench/coldfacts

echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg); $(nproc) cores"
size=$(stat -c %s "$VF_BIN")
awk -v s="$size" 'BEGIN { printf "binary: %d bytes (%.1f MiB; goal: under 30 MB)\n", s, s / 1048576 }'
taskset -c "$LOAD_CPU" "$work/coldfacts" ready -bin "$VF_BIN" -taskset "$PROXY_CPU" -routes "$ROUTES" -n "$STARTS"
for all in false true; do
  taskset -c "$LOAD_CPU" "$work/coldfacts" reload -bin "$VF_BIN" -taskset "$PROXY_CPU" -backends "$BACKENDS" \
    -rate "$RATE" -c "$CONNS" -duration "$DURATION" -every "$EVERY" -all="$all"
done
go test -run '^$' -bench 'Reload10000Backends' -benchtime 20x ./cmd/velofluxlb/ | grep '^Benchmark'
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
