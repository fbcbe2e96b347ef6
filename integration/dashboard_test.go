//go:build integration

package integration

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/fetch"
	"github.com/chromedp/chromedp"

	"github.com/veloflux/veloflux/internal/testutil"
	"github.com/veloflux/veloflux/internal/testutil/testconfig"
)

const (
	dashUser = "admin"
	dashPass = "dashboard-pass"
)

// chromiumPath finds the Chromium that `make chromium` installs (Debian's chromium). Outside CI
// a machine without it skips the browser test; in CI it fails.
func chromiumPath(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("VELOFLUX_CHROMIUM_BIN"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("no chromium on PATH: `make chromium` installs it")
	}
	t.Skip("no chromium on PATH (`make chromium` installs it)")
	return ""
}

func dashboardNodeConfig(name, ip, adminPort, region, gossip, seed string, backends []*backend) testconfig.Config {
	pool := testconfig.WebPool(addrsOf(backends)...)
	pool.StickySessions = true
	pool.HealthCheck = &testconfig.HealthCheck{Path: "/", Interval: testconfig.Duration(time.Second), Timeout: testconfig.Duration(500 * time.Millisecond)}
	cfg := testconfig.Config{
		Global: testconfig.Global{BindAddress: ip + ":0", MetricsAddress: testconfig.Ptr(ip + ":0"), AdminAddress: testconfig.Ptr(ip + ":" + adminPort)},
		Sticky: &testconfig.Sticky{Secret: "dashboard-test-secret-dashboard-test-secret"},
		Geo:    &testconfig.Geo{NodeRegion: region},
		Cluster: &testconfig.Cluster{
			Enabled: true, Name: name, BindAddress: gossip,
			GossipKey: "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
		},
		Pools:  []testconfig.Pool{pool},
		Routes: []testconfig.Route{{Host: "shop.example", PathPrefix: "/cart", Pool: "web"}, {Pool: "web"}},
	}
	if seed != "" {
		cfg.Cluster.Seeds = []string{seed}
	}
	return cfg
}

func adminGet(t *testing.T, addr, path string, out any) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, "http://"+addr+path, nil)
	req.SetBasicAuth(dashUser, dashPass)
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d", path, resp.StatusCode)
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
}

func backendDrained(t *testing.T, adminAddr, id string) bool {
	t.Helper()
	var health []struct {
		Backend string `json:"backend"`
		Drained bool   `json:"drained"`
	}
	adminGet(t, adminAddr, "/admin/health", &health)
	for _, h := range health {
		if h.Backend == id {
			return h.Drained
		}
	}
	t.Fatalf("backend %s not in %s's health", id, adminAddr)
	return false
}

func nodeDraining(t *testing.T, adminAddr string) bool {
	t.Helper()
	var st struct {
		Draining bool `json:"draining"`
	}
	adminGet(t, adminAddr, "/admin/status", &st)
	return st.Draining
}

// TestDashboard drives the dashboard of node a in a real headless Chromium, with node b
// joined to it by gossip: the page asks for credentials, shows both members with their
// regions and every backend, and a backend drained and a node drained from node a's page take
// effect on node b, whose own view the page then shows through the peer forward. With
// VELOFLUX_SCREENSHOT=FILE it also writes a PNG of the page (make screenshot).
func TestDashboard(t *testing.T) {
	chromium := chromiumPath(t)
	var backends []*backend
	for i := range 3 {
		backends = append(backends, newBackend(t, "b"+string(rune('0'+i)), 0))
	}
	port := testutil.SharedPort(t, "127.0.0.1", "127.0.0.2")
	gossipA := testutil.FreeAddrOn(t, "127.0.0.1")
	env := []string{"VF_ADMIN_USER=" + dashUser, "VF_ADMIN_PASS=" + dashPass}
	a := startNode(t, dashboardNodeConfig("node-a", "127.0.0.1", port, "eu-west-1", gossipA, "", backends).YAML(t), env...)
	b := startNode(t, dashboardNodeConfig("node-b", "127.0.0.2", port, "us-east-1", testutil.FreeAddrOn(t, "127.0.0.2"), gossipA, backends).YAML(t), env...)

	// Some traffic through both nodes, so that sessions and rates have something to show.
	stopTraffic := make(chan struct{})
	var traffic sync.WaitGroup
	traffic.Add(1)
	go func() {
		defer traffic.Done()
		c := &http.Client{Timeout: 5 * time.Second}
		for i := 0; ; i++ {
			select {
			case <-stopTraffic:
				return
			case <-time.After(20 * time.Millisecond):
			}
			n := a
			if i%3 == 0 {
				n = b
			}
			if resp, err := c.Get(n.url("/")); err == nil {
				resp.Body.Close()
			}
		}
	}()
	t.Cleanup(func() { close(stopTraffic); traffic.Wait() })

	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium),
		chromedp.NoSandbox, // CI runs as root, where Chromium's sandbox refuses to start
		chromedp.WindowSize(1400, 1100),
		chromedp.UserDataDir(t.TempDir()),
	)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancelAlloc()
	bctx, cancelBrowser := chromedp.NewContext(allocCtx)
	defer cancelBrowser()
	// The first action starts the browser, which lives as long as that action's context: it
	// gets no deadline of its own, the later ones get the shared guard.
	if err := chromedp.Do(bctx, chromedp.Navigate("about:blank")); err != nil {
		t.Fatalf("starting %s: %v", chromium, err)
	}
	ctx, cancel := context.WithTimeout(bctx, testutil.Timeout())
	defer cancel()
	run := func(what string, actions ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(ctx, actions...); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	text := func(sel string) string {
		t.Helper()
		v, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel)))
		if err != nil {
			t.Fatalf("text of %s: %v", sel, err)
		}
		return v
	}
	// poll waits for a JavaScript condition on the page, under the shared guard.
	poll := func(cond string) chromedp.Action[chromedp.Void] {
		return chromedp.Poll[chromedp.Void](cond, chromedp.WithPollingTimeout(testutil.Timeout()))
	}
	// choose picks a view in the page's node selector as an operator does.
	choose := func(node string) chromedp.Action[chromedp.Void] {
		return chromedp.Evaluate[chromedp.Void](`{ const s = document.getElementById('view'); s.value = ` + strconv.Quote(node) +
			`; s.dispatchEvent(new Event('change')); }`)
	}

	page := "http://" + a.admin + "/ui/"
	// A headless browser cannot show the login dialog, so the challenge fails the load. (In a
	// tab of its own: after such an error page, Chromium 156 no longer delivers the tab's mouse
	// events to the pages that follow.)
	anon, closeAnon := chromedp.NewContext(bctx)
	anonCtx, cancelAnon := context.WithTimeout(anon, testutil.Timeout())
	if err := chromedp.Do(anonCtx, chromedp.Navigate(page)); err == nil || !strings.Contains(err.Error(), "ERR_INVALID_AUTH_CREDENTIALS") {
		t.Fatalf("loading the page without credentials: %v, want the basic-auth challenge to fail it", err)
	}
	cancelAnon()
	closeAnon()

	// Log in as an operator does: the browser answers the challenge with the credentials and
	// keeps them for the page's own requests. Fetch pauses every request while it handles
	// challenges, so each one is let through.
	challenges := make(chan struct{}, 100)
	paused, auths := chromedp.Events(ctx, fetch.RequestPaused), chromedp.Events(ctx, fetch.AuthRequired)
	tgt := chromedp.FromContext(ctx).Target
	go func() {
		for ev, err := range paused {
			if err != nil {
				return
			}
			_, _ = cdp.Call(ctx, tgt, fetch.ContinueRequest, fetch.ContinueRequestParams{RequestID: ev.RequestID})
		}
	}()
	go func() {
		for ev, err := range auths {
			if err != nil {
				return
			}
			select {
			case challenges <- struct{}{}:
			default:
			}
			_, _ = cdp.Call(ctx, tgt, fetch.ContinueWithAuth, fetch.ContinueWithAuthParams{RequestID: ev.RequestID,
				AuthChallengeResponse: &fetch.AuthChallengeResponse{Response: fetch.AuthChallengeResponseResponseProvideCredentials, Username: dashUser, Password: dashPass}})
		}
	}()
	login := chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		_, err := cdp.Call(ctx, t, fetch.Enable, fetch.EnableParams{HandleAuthRequests: new(true)})
		return err
	})

	start := time.Now()
	run("log in",
		login,
		chromedp.Navigate(page),
		chromedp.WaitVisible(chromedp.CSS(`tr[data-member="node-a"]`)),
		chromedp.WaitVisible(chromedp.CSS(`tr[data-member="node-b"]`)),
	)
	t.Logf("dashboard showed both members %v after loading", time.Since(start).Round(time.Millisecond))
	testutil.Receive(t, challenges, "the browser asked for credentials")

	regionA, regionB, title := text(`tr[data-member="node-a"] td`), text(`tr[data-member="node-b"] td`), text(`#node-name`)
	if regionA != "eu-west-1" || regionB != "us-east-1" || !strings.HasPrefix(title, "node-a") {
		t.Errorf("members show regions %q and %q, title %q; want eu-west-1, us-east-1, node-a", regionA, regionB, title)
	}
	for _, be := range backends {
		run("backend "+be.addr(), chromedp.WaitVisible(chromedp.CSS(`tr[data-backend="`+be.addr()+`"] button[data-action="drain-backend"]`)))
	}

	// Drain a backend from node a's page; node b must see it.
	target := backends[1].addr()
	if backendDrained(t, b.admin, target) {
		t.Fatal("backend drained before the click")
	}
	run("ask to drain a backend",
		chromedp.Click(chromedp.CSS(`tr[data-backend="`+target+`"] button[data-action="drain-backend"]`)),
		chromedp.WaitVisible(chromedp.CSS(`#confirm-yes`)))
	if backendDrained(t, a.admin, target) {
		t.Fatal("the backend drained before the confirmation")
	}
	clicked := time.Now()
	run("confirm", chromedp.Click(chromedp.CSS(`#confirm-yes`)))
	testutil.Eventually(t, "node b sees the backend drained", func() bool { return backendDrained(t, b.admin, target) })
	// From sending the click to node b's API answering drained (asked every 20 ms at most): the
	// page's POST, node a's drain, its gossip broadcast and node b's merge.
	t.Logf("backend drained on node a's page, seen drained on node b %v after the click", time.Since(clicked).Round(time.Millisecond))
	run("page shows the drain", chromedp.WaitVisible(chromedp.CSS(`tr[data-backend="`+target+`"] button[data-action="undrain-backend"]`)))

	// Drain node b from node a's page (through the forward), then look at node b's view.
	run("ask to drain node b",
		chromedp.Click(chromedp.CSS(`tr[data-member="node-b"] button[data-action="drain-node"]`)),
		chromedp.WaitVisible(chromedp.CSS(`#confirm-yes`)),
		chromedp.Click(chromedp.CSS(`#confirm-yes`)))
	testutil.Eventually(t, "node b draining", func() bool { return nodeDraining(t, b.admin) })
	if nodeDraining(t, a.admin) {
		t.Error("draining node b from node a's page drained node a")
	}
	run("node a's page shows node b draining",
		chromedp.WaitVisible(chromedp.CSS(`tr[data-member="node-b"] button[data-action="undrain-node"]`)))

	run("switch to node b's view",
		choose("node-b"),
		poll(`document.getElementById('updated').textContent.includes('view of node-b')`),
		chromedp.WaitVisible(chromedp.CSS(`tr[data-backend="`+target+`"] button[data-action="undrain-backend"]`)),
	)
	if serving := text(`#summary dd`); serving != "draining" {
		t.Errorf("node b's view says serving %q, want draining", serving)
	}

	// The command line reaches node b through node a the same way, with the same credentials.
	cli := func(env []string, args ...string) (string, error) {
		cmd := exec.Command(binary, args...)
		cmd.Env = append(cleanEnv(), env...)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	if out, err := cli(nil, "status", "-addr", a.admin, "-node", "node-b"); err == nil || !strings.Contains(out, "credentials refused") {
		t.Errorf("veloflux status without credentials: %v %s, want credentials refused", err, out)
	}
	out, err := cli(env, "status", "-addr", a.admin, "-node", "node-b")
	if err != nil || !regexp.MustCompile(`(?m)^node\s+node-b$`).MatchString(out) || !regexp.MustCompile(`(?m)^serving\s+no, draining$`).MatchString(out) {
		t.Errorf("veloflux status -node node-b: %v, want node b draining:\n%s", err, out)
	}

	// Undrain from the page, back in node a's view, so the screenshot shows a serving cluster
	// with one drained backend.
	run("undrain node b",
		choose(""),
		poll(`!document.getElementById('updated').textContent.includes('view of')`),
		chromedp.WaitVisible(chromedp.CSS(`tr[data-member="node-b"] button[data-action="undrain-node"]`)),
		chromedp.Click(chromedp.CSS(`tr[data-member="node-b"] button[data-action="undrain-node"]`)),
		chromedp.WaitVisible(chromedp.CSS(`#confirm-yes`)),
		chromedp.Click(chromedp.CSS(`#confirm-yes`)),
		chromedp.WaitVisible(chromedp.CSS(`tr[data-member="node-b"] button[data-action="drain-node"]`)))
	if nodeDraining(t, b.admin) {
		t.Error("node b still draining after the undrain")
	}

	if path := os.Getenv("VELOFLUX_SCREENSHOT"); path != "" {
		// Two polls with traffic between them, so the rates are filled in.
		run("rates shown", poll(`!document.querySelector('#traffic dd').textContent.startsWith('–')`))
		png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
		if err != nil {
			t.Fatalf("screenshot: %v", err)
		}
		if err := os.WriteFile(path, png, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("screenshot written to %s (%d bytes)", path, len(png))
	}
}
