//go:build integration

package integration

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/veloflux/veloflux/internal/testutil"
	"github.com/veloflux/veloflux/internal/testutil/testconfig"
)

func TestValidateCommand(t *testing.T) {
	dir := t.TempDir()
	bad := dir + "/bad.yaml"
	// A misspelt key, an address without a port, a route to a pool that does not exist.
	badCfg := testconfig.Config{
		Global: testconfig.Global{Extra: map[string]any{"bind_adress": ":80"}},
		Pools:  []testconfig.Pool{testconfig.WebPool("10.0.0.1")},
		Routes: []testconfig.Route{{Pool: "nowhere"}},
	}
	os.WriteFile(bad, []byte(badCfg.YAML(t)), 0o600)
	good := dir + "/good.yaml"
	os.WriteFile(good, []byte(singlePool(testconfig.WebPool("127.0.0.1:1")).YAML(t)), 0o600)

	out, err := exec.Command(binary, "validate", "-config", bad).CombinedOutput()
	var ee *exec.ExitError
	if err == nil || !errors.As(err, &ee) || ee.ExitCode() != 1 {
		t.Fatalf("validate bad config: err=%v, want exit status 1\n%s", err, out)
	}
	for _, want := range []string{"global.bind_adress", "pools[0].backends[0].address", "routes[0].pool"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("validate output lacks %q:\n%s", want, out)
		}
	}
	out, err = exec.Command(binary, "validate", "-config", good).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "OK") {
		t.Fatalf("validate good config: %v\n%s", err, out)
	}
}

func TestProxyReloadsOnFileChangeAndSIGHUP(t *testing.T) {
	a, b := newBackend(t, "A", 0), newBackend(t, "B", 0)
	n := startNode(t, singlePool(testconfig.WebPool(a.addr())).YAML(t))
	if code, body, _ := get(t, n.url("/")); code != 200 || body != "A" {
		t.Fatalf("before reload: %d %q, want 200 A", code, body)
	}

	// A changed file is picked up without a signal.
	if err := os.WriteFile(n.cfgPath, []byte(singlePool(testconfig.WebPool(b.addr())).YAML(t)), 0o600); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, "reload to backend B", func() bool {
		_, body, _ := get(t, n.url("/"))
		return body == "B"
	})

	// A broken file is rejected whole; the running table keeps serving.
	bogus := singlePool(testconfig.WebPool(a.addr()))
	bogus.Global.Extra = map[string]any{"bogus_key": 1}
	if err := os.WriteFile(n.cfgPath, []byte(bogus.YAML(t)), 0o600); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, "rejection logged", func() bool { return len(n.logs.Find("configuration rejected; the previous one keeps serving")) > 0 })
	if code, body, _ := get(t, n.url("/")); code != 200 || body != "B" {
		t.Fatalf("after rejected reload: %d %q, want 200 B", code, body)
	}
	rejected := n.logs.Find("configuration rejected; the previous one keeps serving")[0]
	if !strings.Contains(fmt.Sprint(rejected["error"]), "global.bogus_key") {
		t.Errorf("rejection does not name the bad key: %v", rejected["error"])
	}

	// SIGHUP reloads too, and says so.
	if err := os.WriteFile(n.cfgPath, []byte(singlePool(testconfig.WebPool(a.addr())).YAML(t)), 0o600); err != nil {
		t.Fatal(err)
	}
	n.signal(syscall.SIGHUP)
	testutil.Eventually(t, "SIGHUP reload", func() bool {
		for _, r := range n.logs.Find("configuration reloaded") {
			if r["reason"] == "SIGHUP" {
				return true
			}
		}
		return false
	})
	if code, body, _ := get(t, n.url("/")); code != 200 || body != "A" {
		t.Fatalf("after SIGHUP: %d %q, want 200 A", code, body)
	}
	_, metrics, _ := get(t, "http://"+n.metrics+"/metrics")
	if !regexp.MustCompile(`veloflux_config_reloads_total\{result="failure"\} [1-9]`).MatchString(metrics) {
		t.Errorf("failed reload not counted:\n%s", grep(metrics, "veloflux_config_reloads_total"))
	}
}

func TestSIGTERMLetsInFlightRequestFinish(t *testing.T) {
	slow := newBackend(t, "slow", 1500*time.Millisecond)
	n := startNode(t, singlePool(testconfig.WebPool(slow.addr())).YAML(t))

	type result struct {
		code int
		body string
		err  error
	}
	res := make(chan result, 1)
	go func() {
		resp, err := client.Get(n.url("/slow"))
		if err != nil {
			res <- result{err: err}
			return
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		res <- result{resp.StatusCode, string(b), err}
	}()
	testutil.Eventually(t, "slow request at the backend", func() bool { return slow.started.Load() == 1 })

	n.signal(syscall.SIGTERM)
	testutil.Eventually(t, "readyz to report draining", func() bool {
		resp, err := client.Get("http://" + n.metrics + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusServiceUnavailable
	})
	if resp, err := client.Get(n.url("/")); err == nil {
		resp.Body.Close()
		t.Errorf("a new connection was accepted during drain")
	}
	r := <-res
	if r.err != nil || r.code != 200 || r.body != "slow" {
		t.Fatalf("in-flight request during SIGTERM: code=%d body=%q err=%v, want 200 slow", r.code, r.body, r.err)
	}
	if err := n.wait(); err != nil {
		t.Fatalf("exit after SIGTERM: %v, want status 0", err)
	}
}

func TestAdminDrainAndUndrain(t *testing.T) {
	a := newBackend(t, "A", 0)
	n := startNode(t, singlePool(testconfig.WebPool(a.addr())).YAML(t), "VF_ADMIN_USER=ops", "VF_ADMIN_PASS=s3cret")

	post := func(path, user, pass string) int {
		req, _ := http.NewRequest(http.MethodPost, "http://"+n.admin+path, nil)
		if user != "" {
			req.SetBasicAuth(user, pass)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := post("/admin/drain", "", ""); code != http.StatusUnauthorized {
		t.Fatalf("drain without credentials: %d, want 401", code)
	}
	if code := post("/admin/drain", "ops", "wrong"); code != http.StatusUnauthorized {
		t.Fatalf("drain with a bad password: %d, want 401", code)
	}
	if code := post("/admin/drain", "ops", "s3cret"); code != http.StatusOK {
		t.Fatalf("drain: %d, want 200", code)
	}
	code, body, hdr := get(t, n.url("/"))
	if code != http.StatusServiceUnavailable || !strings.Contains(body, "draining") {
		t.Fatalf("request while drained: %d %q, want 503 draining", code, body)
	}
	if hdr.Get("Connection") != "close" {
		t.Errorf("drained response lacks Connection: close: %v", hdr)
	}
	if code, _, _ := get(t, "http://"+n.metrics+"/readyz"); code != http.StatusServiceUnavailable {
		t.Errorf("readyz while drained: %d, want 503", code)
	}
	if code := post("/admin/undrain", "ops", "s3cret"); code != http.StatusOK {
		t.Fatalf("undrain: %d, want 200", code)
	}
	if code, body, _ := get(t, n.url("/")); code != 200 || body != "A" {
		t.Fatalf("after undrain: %d %q, want 200 A", code, body)
	}
	if code, _, _ := get(t, "http://"+n.metrics+"/readyz"); code != 200 {
		t.Errorf("readyz after undrain: %d, want 200", code)
	}
}

func TestAdminRefusesPublicAddressWithoutCredentials(t *testing.T) {
	path := t.TempDir() + "/config.yaml"
	cfg := singlePool(testconfig.WebPool("127.0.0.1:1"))
	cfg.Global.AdminAddress = testconfig.Ptr("0.0.0.0:0")
	os.WriteFile(path, []byte(cfg.YAML(t)), 0o600)
	cmd := exec.Command(binary, "-config", path)
	cmd.Env = cleanEnv()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, cmd.Path, cmd.Args[1:]...).CombinedOutput()
	if err == nil {
		t.Fatalf("veloflux served a public admin API without credentials:\n%s", out)
	}
	if !strings.Contains(string(out), "VF_ADMIN") && !strings.Contains(strings.ToLower(string(out)), "credential") {
		t.Errorf("the error does not say how to fix it:\n%s", out)
	}
}

func TestMetricsEndpoint(t *testing.T) {
	a := newBackend(t, "A", 0)
	pool := testconfig.WebPool(a.addr())
	pool.HealthCheck = &testconfig.HealthCheck{Path: "/"}
	cfg := singlePool(pool)
	cfg.Global.HealthCheck = &testconfig.HealthCheck{Interval: testconfig.Duration(100 * time.Millisecond), Timeout: testconfig.Duration(50 * time.Millisecond)}
	n := startNode(t, cfg.YAML(t))
	for i := 0; i < 3; i++ {
		if code, _, _ := get(t, n.url("/")); code != 200 {
			t.Fatalf("request %d: %d", i, code)
		}
	}
	var m string
	testutil.Eventually(t, "a health probe in the metrics", func() bool {
		_, m, _ = get(t, "http://"+n.metrics+"/metrics")
		return strings.Contains(m, `veloflux_health_checks_total{backend="`+a.addr()+`",pool="web",result="success"}`)
	})
	for _, want := range []string{
		`veloflux_requests_total{code="200",method="GET",pool="web"} 3`,
		`veloflux_backend_health{backend="` + a.addr() + `",pool="web"} 1`,
		`veloflux_active_connections{backend="` + a.addr() + `",pool="web"} 0`,
		`veloflux_request_duration_seconds_count{pool="web"} 3`,
		`veloflux_build_info{`,
		`go_goroutines `,
	} {
		if !strings.Contains(m, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	if t.Failed() {
		t.Logf("veloflux metrics:\n%s", grep(m, "veloflux_"))
	}
	assertMetricsDocumented(t, m)

	access := n.logs.Find("access")
	if len(access) != 3 {
		t.Fatalf("%d access log lines, want 3", len(access))
	}
	for _, k := range []string{"level", "ts", "msg", "method", "url", "client_ip", "status_code", "duration", "request_id"} {
		if _, ok := access[0][k]; !ok {
			t.Errorf("access log line lacks %q: %v", k, access[0])
		}
	}
}
