//go:build integration

package integration

import (
	"io"
	"os"
	"testing"
	"time"

	"github.com/veloflux/veloflux/internal/testutil"
	"github.com/veloflux/veloflux/internal/testutil/testconfig"
)

// stickyConfig is one sticky pool over addrs with a fixed secret, so cookies stay valid
// across reloads.
func stickyConfig(t *testing.T, addrs ...string) string {
	pool := testconfig.WebPool(addrs...)
	pool.StickySessions = true
	cfg := singlePool(pool)
	cfg.Sticky = &testconfig.Sticky{Secret: "integration-secret-integration-secret-0123"}
	return cfg.YAML(t)
}

// TestReloadKeepsPinsAndInFlightRequests adds a backend by reload while sessions are pinned
// and a slow request is in flight: the request completes, and every session stays on its
// backend although hashing alone would move some of them to the new one.
func TestReloadKeepsPinsAndInFlightRequests(t *testing.T) {
	a, b, c := newBackend(t, "A", 0), newBackend(t, "B", 0), newBackend(t, "C", 0)
	slow := newBackend(t, "slow", 1200*time.Millisecond)
	n := startNode(t, stickyConfig(t, a.addr(), b.addr(), slow.addr()))

	// Pin 30 sessions; keep those that landed on A or B.
	pins := map[string]string{}
	for i := 0; len(pins) < 20 && i < 200; i++ {
		code, body, hdr := get(t, n.url("/"))
		if code != 200 {
			t.Fatalf("new session: %d %q", code, body)
		}
		if body == "A" || body == "B" {
			pins[cookiePair(t, hdr)] = body
		}
	}
	if len(pins) < 20 {
		t.Fatalf("only %d sessions on A or B", len(pins))
	}

	done := make(chan string, 1)
	go func() {
		resp, err := client.Get(n.url("/slow"))
		if err != nil {
			done <- err.Error()
			return
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		done <- resp.Status + " " + string(body)
	}()
	testutil.Eventually(t, "slow request at the backend", func() bool { return slow.started.Load() == 1 })

	if err := os.WriteFile(n.cfgPath, []byte(stickyConfig(t, a.addr(), b.addr(), slow.addr(), c.addr())), 0o600); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, "reload", func() bool { return len(n.logs.Find("configuration reloaded")) > 0 })

	for cookie, want := range pins {
		if _, body, _ := get(t, n.url("/"), "Cookie", cookie); body != want {
			t.Errorf("session %s moved from %s to %s after the reload", cookie, want, body)
		}
	}
	if got := <-done; got != "200 OK slow" {
		t.Fatalf("request in flight during the reload: %s, want 200 OK slow", got)
	}
}
