#!/usr/bin/env bash
# Measures VeloFlux over HTTP/1.1, HTTP/2 and HTTP/3 on its TLS listener, proxying to the same
# two plain HTTP/1.1 backends on loopback. bench/loadgen drives every protocol with the same Go
# clients (one connection each, one request at a time) and request count, so the figures
# differ only by protocol (the Debian h2load has no HTTP/3). Each round runs the three protocols in turn (interleaved, so drift in machine load
# hits all alike); the report gives the median requests/s and VeloFlux's CPU time per request,
# read from /proc/<pid>/stat around each run.
#
#   bench/protocols.sh                       # 3 rounds x 100,000 requests per protocol
#   ROUNDS=5 REQUESTS=200000 CLIENTS=64 bench/protocols.sh
#
# Everything listens on 127.0.0.1 only; every process started here is stopped by PID.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck disable=SC1091 # bench/lib.sh is checked on its own
. bench/lib.sh

ROUNDS=${ROUNDS:-3}
REQUESTS=${REQUESTS:-100000}
CLIENTS=${CLIENTS:-64}
PATH_=${BENCH_PATH:-/plain}
OUT=${OUT:-bench/results}
VF_HTTP=18090 VF_TLS=18443 B1=19111 B2=19112

work=$(mktemp -d)
pids=()
trap cleanup EXIT INT TERM

mkdir -p "$OUT"
[ -x ./veloflux ] || make build >/dev/null
go build -o "$work/backend" ./examples/backend
go build -o "$work/loadgen" ./bench/loadgen
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=localhost \
  -addext subjectAltName=DNS:localhost,IP:127.0.0.1 -keyout "$work/key.pem" -out "$work/cert.pem" 2>/dev/null

"$work/backend" -addr 127.0.0.1:$B1 -name b1 2>/dev/null & pids+=($!)
"$work/backend" -addr 127.0.0.1:$B2 -name b2 2>/dev/null & pids+=($!)

cat > "$work/veloflux.yaml" <<YAML
global:
  bind_address: "127.0.0.1:$VF_HTTP"
  tls_bind_address: "127.0.0.1:$VF_TLS"
  metrics_address: ""
  admin_address: ""
  access_log: false
  log_level: warn
  http3: true
  tls:
    cert_file: $work/cert.pem
    key_file: $work/key.pem
$(bench_pools "$B1" "$B2")
YAML

./veloflux -config "$work/veloflux.yaml" 2>"$work/veloflux.log" & vf=$!; pids+=("$vf")
for _ in $(seq 100); do curl -fsSk -o /dev/null "https://127.0.0.1:$VF_TLS$PATH_" 2>/dev/null && break; sleep 0.1; done
curl -fsSk -o /dev/null "https://127.0.0.1:$VF_TLS$PATH_" || { echo "VeloFlux does not answer; log:" >&2; cat "$work/veloflux.log" >&2; exit 1; }

# cpu_ticks is the user plus system CPU time VeloFlux has used, in clock ticks.
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$vf/stat"; }
hz=$(getconf CLK_TCK)

results="$OUT/protocols-$(date -u +%Y%m%dT%H%M%SZ).tsv"
printf 'round\tprotocol\trequests_per_s\tcpu_us_per_request\tsucceeded\n' > "$results"

for round in $(seq "$ROUNDS"); do
  for p in h1 h2 h3; do
    before=$(cpu_ticks)
    read -r _ rps ok _ < <("$work/loadgen" -proto "$p" -n "$REQUESTS" -c "$CLIENTS" -insecure "https://127.0.0.1:$VF_TLS$PATH_")
    after=$(cpu_ticks)
    [ "$ok" = "$REQUESTS" ] || echo "warning: $p: $ok of $REQUESTS requests succeeded" >&2
    us=$(awk -v t=$((after - before)) -v hz="$hz" -v n="$ok" 'BEGIN { printf "%.1f", t / hz * 1e6 / n }')
    printf '%s\t%s\t%s\t%s\t%s\n' "$round" "$p" "$rps" "$us" "$ok" >> "$results"
    printf 'round %s %-8s %10s req/s  %6s us CPU/request\n' "$round" "$p" "$rps" "$us"
  done
done

echo
echo "median of $ROUNDS rounds, loadgen -n $REQUESTS -c $CLIENTS, $(nproc) cores, path $PATH_"
awk -F'\t' 'NR > 1 { rps[$2] = rps[$2] " " $3; cpu[$2] = cpu[$2] " " $4 }
  function median(s,   a, n, i, j, t) {
    n = split(s, a, " ")
    for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] + 0 < a[i] + 0) { t = a[i]; a[i] = a[j]; a[j] = t }
    return (n % 2) ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
  }
  END {
    printf "%-9s %12s %18s\n", "protocol", "req/s", "CPU us/request"
    split("h1 h2 h3", order, " ")
    for (i = 1; i <= 3; i++) printf "%-9s %12.0f %18.1f\n", order[i], median(rps[order[i]]), median(cpu[order[i]])
  }' "$results"
echo "raw rows: $results"
