#!/usr/bin/env bash
# Starts two demo backends and VeloFlux on loopback, prints what to try, and stops all three
# on Ctrl-C. Run it with `make demo` (which builds ./veloflux first).
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p bin
go build -o bin/demo-backend ./examples/backend

pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT INT TERM

bin/demo-backend -addr 127.0.0.1:9101 -name backend-1 & pids+=($!)
bin/demo-backend -addr 127.0.0.1:9102 -name backend-2 & pids+=($!)
VF_ADMIN_USER=admin VF_ADMIN_PASS=demo ./veloflux -config examples/demo.yaml & pids+=($!)

for _ in $(seq 50); do
  curl -fsS -o /dev/null http://127.0.0.1:8080/readyz 2>/dev/null && break
  sleep 0.1
done

cat <<'MSG'

VeloFlux demo is running (Ctrl-C stops it):
  curl -s http://127.0.0.1:8000/                      # round robin over backend-1 and backend-2
  curl -s http://127.0.0.1:8000/api/users             # /api stripped before the backend
  curl -si -H 'Host: app.localhost' http://127.0.0.1:8000/   # sticky: note the vf_session cookie
  curl -s http://127.0.0.1:8080/metrics | grep ^veloflux_
  curl -s -u admin:demo http://127.0.0.1:9000/admin/pools
  curl -s -u admin:demo -X POST http://127.0.0.1:9000/admin/drain   # then /admin/undrain
MSG
wait "${pids[2]}"
