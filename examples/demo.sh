#!/usr/bin/env bash
# Starts a Consul dev agent, three demo backends (two static, one registered in Consul) and
# two clustered VeloFlux nodes on loopback, prints what to try, and stops everything on Ctrl-C. Run it with
# `make demo`, which builds ./veloflux and the cached Consul binary first.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p bin
go build -o bin/demo-backend ./examples/backend

pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "${consul_dir:-}"
}
trap cleanup EXIT INT TERM

CONSUL=${VELOFLUX_CONSUL_BIN:-$HOME/.cache/veloflux/consul-1.13.9}
consul_dir=$(mktemp -d)
"$CONSUL" agent -dev -bind 127.0.0.1 -client 127.0.0.1 -http-port 18500 -dns-port -1 -grpc-port -1 \
  -serf-lan-port 18301 -serf-wan-port 18302 -server-port 18300 -data-dir "$consul_dir" >/dev/null & pids+=($!)
for _ in $(seq 100); do
  [ -n "$(curl -fsS http://127.0.0.1:18500/v1/status/leader 2>/dev/null | tr -d '"')" ] && break
  sleep 0.1
done

bin/demo-backend -addr 127.0.0.1:9101 -name backend-1 & pids+=($!)
bin/demo-backend -addr 127.0.0.1:9102 -name backend-2 & pids+=($!)
bin/demo-backend -addr 127.0.0.1:9103 -name catalog-1 & pids+=($!)
curl -fsS -X PUT http://127.0.0.1:18500/v1/agent/service/register -d '{
  "ID": "catalog-1", "Name": "catalog", "Address": "127.0.0.1", "Port": 9103,
  "Tags": ["veloflux.enable=true", "veloflux.route=/catalog", "veloflux.strip_prefix=true"],
  "Check": {"HTTP": "http://127.0.0.1:9103/health", "Interval": "2s", "Status": "passing"}
}'
VF_ADMIN_USER=admin VF_ADMIN_PASS=demo ./veloflux -config examples/demo.yaml & pids+=($!)
vf_pid=$!
# The second node: same file, its own addresses and name, joined to the first.
VF_ADMIN_USER=admin VF_ADMIN_PASS=demo VFX_GLOBAL__BIND_ADDRESS=127.0.0.1:8001 \
  VFX_GLOBAL__METRICS_ADDRESS=127.0.0.1:8081 VFX_GLOBAL__ADMIN_ADDRESS=127.0.0.1:9001 \
  VFX_CLUSTER__NAME=demo-b VFX_CLUSTER__BIND_ADDRESS=127.0.0.1:17947 VFX_CLUSTER__SEEDS=127.0.0.1:17946 \
  ./veloflux -config examples/demo.yaml & pids+=($!)

for port in 8080 8081; do
  for _ in $(seq 50); do
    curl -fsS -o /dev/null "http://127.0.0.1:$port/readyz" 2>/dev/null && break
    sleep 0.1
  done
done

cat <<'MSG'

VeloFlux demo is running (Ctrl-C stops it):
  curl -s http://127.0.0.1:8000/                      # round robin over backend-1 and backend-2
  curl -s http://127.0.0.1:8000/api/users             # /api stripped before the backend
  curl -s http://127.0.0.1:8000/catalog/items         # routed from Consul tags (service "catalog")
  curl -si -H 'Host: app.localhost' http://127.0.0.1:8000/   # sticky: note the vf_session cookie
  curl -s -H 'Host: app.localhost' -H 'Cookie: vf_session=...' http://127.0.0.1:8001/   # same backend on node 2
  curl -s http://127.0.0.1:8080/metrics | grep ^veloflux_
  curl -s -u admin:demo http://127.0.0.1:9000/admin/pools
  curl -s -u admin:demo -X POST http://127.0.0.1:9000/admin/drain   # then /admin/undrain
  curl -s -u admin:demo http://127.0.0.1:9001/admin/status            # node 2: cluster members
  curl -s -u admin:demo -X POST 'http://127.0.0.1:9000/admin/backends/drain?backend=127.0.0.1:9101'
  curl -s -u admin:demo http://127.0.0.1:9001/admin/health            # drained on node 2 too
MSG
wait "$vf_pid"
