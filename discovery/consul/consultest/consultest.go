// Package consultest starts real Consul agents for VeloFlux's tests: a dev-mode server per
// datacenter on free loopback ports, WAN-joined when a test needs several datacenters.
//
// The binary is Consul v1.13.9 built from the Go module proxy by `make consul` into
// $HOME/.cache/veloflux/consul-1.13.9 (VELOFLUX_CONSUL_BIN overrides the path). Without it a test
// skips with that hint, except in CI (CI=true), where it fails: CI must run these tests.
package consultest

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/veloflux/veloflux/internal/testutil"
)

// Version is the Consul release the project builds and tests against.
const Version = "1.13.9"

// Binary returns the consul binary to run, or ends the test when there is none.
func Binary(t testing.TB) string {
	t.Helper()
	path := os.Getenv("VELOFLUX_CONSUL_BIN")
	if path == "" {
		home, err := os.UserHomeDir()
		if err == nil {
			path = filepath.Join(home, ".cache", "veloflux", "consul-"+Version)
		}
	}
	if _, err := os.Stat(path); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("consul binary %s missing in CI: `make consul` must build it before the tests", path)
		}
		t.Skipf("consul binary %s not found: run `make consul` (builds Consul %s once, ~7 min)", path, Version)
	}
	return path
}

// Agent is one running dev-mode Consul server.
type Agent struct {
	t          testing.TB
	bin        string
	dir        string
	Datacenter string
	Node       string
	HTTPAddr   string // 127.0.0.1:port of the HTTP API
	SerfWAN    string // 127.0.0.1:port for WAN joins

	ports agentPorts
	mu    sync.Mutex
	cmd   *exec.Cmd
	out   *bytes.Buffer
	done  chan struct{}
}

type agentPorts struct{ http, serfLAN, serfWAN, server int }

// Start runs a dev-mode server for datacenter dc (default "dc1") and waits until it has a
// leader. It is stopped when the test ends.
func Start(t testing.TB, dc string) *Agent {
	t.Helper()
	if dc == "" {
		dc = "dc1"
	}
	a := &Agent{t: t, bin: Binary(t), Datacenter: dc, Node: "node-" + dc}
	t.Cleanup(a.Stop)
	// The ports are free when picked but released before Consul binds them, so another process
	// (Pebble, another agent, a test's own listener) can take one first; the agent then exits,
	// and starts again on other ports.
	const tries = 5
	for try := 1; ; try++ {
		ports := testutil.FreePorts(t, 4)
		a.ports = agentPorts{http: ports[0], serfLAN: ports[1], serfWAN: ports[2], server: ports[3]}
		a.HTTPAddr = "127.0.0.1:" + strconv.Itoa(a.ports.http)
		a.SerfWAN = "127.0.0.1:" + strconv.Itoa(a.ports.serfWAN)
		a.dir = t.TempDir()
		if a.start(try < tries) {
			return a
		}
		t.Logf("consultest: a port was taken before Consul bound it; starting again on others (try %d)", try)
	}
}

// start runs the agent on a.ports and waits for its leader. It reports false when the agent
// exited because a port was taken and retry allows that; any other failure fails the test.
func (a *Agent) start(retry bool) bool {
	a.t.Helper()
	a.mu.Lock()
	a.out = &bytes.Buffer{}
	a.cmd = exec.Command(a.bin, "agent", "-dev",
		"-datacenter", a.Datacenter, "-node", a.Node,
		"-bind", "127.0.0.1", "-client", "127.0.0.1", "-advertise-wan", "127.0.0.1",
		"-http-port", strconv.Itoa(a.ports.http),
		"-dns-port", "-1", "-grpc-port", "-1",
		"-serf-lan-port", strconv.Itoa(a.ports.serfLAN),
		"-serf-wan-port", strconv.Itoa(a.ports.serfWAN),
		"-server-port", strconv.Itoa(a.ports.server),
		"-data-dir", a.dir,
	)
	a.cmd.Stdout, a.cmd.Stderr = a.out, a.out
	dieWithParent(a.cmd)
	if err := a.cmd.Start(); err != nil {
		a.mu.Unlock()
		a.t.Fatalf("start consul: %v", err)
	}
	a.done = make(chan struct{})
	cmd, done := a.cmd, a.done
	a.mu.Unlock()
	go func() { _ = cmd.Wait(); close(done) }()
	return a.waitLeader(retry)
}

// waitLeader polls the agent until it reports a leader, for at most the tests' shared guard,
// and returns true then. It returns false when the agent exited because a port was taken and
// retry allows that.
func (a *Agent) waitLeader(retry bool) bool {
	a.t.Helper()
	c := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(testutil.Timeout())
	for time.Now().Before(deadline) {
		select {
		case <-a.done:
			if retry && strings.Contains(a.Output(), "address already in use") {
				return false
			}
			a.t.Fatalf("consul exited at start:\n%s", a.Output())
		default:
		}
		resp, err := c.Get("http://" + a.HTTPAddr + "/v1/status/leader")
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == 200 && len(strings.Trim(string(b), "\" \n")) > 0 {
				return true
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	a.t.Fatalf("consul has no leader after %v:\n%s", testutil.Timeout(), a.Output())
	return false
}

// Stop ends the agent (SIGTERM, then SIGKILL after 5 s). Safe to call twice.
func (a *Agent) Stop() {
	a.mu.Lock()
	cmd, done := a.cmd, a.done
	a.mu.Unlock()
	if cmd == nil || cmd.Process == nil {
		return
	}
	select {
	case <-done:
		return
	default:
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		_ = cmd.Process.Kill()
		<-done
	}
}

// Kill ends the agent at once, as a crash would.
func (a *Agent) Kill() {
	a.mu.Lock()
	cmd, done := a.cmd, a.done
	a.mu.Unlock()
	_ = cmd.Process.Kill()
	<-done
}

// Restart stops the agent and starts a new one on the same ports with a fresh data
// directory, as a recreated container would: the catalog comes back empty (services the old
// agent held are gone) and its Raft index starts low again.
func (a *Agent) Restart() {
	a.t.Helper()
	a.Stop()
	a.dir = a.t.TempDir()
	a.start(false)
}

// JoinWAN joins a to other's datacenter over the WAN pool and waits until both see it.
func (a *Agent) JoinWAN(other *Agent) {
	a.t.Helper()
	out, err := exec.Command(a.bin, "join", "-wan", "-http-addr", a.HTTPAddr, other.SerfWAN).CombinedOutput()
	if err != nil {
		a.t.Fatalf("consul join -wan: %v\n%s", err, out)
	}
	deadline := time.Now().Add(testutil.Timeout())
	for time.Now().Before(deadline) {
		resp, err := http.Get("http://" + a.HTTPAddr + "/v1/catalog/datacenters")
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if strings.Contains(string(b), `"`+other.Datacenter+`"`) {
				return
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	a.t.Fatalf("datacenter %s never saw %s after a WAN join", a.Datacenter, other.Datacenter)
}

// Output returns what the agent printed, for failure messages.
func (a *Agent) Output() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.out == nil {
		return ""
	}
	return a.out.String()
}

// String names the agent in test logs.
func (a *Agent) String() string { return fmt.Sprintf("consul %s at %s", a.Datacenter, a.HTTPAddr) }
