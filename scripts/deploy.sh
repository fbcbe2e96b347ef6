#!/usr/bin/env bash
# Zero-downtime rolling upgrade of a VeloFlux cluster, one node at a time.
#
#   DEPLOYMENT_MODE=compose scripts/deploy.sh [IMAGE]   # docker-compose.yml: drain, recreate, ready, next
#                                                       # (no IMAGE: rebuild from the Dockerfile)
#   DEPLOYMENT_MODE=swarm   scripts/deploy.sh IMAGE     # docker service update: Swarm rolls per update_config
#   DEPLOYMENT_MODE=nomad   scripts/deploy.sh IMAGE     # nomad job run: Nomad rolls per the update block
#   DEPLOYMENT_MODE=command NODES='...' REPLACE_CMD='...' scripts/deploy.sh
#
# compose and command modes do each step themselves, for each node in turn:
#   1. the node must be ready (/readyz 200) before anything is done to it;
#   2. drain it through the admin API (POST /admin/drain: /readyz turns 503, load balancers
#      move away, requests in flight go on);
#   3. wait until veloflux_inflight_requests is 0 (at most DRAIN_WAIT, default 30s);
#   4. replace it (compose: docker compose up -d --no-deps --force-recreate NODE; command:
#      REPLACE_CMD with {node} replaced by the node's name);
#   5. wait for /readyz 200 (at most READY_WAIT, default 120s). A node that does not become
#      ready stops the rollout with exit status 1: the nodes after it are left as they were.
#
# NODES lists the nodes as NAME=ADMIN_ADDR,METRICS_ADDR separated by spaces; compose mode
# defaults to the three nodes of docker-compose.yml. Credentials: VF_ADMIN_USER and
# VF_ADMIN_PASS (compose mode reads deploy/compose/veloflux.env when they are unset).
set -euo pipefail
cd "$(dirname "$0")/.."

mode=${DEPLOYMENT_MODE:-}
image=${1:-}
DRAIN_WAIT=${DRAIN_WAIT:-30}
READY_WAIT=${READY_WAIT:-120}

log() { printf '%s deploy: %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
die() { log "$*"; exit 1; }

# ready METRICS_ADDR: /readyz answers 200.
ready() { [ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 3 "http://$1/readyz")" = 200 ]; }

# inflight METRICS_ADDR: the node's veloflux_inflight_requests, summed over its series.
inflight() {
  curl -fsS --max-time 3 "http://$1/metrics" |
    awk '$1 ~ /^veloflux_inflight_requests($|\{)/ { n += $2 } END { printf "%d\n", n }'
}

# roll: steps 1-5 above for every node of NODES, replacing each with replace NAME.
roll() {
  local spec name admin metrics deadline
  [ -n "${NODES:-}" ] || die "NODES is empty"
  for spec in $NODES; do
    name=${spec%%=*}
    admin=${spec#*=}
    metrics=${admin#*,}
    admin=${admin%%,*}
    if [ -z "$name" ] || [ -z "$admin" ] || [ -z "$metrics" ] || [ "$metrics" = "${spec#*=}" ]; then
      die "bad node $spec: want NAME=ADMIN_ADDR,METRICS_ADDR"
    fi

    ready "$metrics" || die "$name is not ready before its upgrade ($metrics/readyz): refusing to touch it"
    log "$name: draining"
    curl -fsS -o /dev/null --max-time 10 -u "${VF_ADMIN_USER:-}:${VF_ADMIN_PASS:-}" -X POST "http://$admin/admin/drain" ||
      die "$name: the admin API at $admin refused the drain"
    deadline=$((SECONDS + DRAIN_WAIT))
    while [ "$(inflight "$metrics" || echo 0)" -gt 0 ] && [ "$SECONDS" -lt "$deadline" ]; do
      sleep 0.1
    done
    log "$name: replacing"
    replace "$name" || die "$name: replacing it failed"
    deadline=$((SECONDS + READY_WAIT))
    until ready "$metrics"; do
      [ "$SECONDS" -lt "$deadline" ] ||
        die "$name did not become ready within ${READY_WAIT}s: stopping the rollout, the nodes after it are untouched"
      sleep 0.1
    done
    log "$name: ready"
  done
  log "every node upgraded"
}

case "$mode" in
  compose)
    if [ -z "${VF_ADMIN_PASS:-}" ]; then
      VF_ADMIN_USER=$(sed -n 's/^VF_ADMIN_USER=//p' deploy/compose/veloflux.env)
      VF_ADMIN_PASS=$(sed -n 's/^VF_ADMIN_PASS=//p' deploy/compose/veloflux.env)
    fi
    NODES=${NODES:-veloflux-1=127.0.0.1:9000,127.0.0.1:8080 veloflux-2=127.0.0.1:9001,127.0.0.1:8081 veloflux-3=127.0.0.1:9002,127.0.0.1:8082}
    # With IMAGE (e.g. loaded from make image's tarball), run it; without, rebuild from the
    # Dockerfile. COMPOSE names the client: docker compose, or docker-compose.
    build=--build
    if [ -n "$image" ]; then
      export VELOFLUX_IMAGE=$image
      build=--no-build
    fi
    replace() { ${COMPOSE:-docker compose} up -d --no-deps --force-recreate "$build" "$1"; }
    roll
    ;;
  command)
    [ -n "${REPLACE_CMD:-}" ] || die "command mode needs REPLACE_CMD"
    replace() { bash -c "${REPLACE_CMD//\{node\}/$1}"; }
    roll
    ;;
  swarm)
    [ -n "$image" ] || die "swarm mode needs the new IMAGE"
    # One node at a time, stop-first (each task drains on SIGTERM within stop_grace_period),
    # monitored and rolled back on failure: update_config in deploy/swarm/veloflux-stack.yml.
    # --detach=false follows the rollout and fails when Swarm does.
    docker service update --detach=false --image "$image" "${STACK:-veloflux}_veloflux"
    ;;
  nomad)
    [ -n "$image" ] || die "nomad mode needs the new IMAGE"
    # One node at a time (update.max_parallel = 1), each deregistered, then drained within
    # kill_timeout: the update block of deploy/nomad/veloflux.nomad.hcl.
    nomad job run -var "image=$image" deploy/nomad/veloflux.nomad.hcl
    ;;
  *)
    die "DEPLOYMENT_MODE must be compose, swarm, nomad or command (got '${mode}')"
    ;;
esac
