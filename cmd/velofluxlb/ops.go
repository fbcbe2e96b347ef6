package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/veloflux/veloflux/admin/client"
)

// opsFlags are the flags every command talking to the admin API takes.
type opsFlags struct {
	addr, output, node string
	timeout            time.Duration
}

// usageError is a command line that does not parse; it exits 2.
type usageError struct {
	msg string
	err error // the flag package's error, if it was one
}

func (e usageError) Error() string { return e.msg }
func (e usageError) Unwrap() error { return e.err }

// parseOps parses flags and positional arguments in any order (`drain backend ID -node b`).
func parseOps(name string, args []string, help io.Writer) (opsFlags, []string, error) {
	var f opsFlags
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard) // errors are reported in one line by runOps
	fs.StringVar(&f.addr, "addr", "127.0.0.1:9000", "admin API address of the node (host:port)")
	fs.StringVar(&f.output, "o", "table", "output: table or json")
	fs.StringVar(&f.node, "node", "", "ask this cluster member through the node at -addr")
	fs.DurationVar(&f.timeout, "timeout", 10*time.Second, "how long one request may take")
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				fmt.Fprintf(help, "usage: veloflux %s\n", opsUsage[name])
				fs.SetOutput(help)
				fs.PrintDefaults()
			}
			return f, nil, usageError{err.Error(), err}
		}
		args = fs.Args()
		if len(args) == 0 {
			break
		}
		pos, args = append(pos, args[0]), args[1:]
	}
	if f.output != "table" && f.output != "json" {
		return f, nil, usageError{msg: fmt.Sprintf("-o %q: want table or json", f.output)}
	}
	return f, pos, nil
}

// runOps runs one admin API command and returns the exit code: 0, 1 when the node cannot be
// reached or refuses, 2 for a command line that does not parse. Errors are one line.
func runOps(cmd string, args, environ []string, stdout, stderr io.Writer) int {
	f, pos, err := parseOps(cmd, args, stdout)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err == nil {
		err = ops(cmd, f, pos, environ, stdout)
	}
	var ue usageError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ue):
		fmt.Fprintf(stderr, "veloflux %s: %v\n", cmd, err)
		fmt.Fprintf(stderr, "usage: veloflux %s\n", opsUsage[cmd])
		return 2
	default:
		fmt.Fprintf(stderr, "veloflux %s: %s\n", cmd, strings.ReplaceAll(err.Error(), "\n", " "))
		return 1
	}
}

var opsUsage = map[string]string{
	"status":   "status [-addr HOST:PORT] [-node NAME] [-o json]",
	"members":  "members [-addr HOST:PORT] [-node NAME] [-o json]",
	"routes":   "routes [-addr HOST:PORT] [-node NAME] [-o json]",
	"backends": "backends [-addr HOST:PORT] [-node NAME] [-o json]",
	"sessions": "sessions [-addr HOST:PORT] [-node NAME] [-o json]",
	"drain":    "drain node | drain backend ID  [-addr HOST:PORT] [-node NAME] [-o json]",
	"undrain":  "undrain [node] | undrain backend ID  [-addr HOST:PORT] [-node NAME] [-o json]",
	"version":  "version [-addr HOST:PORT] [-node NAME] [-o json]",
}

func ops(cmd string, f opsFlags, pos, environ []string, stdout io.Writer) error {
	drain := cmd == "drain"
	var backend string
	switch cmd {
	case "drain", "undrain":
		switch {
		case len(pos) == 0 && !drain, len(pos) == 1 && pos[0] == "node":
		case len(pos) == 2 && pos[0] == "backend" && pos[1] != "":
			backend = pos[1]
		default:
			return usageError{msg: fmt.Sprintf("want node or backend ID, got %q", strings.Join(pos, " "))}
		}
	default:
		if len(pos) > 0 {
			return usageError{msg: fmt.Sprintf("unexpected argument %q", pos[0])}
		}
	}
	c, err := client.New(f.addr, getenv(environ, "VF_ADMIN_USER"), getenv(environ, "VF_ADMIN_PASS"), f.node, f.timeout)
	if err != nil {
		return usageError{msg: err.Error()}
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), f.timeout)
	defer cancel()

	if f.output == "json" {
		var raw json.RawMessage
		switch cmd {
		case "drain", "undrain":
			if backend != "" {
				raw, err = c.DrainBackend(ctx, backend, drain)
			} else {
				raw, err = c.Drain(ctx, drain)
			}
		case "backends":
			raw, err = c.Raw(ctx, "GET", "pools", nil)
		case "members", "version":
			raw, err = c.Raw(ctx, "GET", "status", nil)
		default:
			raw, err = c.Raw(ctx, "GET", cmd, nil)
		}
		if err != nil {
			return err
		}
		var buf bytes.Buffer
		if err := json.Indent(&buf, raw, "", "  "); err != nil {
			return err
		}
		buf.WriteByte('\n')
		_, err = stdout.Write(buf.Bytes())
		return err
	}

	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	defer tw.Flush()
	switch cmd {
	case "status":
		return printStatus(ctx, c, tw)
	case "version":
		st, err := c.Status(ctx)
		if err != nil {
			return err
		}
		fmt.Fprintf(tw, "client\tveloflux %s (%s)\n", version, runtime.Version())
		fmt.Fprintf(tw, "node\tveloflux %s\n", st.Version)
		return nil
	case "members":
		st, err := c.Status(ctx)
		if err != nil {
			return err
		}
		if st.Cluster == nil {
			return errors.New("the node runs alone (cluster.enabled is false)")
		}
		fmt.Fprintln(tw, "NAME\tREGION\tADDRESS\tSTATE\tDRAINING\tVERSION")
		for _, m := range st.Cluster.Members {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%t\t%s\n", m.Name, dash(m.Region), m.Addr, m.State, m.Draining, m.Version)
		}
	case "routes":
		routes, err := c.Routes(ctx)
		if err != nil {
			return err
		}
		fmt.Fprintln(tw, "HOST\tPATH\tSTRIP\tPOOL\tGEO")
		for _, r := range routes {
			host, path := r.Host, r.PathPrefix
			if host == "" {
				host = "*"
			}
			if path == "" {
				path = "/"
			}
			fmt.Fprintf(tw, "%s\t%s\t%t\t%s\t%s\n", host, path, r.StripPrefix, r.Pool, dash(r.Geo))
		}
	case "backends":
		pools, err := c.Pools(ctx)
		if err != nil {
			return err
		}
		health, err := c.Health(ctx)
		if err != nil {
			return err
		}
		why := map[string]client.Health{}
		for _, h := range health {
			why[h.Backend] = h
		}
		fmt.Fprintln(tw, "POOL\tBACKEND\tREGION\tWEIGHT\tACTIVE\tSTATE\tWHY")
		for _, p := range pools {
			for _, b := range p.Backends {
				h := why[b.ID]
				state := "up"
				switch {
				case h.Drained:
					state = "drained"
				case !b.Healthy:
					state = "down"
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%s\t%s\n", p.Name, b.ID, dash(b.Region), b.Weight, b.Active, state, dash(h.Why))
			}
		}
	case "sessions":
		s, err := c.Sessions(ctx)
		if err != nil {
			return err
		}
		fmt.Fprintln(tw, "BACKEND\tPINS")
		for _, b := range s.ByBackend {
			fmt.Fprintf(tw, "%s\t%d\n", b.Backend, b.Pins)
		}
		fmt.Fprintf(tw, "total (%s)\t%d\n", s.Scope, s.Total)
	case "drain", "undrain":
		verb := map[bool]string{true: "drained", false: "undrained"}[drain]
		if backend != "" {
			if _, err := c.DrainBackend(ctx, backend, drain); err != nil {
				return err
			}
			fmt.Fprintf(tw, "backend %s %s on every node\n", backend, verb)
			return nil
		}
		if _, err := c.Drain(ctx, drain); err != nil {
			return err
		}
		who := "node at " + f.addr
		if f.node != "" {
			who = "node " + f.node
		}
		fmt.Fprintf(tw, "%s %s\n", who, verb)
	}
	return nil
}

func printStatus(ctx context.Context, c *client.Client, tw io.Writer) error {
	st, err := c.Status(ctx)
	if err != nil {
		return err
	}
	stats, err := c.Stats(ctx)
	if err != nil {
		return err
	}
	row := func(k, v string) { fmt.Fprintf(tw, "%s\t%s\n", k, v) }
	if st.Cluster != nil {
		row("node", st.Cluster.Name)
	}
	row("version", st.Version)
	row("uptime", (time.Duration(st.UptimeSeconds) * time.Second).String())
	row("serving", map[bool]string{true: "no, draining", false: "yes"}[st.Draining])
	row("in flight", strconv.FormatInt(st.InFlight, 10))
	row("listeners", strings.Join(st.ListenAddresses, ", "))
	row("routing table", "version "+strconv.FormatUint(st.TableVersion, 10))
	reload := "ok"
	if !st.LastReload.OK {
		reload = "failed: " + st.LastReload.Error
	}
	row("last reload", reload+" at "+st.LastReload.At.Format(time.RFC3339))
	row("health", fmt.Sprintf("%d backends checked, %d probed here", st.HealthTargets, st.HealthProbed))
	classes := make([]string, 0, len(stats.ByClass))
	for k, v := range stats.ByClass {
		classes = append(classes, fmt.Sprintf("%s %d", k, v))
	}
	slices.Sort(classes)
	row("requests", fmt.Sprintf("%d (%s), %d retries, %d rate-limited", stats.Requests, strings.Join(classes, ", "), stats.Retries, stats.RateLimited))
	if st.Cluster != nil {
		alive := 0
		for _, m := range st.Cluster.Members {
			if m.State == "alive" {
				alive++
			}
		}
		row("cluster", fmt.Sprintf("%d members alive of %d known, %d replicated session entries", alive, len(st.Cluster.Members), st.Cluster.Sessions))
	} else {
		row("cluster", "off")
	}
	if st.Consul != nil {
		var dcs []string
		for _, d := range st.Consul.Datacenters {
			dcs = append(dcs, dash(d.Name)+" "+d.State)
		}
		row("consul", strings.Join(dcs, ", "))
	} else {
		row("consul", "off")
	}
	for _, cert := range stats.Certificates {
		row("certificate", fmt.Sprintf("%s expires %s", cert.CertFile, cert.Expires.Format(time.RFC3339)))
	}
	return nil
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
