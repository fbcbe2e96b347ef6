package admin

import (
	"fmt"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestAuth(t *testing.T) {
	// Wrong credentials of the configured lengths, prefixes and extensions all take the same
	// digest comparison; each must still be refused.
	tests := []struct {
		name       string
		opts       []reqOpt
		wantStatus int
	}{
		{"correct", []reqOpt{withAuth("admin", "s3cret-pass")}, http.StatusOK},
		{"missing", nil, http.StatusUnauthorized},
		{"wrong password same length", []reqOpt{withAuth("admin", "s3cret-pasS")}, http.StatusUnauthorized},
		{"password prefix", []reqOpt{withAuth("admin", "s3cret")}, http.StatusUnauthorized},
		{"password extended", []reqOpt{withAuth("admin", "s3cret-pass!")}, http.StatusUnauthorized},
		{"empty password", []reqOpt{withAuth("admin", "")}, http.StatusUnauthorized},
		{"wrong user same length", []reqOpt{withAuth("admiN", "s3cret-pass")}, http.StatusUnauthorized},
		{"user prefix", []reqOpt{withAuth("adm", "s3cret-pass")}, http.StatusUnauthorized},
		{"swapped", []reqOpt{withAuth("s3cret-pass", "admin")}, http.StatusUnauthorized},
		{"both empty", []reqOpt{withAuth("", "")}, http.StatusUnauthorized},
		{"bearer scheme", []reqOpt{withHeader("Authorization", "Bearer s3cret-pass")}, http.StatusUnauthorized},
		{"garbled basic", []reqOpt{withHeader("Authorization", "Basic !!!")}, http.StatusUnauthorized},
	}
	cfg := credsConfig()
	cfg.MaxFailures = 100 // this test is about the comparison, not the lockout
	env := newEnv(t, cfg)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := do(t, env.http.Client(), http.MethodGet, env.http.URL+"/admin/status", tt.opts...)
			if r.status != tt.wantStatus {
				t.Fatalf("status = %d, want %d (body %s)", r.status, tt.wantStatus, r.body)
			}
			if r.header.Get("Content-Type") != "application/json" {
				t.Errorf("Content-Type = %q, want application/json", r.header.Get("Content-Type"))
			}
			if tt.wantStatus == http.StatusUnauthorized {
				if got := r.header.Get("WWW-Authenticate"); got != `Basic realm="veloflux admin"` {
					t.Errorf("WWW-Authenticate = %q", got)
				}
				r.errorMessage(t)
			} else if !strings.Contains(r.body, `"node":"n1"`) {
				t.Errorf("body = %s, want the controller's status", r.body)
			}
		})
	}
}

func TestAuthCoversEveryPath(t *testing.T) {
	env := newEnv(t, credsConfig())
	// An unauthenticated client must not be able to map the API: unknown paths and wrong
	// methods answer 401 like everything else.
	for _, tc := range []struct{ method, path string }{
		{http.MethodGet, "/admin/config"},
		{http.MethodPost, "/admin/drain"},
		{http.MethodGet, "/admin/drain"},
		{http.MethodGet, "/nope"},
	} {
		t.Run(tc.method+" "+tc.path, func(t *testing.T) {
			r := do(t, env.http.Client(), tc.method, env.http.URL+tc.path)
			if r.status != http.StatusUnauthorized {
				t.Errorf("status = %d, want 401", r.status)
			}
		})
	}
	if d, _ := env.ctrl.calls(); d != 0 {
		t.Errorf("unauthenticated POST drained the node (%d calls)", d)
	}
}

func TestAuthFailureLogged(t *testing.T) {
	env := newEnv(t, credsConfig())
	const tried = "hunter2-guess"
	do(t, env.http.Client(), http.MethodGet, env.http.URL+"/admin/pools", withAuth("root-user-guess", tried))
	do(t, env.http.Client(), http.MethodGet, env.http.URL+"/admin/pools") // no credentials

	var warns []map[string]any
	for _, l := range env.logs.Records() {
		if l["level"] == "WARN" {
			warns = append(warns, l)
		}
	}
	if len(warns) != 1 {
		t.Fatalf("got %d warn lines, want 1 (bad credentials only):\n%s", len(warns), env.logs.String())
	}
	w := warns[0]
	if w["remote_ip"] != "127.0.0.1" || w["path"] != "/admin/pools" || w["failures"] != float64(1) {
		t.Errorf("warn line lacks context: %v", w)
	}
	for _, secret := range []string{tried, "root-user-guess", "s3cret-pass"} {
		if strings.Contains(env.logs.String(), secret) {
			t.Errorf("logs contain %q:\n%s", secret, env.logs.String())
		}
	}
}

func TestLockout(t *testing.T) {
	cfg := credsConfig()
	cfg.MaxFailures = 3
	cfg.Lockout = time.Second
	cfg.MaxLockout = 4 * time.Second
	env := newEnv(t, cfg)
	good := withAuth("admin", "s3cret-pass")
	bad := withAuth("admin", "wrong")

	// The steps share one server and clock, in order: each depends on the ones before.
	steps := []struct {
		name       string
		advance    time.Duration
		creds      reqOpt
		wantStatus int
		wantRetry  string // Retry-After on a 429
	}{
		{"bad 1", 0, bad, http.StatusUnauthorized, ""},
		{"bad 2", 0, bad, http.StatusUnauthorized, ""},
		{"bad 3 locks for 1s", 0, bad, http.StatusUnauthorized, ""},
		{"locked even with good creds", 0, good, http.StatusTooManyRequests, "1"},
		{"sub-second remainder rounds up", 999 * time.Millisecond, good, http.StatusTooManyRequests, "1"},
		{"attempts while locked are not counted", 0, bad, http.StatusTooManyRequests, "1"},
		{"bad 4 after expiry locks for 2s", time.Millisecond, bad, http.StatusUnauthorized, ""},
		{"second lockout doubled", 0, good, http.StatusTooManyRequests, "2"},
		{"bad 5 locks for 4s", 2 * time.Second, bad, http.StatusUnauthorized, ""},
		{"third lockout doubled", 500 * time.Millisecond, good, http.StatusTooManyRequests, "4"},
		{"bad 6 capped at MaxLockout", 3500 * time.Millisecond, bad, http.StatusUnauthorized, ""},
		{"cap holds", 0, good, http.StatusTooManyRequests, "4"},
		{"good creds after expiry succeed", 4 * time.Second, good, http.StatusOK, ""},
		{"count was reset: bad 1", 0, bad, http.StatusUnauthorized, ""},
		{"count was reset: bad 2", 0, bad, http.StatusUnauthorized, ""},
		{"still not locked", 0, good, http.StatusOK, ""},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			env.clock.Add(st.advance)
			r := do(t, env.http.Client(), http.MethodGet, env.http.URL+"/admin/status", st.creds)
			if r.status != st.wantStatus {
				t.Fatalf("status = %d, want %d (body %s)", r.status, st.wantStatus, r.body)
			}
			if got := r.header.Get("Retry-After"); got != st.wantRetry {
				t.Errorf("Retry-After = %q, want %q", got, st.wantRetry)
			}
			if st.wantStatus == http.StatusTooManyRequests {
				r.errorMessage(t)
			}
		})
	}
	// A success forgets the client rather than keeping a zeroed entry.
	if n := env.srv.guard.tracked(); n != 0 {
		t.Errorf("failure table holds %d clients after a success, want 0", n)
	}
}

func TestLockoutIsPerClientIP(t *testing.T) {
	cfg := credsConfig()
	cfg.MaxFailures = 1
	env := newEnv(t, cfg)
	attacker, operator := clientFrom(t, "127.0.0.1"), clientFrom(t, "127.0.0.2")

	if r := do(t, attacker, http.MethodGet, env.http.URL+"/admin/status", withAuth("admin", "x")); r.status != http.StatusUnauthorized {
		t.Fatalf("bad attempt: status %d, want 401", r.status)
	}
	if r := do(t, attacker, http.MethodGet, env.http.URL+"/admin/status", withAuth("admin", "s3cret-pass")); r.status != http.StatusTooManyRequests {
		t.Fatalf("locked client: status %d, want 429", r.status)
	}
	if r := do(t, operator, http.MethodGet, env.http.URL+"/admin/status", withAuth("admin", "s3cret-pass")); r.status != http.StatusOK {
		t.Fatalf("other client: status %d, want 200 (body %s)", r.status, r.body)
	}
}

func TestFailureTableBounded(t *testing.T) {
	cfg := credsConfig()
	cfg.MaxFailures = 1 // every bad attempt locks its client out
	cfg.TrackedClients = 2
	env := newEnv(t, cfg)
	url := env.http.URL + "/admin/status"
	good, bad := withAuth("admin", "s3cret-pass"), withAuth("admin", "x")
	hammering, quiet, newcomer := clientFrom(t, "127.0.0.1"), clientFrom(t, "127.0.0.2"), clientFrom(t, "127.0.0.3")

	steps := []struct {
		name       string
		client     *http.Client
		creds      reqOpt
		wantStatus int
	}{
		{"hammering client locked", hammering, bad, http.StatusUnauthorized},
		{"quiet client locked", quiet, bad, http.StatusUnauthorized},
		{"hammering client keeps trying", hammering, good, http.StatusTooManyRequests},
		{"newcomer fills the table", newcomer, bad, http.StatusUnauthorized},
		// The table holds two clients, so one had to go: the least recently seen, which is
		// the quiet one, not the one still hammering.
		{"hammering client still locked", hammering, good, http.StatusTooManyRequests},
		{"quiet client evicted with its lockout", quiet, good, http.StatusOK},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			if r := do(t, st.client, http.MethodGet, url, st.creds); r.status != st.wantStatus {
				t.Fatalf("status = %d, want %d", r.status, st.wantStatus)
			}
			if n := env.srv.guard.tracked(); n > cfg.TrackedClients {
				t.Fatalf("failure table holds %d clients, cap is %d", n, cfg.TrackedClients)
			}
		})
	}
}

func TestParallelGuessesCannotOutrunLockout(t *testing.T) {
	cfg := credsConfig()
	cfg.MaxFailures = 3
	env := newEnv(t, cfg)

	const n = 20
	statuses := make(chan int, n)
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			req, err := http.NewRequest(http.MethodGet, env.http.URL+"/admin/status", nil)
			if err != nil {
				t.Error(err)
				return
			}
			req.SetBasicAuth("admin", "guess")
			resp, err := env.http.Client().Do(req)
			if err != nil {
				t.Error(err)
				return
			}
			resp.Body.Close()
			statuses <- resp.StatusCode
		})
	}
	wg.Wait()
	close(statuses)
	count := map[int]int{}
	for s := range statuses {
		count[s]++
	}
	// The clock is frozen, so exactly MaxFailures guesses are judged; the rest meet the lockout.
	if count[http.StatusUnauthorized] != 3 || count[http.StatusTooManyRequests] != n-3 {
		t.Errorf("statuses = %v, want 3×401 and %d×429", count, n-3)
	}
}

func TestLockoutFor(t *testing.T) {
	g := &guard{maxFailures: 5, lockout: time.Second, maxLockout: 5 * time.Minute}
	tests := []struct {
		count int
		want  time.Duration
	}{
		{5, time.Second},
		{6, 2 * time.Second},
		{7, 4 * time.Second},
		{13, 256 * time.Second},
		{14, 5 * time.Minute},
		{1 << 30, 5 * time.Minute}, // no overflow however long a client keeps failing
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("failure %d", tt.count), func(t *testing.T) {
			if got := g.lockoutFor(tt.count); got != tt.want {
				t.Errorf("lockoutFor(%d) = %s, want %s", tt.count, got, tt.want)
			}
		})
	}
}

func TestRetryAfterSeconds(t *testing.T) {
	tests := []struct {
		in   time.Duration
		want int64
	}{
		{time.Nanosecond, 1},
		{time.Second, 1},
		{time.Second + time.Nanosecond, 2},
		{1500 * time.Millisecond, 2},
		{5 * time.Minute, 300},
	}
	for _, tt := range tests {
		t.Run(tt.in.String(), func(t *testing.T) {
			if got := retryAfterSeconds(tt.in); got != tt.want {
				t.Errorf("retryAfterSeconds(%s) = %d, want %d", tt.in, got, tt.want)
			}
		})
	}
}

func TestPeerIP(t *testing.T) {
	tests := []struct {
		remote string
		want   netip.Addr
	}{
		{"127.0.0.1:5555", netip.MustParseAddr("127.0.0.1")},
		{"[::1]:5555", netip.MustParseAddr("::1")},
		{"[::ffff:10.0.0.1]:5555", netip.MustParseAddr("10.0.0.1")}, // same client over v4 or v6
		{"10.0.0.1", netip.MustParseAddr("10.0.0.1")},
		{"not-an-address", netip.Addr{}},
	}
	for _, tt := range tests {
		t.Run(tt.remote, func(t *testing.T) {
			if got := peerIP(tt.remote); got != tt.want {
				t.Errorf("peerIP(%q) = %v, want %v", tt.remote, got, tt.want)
			}
		})
	}
}
