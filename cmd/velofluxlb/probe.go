package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/veloflux/veloflux/config"
)

// probe asks the node that the configuration describes whether it is ready (GET /readyz on
// its metrics listener) and exits 0 when it answers 200, 1 otherwise. It is the container
// health check: the image has no shell and no curl, only this binary.
func probe(args, environ []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("health", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", config.PathFromEnv(environ), "configuration file")
	timeout := fs.Duration("timeout", 3*time.Second, "how long the request may take")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "veloflux health: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	cfg, err := config.Load(*path, environ)
	if err != nil {
		fmt.Fprintf(stderr, "veloflux health: %v\n", err)
		return 1
	}
	url, err := readyURL(cfg.Global.MetricsAddress)
	if err != nil {
		fmt.Fprintf(stderr, "veloflux health: %v\n", err)
		return 1
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		fmt.Fprintf(stderr, "veloflux health: %v\n", err)
		return 1
	}
	client := &http.Client{Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true}}
	resp, err := client.Do(req)
	if err != nil {
		fmt.Fprintf(stderr, "veloflux health: %v\n", err)
		return 1
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
	if resp.StatusCode != http.StatusOK {
		fmt.Fprintf(stderr, "veloflux health: %s answered %s\n", url, resp.Status)
		return 1
	}
	return 0
}

// readyURL is the /readyz URL of a metrics listener, dialled on loopback when the listener
// binds every interface.
func readyURL(metricsAddress string) (string, error) {
	if metricsAddress == "" {
		return "", fmt.Errorf("global.metrics_address is empty: no /readyz to ask")
	}
	host, port, err := net.SplitHostPort(metricsAddress)
	if err != nil {
		return "", fmt.Errorf("global.metrics_address: %w", err)
	}
	switch host {
	case "", "0.0.0.0":
		host = "127.0.0.1"
	case "::":
		host = "::1"
	}
	return "http://" + net.JoinHostPort(host, port) + "/readyz", nil
}
