// Command veloflux is the VeloFlux edge proxy. It loads the YAML configuration, wires the
// concrete health checker, session store and metrics into the proxy, serves the proxy,
// metrics and admin listeners, reloads on SIGHUP or file change, and drains on SIGTERM.
//
// Usage:
//
//	veloflux [run] [-config FILE]     serve (default command)
//	veloflux validate [-config FILE]  check a configuration file and print every problem
//	veloflux version                  print the version
//
// FILE defaults to $VFX_CONFIG, then /etc/veloflux/config.yaml.
package main
