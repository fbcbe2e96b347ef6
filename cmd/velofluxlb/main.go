package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"

	"github.com/veloflux/veloflux/config"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	os.Exit(runCLI(os.Args[1:], os.Environ(), os.Stdout, os.Stderr))
}

// runCLI dispatches a command line and returns the process exit code.
func runCLI(args, environ []string, stdout, stderr io.Writer) int {
	cmd := "run"
	if len(args) > 0 && len(args[0]) > 0 && args[0][0] != '-' {
		cmd, args = args[0], args[1:]
	}
	switch cmd {
	case "run", "validate", "health":
		expanded, err := expandSecretFiles(environ)
		if err != nil {
			fmt.Fprintln(stderr, "veloflux:", err)
			return 1
		}
		environ = expanded
	}
	switch cmd {
	case "run":
		fs := newFlagSet("run", environ, stderr)
		readyFile := fs.String("ready-file", "", "write the bound addresses to this file (JSON) once serving")
		path, ok := parseFlags(fs, args, stderr)
		if !ok {
			return 2
		}
		if err := serve(path, *readyFile, environ, stderr); err != nil {
			fmt.Fprintln(stderr, "veloflux:", err)
			return 1
		}
		return 0
	case "validate":
		path, ok := parseConfigFlag("validate", args, environ, stderr)
		if !ok {
			return 2
		}
		return validate(path, environ, stdout, stderr)
	case "health":
		return probe(args, environ, stderr)
	case "version":
		if len(args) > 0 { // -addr, -node or -o: the node's version too
			return runOps(cmd, args, environ, stdout, stderr)
		}
		fmt.Fprintf(stdout, "veloflux %s (%s)\n", version, runtime.Version())
		return 0
	case "status", "members", "routes", "backends", "drain", "undrain", "sessions":
		return runOps(cmd, args, environ, stdout, stderr)
	case "help", "-h", "--help":
		usage(stdout)
		return 0
	default:
		fmt.Fprintf(stderr, "veloflux: unknown command %q\n", cmd)
		usage(stderr)
		return 2
	}
}

func usage(w io.Writer) {
	fmt.Fprint(w, `usage:
  veloflux [run] [-config FILE] [-ready-file PATH]
                                    serve (default command); PATH receives the bound
                                    addresses as JSON once the node serves
  veloflux validate [-config FILE]  check a configuration file and print every problem
  veloflux health [-config FILE]    exit 0 when the node of FILE answers 200 on /readyz, else 1
  veloflux version                  print the version (with -addr or -node, the node's too)
FILE defaults to $VFX_CONFIG, then `+config.DefaultPath+`.

Commands that ask a running node's admin API:
  veloflux status                   the node: version, uptime, serving or draining, requests, cluster
  veloflux members                  cluster members with region, state and version
  veloflux routes                   the routes in use
  veloflux backends                 every backend with its pool, state and why it is out
  veloflux sessions                 sticky sessions moved off a failed or drained backend, by backend
  veloflux drain node               drain the node (it answers 503 and leaves the load balancers)
  veloflux drain backend ID         drain a backend on every node of the cluster
  veloflux undrain [node]           serve again; undrain backend ID brings a backend back
Their flags, before or after the arguments:
  -addr HOST:PORT  the node's admin API (default 127.0.0.1:9000)
  -node NAME       ask this cluster member through the node at -addr
  -o json          print the API's JSON document instead of a table
  -timeout D       how long a request may take (default 10s)
Credentials come from VF_ADMIN_USER and VF_ADMIN_PASS. Exit status: 0 done, 1 the node is
unreachable or refused, 2 the command line is wrong.
`)
}

// newFlagSet is a command's flag set with its -config flag.
func newFlagSet(name string, environ []string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.String("config", config.PathFromEnv(environ), "configuration file")
	return fs
}

// parseFlags parses args into fs and returns the -config value; false means a usage error,
// already printed.
func parseFlags(fs *flag.FlagSet, args []string, stderr io.Writer) (string, bool) {
	if err := fs.Parse(args); err != nil {
		return "", false
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "veloflux %s: unexpected argument %q\n", fs.Name(), fs.Arg(0))
		return "", false
	}
	return fs.Lookup("config").Value.String(), true
}

func parseConfigFlag(name string, args, environ []string, stderr io.Writer) (string, bool) {
	return parseFlags(newFlagSet(name, environ, stderr), args, stderr)
}

// validate prints every problem of the configuration with its key path and exits 1, or
// confirms it and exits 0.
func validate(path string, environ []string, stdout, stderr io.Writer) int {
	cfg, err := config.Load(path, environ)
	if err != nil {
		var fe config.Errors
		if errors.As(err, &fe) {
			for _, e := range fe {
				fmt.Fprintln(stderr, e.Error())
			}
			fmt.Fprintf(stderr, "%s: %d problem(s)\n", path, len(fe))
		} else {
			fmt.Fprintf(stderr, "%s: %v\n", path, err)
		}
		return 1
	}
	fmt.Fprintf(stdout, "%s: OK (%d pools, %d routes)\n", path, len(cfg.Pools), len(cfg.Routes))
	return 0
}
