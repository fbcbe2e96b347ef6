//go:build integration

package integration

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/veloflux/veloflux/internal/testutil"
)

var binary string

func TestMain(m *testing.M) {
	// A test re-run inside a network namespace (netns_test.go) reuses its parent's binary.
	if b := os.Getenv(binaryEnv); b != "" {
		binary = b
		os.Exit(m.Run())
	}
	dir, err := os.MkdirTemp("", "veloflux-it")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "veloflux")
	build := exec.Command("go", "build", "-o", binary, "../cmd/velofluxlb")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building veloflux:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// node is one veloflux process.
type node struct {
	t       *testing.T
	cmd     *exec.Cmd
	cfgPath string
	logs    *testutil.LogBuffer
	done    chan struct{}
	exit    error

	proxy, metrics, admin string   // bound addresses, from the ready file
	listeners             []string // every proxy listener: plain, then TLS
}

// binaryEnv names the environment variable that hands a re-run test the built binary.
const binaryEnv = "VELOFLUX_IT_BINARY"

// startNode writes cfg to a file and starts veloflux on it with env added to the
// environment. It waits for the node's ready file and stops the process at test end.
func startNode(t *testing.T, cfg string, env ...string) *node {
	t.Helper()
	return startNodeWith(t, nil, cfg, env...)
}

// startNodeWith is startNode with the command run through prefix (e.g. `ip netns exec ns`),
// which must exec the binary so that the process started is veloflux itself.
func startNodeWith(t *testing.T, prefix []string, cfg string, env ...string) *node {
	t.Helper()
	dir := t.TempDir()
	path, readyPath := filepath.Join(dir, "config.yaml"), filepath.Join(dir, "ready.json")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	n := &node{t: t, cfgPath: path, logs: &testutil.LogBuffer{}, done: make(chan struct{})}
	args := append(append([]string(nil), prefix...), binary, "run", "-config", path, "-ready-file", readyPath)
	n.cmd = exec.Command(args[0], args[1:]...)
	n.cmd.Env = append(cleanEnv(), env...)
	// If the test binary dies (a timeout panic skips cleanups), the node dies with it.
	n.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	stderr, err := n.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := n.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			n.logs.WriteLine(sc.Bytes())
		}
		n.exit = n.cmd.Wait()
		close(n.done)
	}()
	t.Cleanup(func() {
		select {
		case <-n.done:
		default:
			_ = n.cmd.Process.Kill()
			<-n.done
		}
		if t.Failed() {
			t.Logf("veloflux log:\n%s", n.logs.String())
		}
	})
	var ready struct {
		Listeners      []string
		Admin, Metrics string
	}
	testutil.Eventually(t, "the ready file", func() bool {
		select {
		case <-n.done:
			t.Fatalf("veloflux exited at start: %v\n%s", n.exit, n.logs.String())
		default:
		}
		b, err := os.ReadFile(readyPath)
		if err != nil {
			return false
		}
		if err := json.Unmarshal(b, &ready); err != nil {
			t.Fatalf("ready file %q: %v", b, err) // written whole by a rename: never partial
		}
		return true
	})
	if len(ready.Listeners) == 0 {
		t.Fatalf("ready file without listeners: %+v", ready)
	}
	n.listeners, n.proxy, n.metrics, n.admin = ready.Listeners, ready.Listeners[0], ready.Metrics, ready.Admin
	return n
}

// tlsListener is the node's TLS listener (whose UDP port, the same number, serves HTTP/3).
func (n *node) tlsListener() string {
	n.t.Helper()
	if len(n.listeners) < 2 {
		n.t.Fatalf("no TLS listener among %v", n.listeners)
	}
	return n.listeners[1]
}

// cleanEnv is the test's environment without VeloFlux settings that would leak into nodes.
func cleanEnv() []string {
	var out []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "VFX_") && !strings.HasPrefix(kv, "VF_") {
			out = append(out, kv)
		}
	}
	return out
}

func (n *node) signal(sig syscall.Signal) {
	n.t.Helper()
	if err := n.cmd.Process.Signal(sig); err != nil {
		n.t.Fatalf("signal %v: %v", sig, err)
	}
}

// wait returns the process's exit error once it ended, failing the test after the shared guard.
func (n *node) wait() error {
	n.t.Helper()
	testutil.Receive(n.t, n.done, "veloflux to exit")
	return n.exit
}

func (n *node) url(path string) string { return "http://" + n.proxy + path }

// get fetches url with a fresh connection and returns status, body and headers.
func get(t *testing.T, url string, hdr ...string) (int, string, http.Header) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		if strings.EqualFold(hdr[i], "Host") {
			req.Host = hdr[i+1]
			continue
		}
		req.Header.Set(hdr[i], hdr[i+1])
	}
	c := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 10 * time.Second}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.Close {
		// Go's client consumes "Connection: close" into resp.Close; put it back for asserts.
		resp.Header.Set("Connection", "close")
	}
	return resp.StatusCode, string(b), resp.Header
}
