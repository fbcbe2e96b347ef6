package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/veloflux/veloflux/internal/testutil"
	"github.com/veloflux/veloflux/internal/testutil/testconfig"
)

// opsNode runs a node with admin credentials, a sticky pool of two real backends, and, when
// cluster is set, a one-node gossip cluster; it returns the node and its admin address.
func opsNode(t *testing.T, cluster bool) (*testNode, string) {
	t.Helper()
	var addrs []string
	for i := range 2 {
		be := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprintf(w, "backend %d", i)
		}))
		t.Cleanup(be.Close)
		addrs = append(addrs, be.Listener.Addr().String())
	}
	cfg := testconfig.Config{
		Global: testconfig.Global{
			BindAddress: "127.0.0.1:0", MetricsAddress: testconfig.Ptr(""), AdminAddress: testconfig.Ptr("127.0.0.1:0"),
			DrainTimeout: testconfig.Duration(time.Second),
			HealthCheck:  &testconfig.HealthCheck{Interval: testconfig.Duration(time.Hour), MaxInterval: testconfig.Duration(time.Hour)},
		},
		Sticky: &testconfig.Sticky{Secret: "ops-test-secret-ops-test-secret-ops-test-1"},
		Pools: []testconfig.Pool{{Name: "web", StickySessions: true,
			Backends: []testconfig.Backend{{Address: addrs[0], Weight: 3}, {Address: addrs[1]}}}},
		Routes: []testconfig.Route{{Host: "shop.example", PathPrefix: "/cart", Pool: "web"}, {Pool: "web"}},
	}
	if cluster {
		cfg.Cluster = &testconfig.Cluster{Enabled: true, Name: "ops-node", BindAddress: "127.0.0.1:0"}
	}
	n := startNodeEnv(t, cfg.YAML(t), []string{"VF_ADMIN_USER=ops", "VF_ADMIN_PASS=ops-pass"})
	if cluster {
		testutil.Receive(t, n.a.cluster.node.Ready(), "gossip node running")
	}
	return n, n.a.admin.Addr().String()
}

type cliResult struct {
	code           int
	stdout, stderr string
}

func cli(env []string, args ...string) cliResult {
	var out, errOut bytes.Buffer
	code := runCLI(args, env, &out, &errOut)
	return cliResult{code, out.String(), errOut.String()}
}

var opsEnv = []string{"VF_ADMIN_USER=ops", "VF_ADMIN_PASS=ops-pass"}

// TestOpsCommands drives every admin command of the command line against a real node.
func TestOpsCommands(t *testing.T) {
	n, addr := opsNode(t, true)
	proxyURL := "http://" + n.a.server.Addrs()[0].String()
	for range 3 { // three sessions, none moved: their cookies carry them, nothing is stored
		resp, err := http.Get(proxyURL + "/")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	backend := n.a.proxy.Pools()[0].Backends[0].ID

	steps := []struct {
		args []string
		want []string // regular expressions the output must match, in order
	}{
		{[]string{"status", "-addr", addr}, []string{`(?m)^node\s+ops-node$`, `(?m)^serving\s+yes$`, `(?m)^requests\s+3 \(2xx 3\)`, `(?m)^cluster\s+1 members alive of 1 known`}},
		{[]string{"members", "-addr", addr}, []string{`(?m)^NAME\s+REGION\s+ADDRESS\s+STATE\s+DRAINING\s+VERSION$`, `(?m)^ops-node\s+-\s+127\.0\.0\.1:\d+\s+alive\s+false\s+`}},
		{[]string{"routes", "-addr", addr}, []string{`(?m)^HOST\s+PATH\s+STRIP\s+POOL\s+GEO$`, `(?m)^shop\.example\s+/cart\s+false\s+web\s+off$`, `(?m)^\*\s+/\s+false\s+web\s+off$`}},
		{[]string{"sessions", "-addr", addr}, []string{`(?m)^BACKEND\s+PINS$`, `(?m)^total \(cluster\)\s+0$`}},
		{[]string{"drain", "backend", backend, "-addr", addr}, []string{`backend ` + regexp.QuoteMeta(backend) + ` drained on every node`}},
		{[]string{"backends", "-addr", addr}, []string{`(?m)^POOL\s+BACKEND\s+REGION\s+WEIGHT\s+ACTIVE\s+STATE\s+WHY$`,
			`(?m)^web\s+` + regexp.QuoteMeta(backend) + `\s+-\s+3\s+0\s+drained\s+drained by an operator$`}},
		{[]string{"undrain", "-addr", addr, "backend", backend}, []string{`undrained on every node`}},
		{[]string{"drain", "node", "-addr", addr}, []string{`node at ` + regexp.QuoteMeta(addr) + ` drained`}},
		{[]string{"status", "-addr", addr}, []string{`(?m)^serving\s+no, draining$`}},
		{[]string{"undrain", "-addr", addr}, []string{`undrained`}},
		{[]string{"version", "-addr", addr}, []string{`(?m)^client\s+veloflux dev`, `(?m)^node\s+veloflux dev$`}},
	}
	for _, st := range steps {
		t.Run(strings.Join(st.args, " "), func(t *testing.T) {
			r := cli(opsEnv, st.args...)
			if r.code != 0 || r.stderr != "" {
				t.Fatalf("exit %d, stderr %q", r.code, r.stderr)
			}
			rest := r.stdout
			for _, w := range st.want {
				loc := regexp.MustCompile(w).FindStringIndex(rest)
				if loc == nil {
					t.Fatalf("output does not match %s (in order):\n%s", w, r.stdout)
				}
				rest = rest[loc[1]:]
			}
		})
	}
	if n.a.proxy.Draining() || n.a.drains.Drained(backend) {
		t.Errorf("after undrain: node draining %v, backend drained %v", n.a.proxy.Draining(), n.a.drains.Drained(backend))
	}
}

// TestOpsJSON: -o json prints the API's document, whole and indented.
func TestOpsJSON(t *testing.T) {
	_, addr := opsNode(t, false)
	tests := []struct {
		cmd  string
		keys []string // keys of the document, or of its first element for a list
	}{
		{"status", []string{"version", "draining", "cluster"}},
		{"backends", []string{"name", "algorithm", "backends"}},
		{"routes", []string{"Host", "Pool"}},
		{"sessions", []string{"scope", "total", "by_backend"}},
		{"members", []string{"version", "cluster"}},
	}
	for _, tt := range tests {
		t.Run(tt.cmd, func(t *testing.T) {
			r := cli(opsEnv, tt.cmd, "-o", "json", "-addr", addr)
			if r.code != 0 {
				t.Fatalf("exit %d: %s", r.code, r.stderr)
			}
			if !strings.Contains(r.stdout, "\n  ") {
				t.Errorf("not indented:\n%s", r.stdout)
			}
			var doc any
			if err := json.Unmarshal([]byte(r.stdout), &doc); err != nil {
				t.Fatalf("not JSON: %v\n%s", err, r.stdout)
			}
			if list, ok := doc.([]any); ok {
				doc = list[0]
			}
			m, _ := doc.(map[string]any)
			for _, k := range tt.keys {
				if _, ok := m[k]; !ok {
					t.Errorf("document lacks %q:\n%s", k, r.stdout)
				}
			}
		})
	}
}

// TestOpsErrors: every failure is one line on stderr with exit 1, every bad command line
// exit 2, and nothing is printed on stdout.
func TestOpsErrors(t *testing.T) {
	_, addr := opsNode(t, false)
	down := testutil.FreeAddr(t) // nothing listens there
	tests := []struct {
		name string
		env  []string
		args []string
		code int
		msg  string
	}{
		{"wrong password", []string{"VF_ADMIN_USER=ops", "VF_ADMIN_PASS=nope"}, []string{"status", "-addr", addr}, 1, "credentials refused"},
		{"no credentials", nil, []string{"routes", "-addr", addr}, 1, "credentials refused"},
		{"node unreachable", opsEnv, []string{"status", "-addr", down}, 1, "node unreachable: http://" + down},
		{"unknown backend", opsEnv, []string{"drain", "backend", "10.9.9.9:1", "-addr", addr}, 1, `404 Not Found: no backend "10.9.9.9:1"`},
		{"unknown peer", opsEnv, []string{"status", "-node", "elsewhere", "-addr", addr}, 1, `no live peer "elsewhere"`},
		{"members of a node alone", opsEnv, []string{"members", "-addr", addr}, 1, "runs alone"},
		{"drain what", opsEnv, []string{"drain", "-addr", addr}, 2, "want node or backend ID"},
		{"drain backend without ID", opsEnv, []string{"drain", "backend", "-addr", addr}, 2, "want node or backend ID"},
		{"extra argument", opsEnv, []string{"status", "now", "-addr", addr}, 2, `unexpected argument "now"`},
		{"bad output", opsEnv, []string{"routes", "-o", "yaml", "-addr", addr}, 2, `-o "yaml"`},
		{"unknown flag", opsEnv, []string{"routes", "-x"}, 2, "flag provided but not defined"},
		{"bad address", opsEnv, []string{"status", "-addr", "https://x:1/admin"}, 2, "want host:port"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := cli(tt.env, tt.args...)
			if r.code != tt.code {
				t.Fatalf("exit %d, want %d; stderr %q", r.code, tt.code, r.stderr)
			}
			if r.stdout != "" {
				t.Errorf("stdout %q, want nothing", r.stdout)
			}
			first, _, _ := strings.Cut(r.stderr, "\n")
			if !strings.Contains(first, tt.msg) || !strings.HasPrefix(first, "veloflux "+tt.args[0]+": ") {
				t.Errorf("stderr %q: first line should be \"veloflux %s: ...%s...\"", r.stderr, tt.args[0], tt.msg)
			}
			if tt.code == 1 && strings.Count(r.stderr, "\n") != 1 {
				t.Errorf("stderr is not one line: %q", r.stderr)
			}
		})
	}
}

func TestOpsHelp(t *testing.T) {
	r := cli(nil, "backends", "-h")
	if r.code != 0 || !strings.HasPrefix(r.stdout, "usage: veloflux backends [-addr HOST:PORT]") || !strings.Contains(r.stdout, "-node string") {
		t.Errorf("backends -h: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
}
