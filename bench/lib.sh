# Helpers the bench scripts share; sourced, not run.
# shellcheck shell=bash

# install_missing installs the Debian packages of the commands that are missing; each
# argument is COMMAND:PACKAGE, and a command in /usr/sbin counts as present.
install_missing() {
  local need=() pair
  for pair in "$@"; do
    command -v "${pair%%:*}" >/dev/null || [ -x "/usr/sbin/${pair%%:*}" ] || need+=("${pair#*:}")
  done
  if [ ${#need[@]} -gt 0 ]; then
    echo "installing ${need[*]} (Debian packages)"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
  fi
}

# backend_conf FILE DIR BODY PORT... writes the configuration of one nginx worker that answers
# every request on each 127.0.0.1:PORT with 200 and BODY plus a newline, keeping connections
# open for good; its pid and error log go to DIR.
backend_conf() {
  local file=$1 dir=$2 body=$3 servers="" p
  shift 3
  for p in "$@"; do servers+="  server { listen 127.0.0.1:$p; location / { return 200 \"$body\\n\"; } }"$'\n'; done
  cat > "$file" <<NGINX
worker_processes 1;
pid $dir/backend.pid;
error_log $dir/backend-error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_requests 100000000;
$servers}
NGINX
}

# wait_up PORT [PATH] waits until 127.0.0.1:PORT answers PATH (default /) with a 2xx, for at
# most a minute.
wait_up() {
  for _ in $(seq 600); do curl -fsS -o /dev/null "http://127.0.0.1:$1${2:-/}" 2>/dev/null && return 0; sleep 0.1; done
  echo "nothing answers on port $1" >&2
  return 1
}

# paired_report BASE ORDER ROWS prints, for each variant in ORDER (space-separated, BASE
# first), the median of its CPU per request in ROWS (lines "variant<TAB>us"), the ratio of
# that median to BASE's, the median of the per-round ratios (each round's figure over the same
# round's BASE) and the rounds' figures.
paired_report() {
  awk -F'\t' -v base="$1" -v order="$2" '{ v[$1] = v[$1] " " $2 }
    function median(s,   a, n, i, j, t) {
      n = split(s, a, " ")
      for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] + 0 < a[i] + 0) { t = a[i]; a[i] = a[j]; a[j] = t }
      return (n % 2) ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
    }
    END {
      printf "%-11s %12s %10s %14s   %s\n", "variant", "CPU us/req", "x " base, "paired x " base, "per round"
      b = median(v[base])
      split(v[base], bs, " ")
      n = split(order, names, " ")
      for (i = 1; i <= n; i++) {
        c = median(v[names[i]])
        r = ""
        m = split(v[names[i]], vals, " ")
        for (j = 1; j <= m; j++) r = r " " vals[j] / bs[j]
        printf "%-11s %12.2f %10.3f %14.3f  %s\n", names[i], c, c / b, median(r), v[names[i]]
      }
    }' "$3"
}

# cleanup stops the processes whose PIDs the script put in pids, then removes its work
# directory; scripts set work and pids and trap it on EXIT, INT and TERM.
# shellcheck disable=SC2154 # work and pids are the sourcing script's
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}

# bench_pools prints the pools and routes of a VeloFlux configuration that sends every request
# round robin to the backends 127.0.0.1:PORT given as arguments.
bench_pools() {
  printf 'pools:\n  - name: bench\n    algorithm: round_robin\n    backends:\n'
  for p in "$@"; do printf '      - address: "127.0.0.1:%s"\n' "$p"; done
  printf 'routes:\n  - pool: bench\n'
}
