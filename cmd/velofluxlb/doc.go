// Command veloflux is the VeloFlux edge proxy. It loads the YAML configuration, wires the
// concrete health checker, session store and metrics into the proxy, serves the proxy,
// metrics and admin listeners, reloads on SIGHUP or file change, and drains on SIGTERM. It is
// also the operator's client of a running node's admin API (ops.go, over admin/client).
//
// Usage:
//
//	veloflux [run] [-config FILE]     serve (default command)
//	veloflux validate [-config FILE]  check a configuration file and print every problem
//	veloflux health [-config FILE]    exit 0 when the node of FILE answers 200 on /readyz
//	veloflux version                  print the version
//	veloflux status | members | routes | backends | sessions
//	veloflux drain node | drain backend ID | undrain [node] | undrain backend ID
//
// FILE defaults to $VFX_CONFIG, then /etc/veloflux/config.yaml. The admin commands take
// -addr HOST:PORT (default 127.0.0.1:9000), -node NAME (a peer, through the node at -addr),
// -o json and -timeout, and read credentials from VF_ADMIN_USER and VF_ADMIN_PASS; they exit
// 1 with a one-line error when the node is unreachable or refuses, 2 on a bad command line.
package main
