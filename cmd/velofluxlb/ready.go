package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
)

// Ready is what `run -ready-file PATH` writes once every part of the node runs: the
// addresses it bound, so that a supervisor, a script or a test can wait for the file and
// connect, with no log line to parse. The file is replaced atomically and removed at exit.
type Ready struct {
	PID int `json:"pid"`
	// Listeners are the proxy's listeners in the order of the start-up log line: the plain
	// listener, then the TLS one (whose UDP port, the same number, serves HTTP/3).
	Listeners []string `json:"listeners"`
	Admin     string   `json:"admin,omitempty"`
	Metrics   string   `json:"metrics,omitempty"`
}

// readyState is the node's Ready.
func (a *app) readyState() Ready {
	r := Ready{PID: os.Getpid()}
	for _, addr := range a.server.Addrs() {
		r.Listeners = append(r.Listeners, addr.String())
	}
	if a.admin != nil {
		r.Admin = a.admin.Addr().String()
	}
	if a.metrics != nil {
		r.Metrics = a.metricsLn.Addr().String()
	}
	return r
}

// writeReady writes the ready file, if one was asked for: to a temporary name in the same
// directory first, so that a reader never sees half of it.
func (a *app) writeReady() error {
	if a.readyFile == "" {
		return nil
	}
	b, err := json.Marshal(a.readyState())
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(a.readyFile), ".veloflux-ready-*")
	if err != nil {
		return fmt.Errorf("ready file: %w", err)
	}
	_, werr := tmp.Write(append(b, '\n'))
	cerr := tmp.Close()
	if werr == nil {
		werr = cerr
	}
	if werr == nil {
		werr = os.Rename(tmp.Name(), a.readyFile)
	}
	if werr != nil {
		_ = os.Remove(tmp.Name())
		return fmt.Errorf("ready file: %w", werr)
	}
	return nil
}
