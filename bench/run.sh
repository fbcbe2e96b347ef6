#!/usr/bin/env bash
# Compares VeloFlux, nginx and HAProxy proxying to the same two backends on loopback.
# Each round runs wrk against each proxy in turn (interleaved, so drift in machine load hits
# all three alike) and the report gives the median requests/s and p99 per proxy and the ratios.
#
#   bench/run.sh                 # 3 rounds x 10 s per proxy
#   ROUNDS=5 DURATION=20s CONNS=128 bench/run.sh
#
# Everything listens on 127.0.0.1 only; every process started here is stopped by PID.
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10s}
CONNS=${CONNS:-64}
THREADS=${THREADS:-2}
PATH_=${BENCH_PATH:-/plain}
OUT=${OUT:-bench/results}
VF_PORT=18080 NGINX_PORT=18081 HAPROXY_PORT=18082 B1=19101 B2=19102

need=()
command -v wrk >/dev/null || need+=(wrk)
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || need+=(nginx-light)
command -v haproxy >/dev/null || [ -x /usr/sbin/haproxy ] || need+=(haproxy)
if [ ${#need[@]} -gt 0 ]; then
  echo "installing ${need[*]} (Debian packages)"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
HAPROXY=$(command -v haproxy || echo /usr/sbin/haproxy)

work=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT INT TERM

mkdir -p "$OUT"
[ -x ./veloflux ] || make build >/dev/null
go build -o "$work/backend" ./examples/backend

"$work/backend" -addr 127.0.0.1:$B1 -name b1 2>/dev/null & pids+=($!)
"$work/backend" -addr 127.0.0.1:$B2 -name b2 2>/dev/null & pids+=($!)

cat > "$work/veloflux.yaml" <<YAML
global:
  bind_address: "127.0.0.1:$VF_PORT"
  metrics_address: ""
  admin_address: ""
  access_log: false
  log_level: warn
pools:
  - name: bench
    algorithm: round_robin
    backends:
      - address: "127.0.0.1:$B1"
      - address: "127.0.0.1:$B2"
routes:
  - pool: bench
YAML

cat > "$work/nginx.conf" <<NGINX
worker_processes auto;
pid $work/nginx.pid;
error_log $work/nginx-error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
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
  nbthread $(nproc)
  maxconn 4096
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

./veloflux -config "$work/veloflux.yaml" 2>"$work/veloflux.log" & pids+=($!)
"$NGINX" -c "$work/nginx.conf" -g 'daemon off;' 2>"$work/nginx.out" & pids+=($!)
"$HAPROXY" -f "$work/haproxy.cfg" -db 2>"$work/haproxy.out" & pids+=($!)

wait_up() {
  for _ in $(seq 100); do curl -fsS -o /dev/null "http://127.0.0.1:$1$PATH_" 2>/dev/null && return 0; sleep 0.1; done
  echo "nothing answers on port $1" >&2; return 1
}
for port in $B1 $B2 $VF_PORT $NGINX_PORT $HAPROXY_PORT; do wait_up "$port"; done

declare -A port=([veloflux]=$VF_PORT [nginx]=$NGINX_PORT [haproxy]=$HAPROXY_PORT)
results="$OUT/$(date -u +%Y%m%dT%H%M%SZ).tsv"
printf 'round\tproxy\trequests_per_s\tp99_ms\n' > "$results"

# wrk prints latency with a unit; turn it into milliseconds.
to_ms() { awk -v v="$1" 'BEGIN { n=v+0; if (v ~ /us$/) n/=1000; else if (v ~ /ms$/) ; else if (v ~ /s$/) n*=1000; printf "%.3f", n }'; }

for round in $(seq "$ROUNDS"); do
  for p in veloflux nginx haproxy; do
    out=$(wrk -t"$THREADS" -c"$CONNS" -d"$DURATION" --latency "http://127.0.0.1:${port[$p]}$PATH_")
    rps=$(awk '/^Requests\/sec:/ { print $2 }' <<<"$out")
    p99=$(awk '$1 == "99%" { print $2 }' <<<"$out")
    non2xx=$(awk '/Non-2xx/ { print $NF }' <<<"$out")
    [ -n "$non2xx" ] && echo "warning: $p answered $non2xx non-2xx responses" >&2
    printf '%s\t%s\t%s\t%s\n' "$round" "$p" "$rps" "$(to_ms "$p99")" >> "$results"
    printf 'round %s %-9s %10s req/s  p99 %s\n' "$round" "$p" "$rps" "$p99"
  done
done

echo
echo "median of $ROUNDS rounds, wrk -t$THREADS -c$CONNS -d$DURATION, $(nproc) cores, path $PATH_"
awk -F'\t' 'NR > 1 { rps[$2] = rps[$2] " " $3; p99[$2] = p99[$2] " " $4 }
  function median(s,   a, n, i, j, t) {
    n = split(s, a, " ")
    for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] + 0 < a[i] + 0) { t = a[i]; a[i] = a[j]; a[j] = t }
    return (n % 2) ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
  }
  END {
    for (p in rps) { R[p] = median(rps[p]); P[p] = median(p99[p]) }
    printf "%-9s %12s %10s\n", "proxy", "req/s", "p99 ms"
    split("veloflux nginx haproxy", order, " ")
    for (i = 1; i <= 3; i++) printf "%-9s %12.0f %10.2f\n", order[i], R[order[i]], P[order[i]]
    printf "veloflux/nginx   throughput %.2f  p99 %.2f\n", R["veloflux"] / R["nginx"], P["veloflux"] / P["nginx"]
    printf "veloflux/haproxy throughput %.2f  p99 %.2f\n", R["veloflux"] / R["haproxy"], P["veloflux"] / P["haproxy"]
  }' "$results"
echo "raw results: $results"
