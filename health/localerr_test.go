package health

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	promtest "github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/veloflux/veloflux/internal/testutil"
)

// Dial modes of localDialer.
const (
	dialReal      = iota // dial the backend
	dialLocalFail        // fail with EMFILE before any packet leaves, as net reports it
	dialAlternate        // fail every other dial locally, starting with the first in this mode
)

// localDialer is a probe client's DialContext that can fail the way a node out of file
// descriptors does: socket() returns EMFILE, which net wraps in *os.SyscallError and
// *net.OpError (localerr's tests provoke the real thing and check that shape).
type localDialer struct {
	mode  atomic.Int32
	dials atomic.Int64
	// alternated counts the dials in dialAlternate mode alone, so that the first of them
	// fails whatever was dialed before: a probe dialed earlier may still succeed after the
	// switch, and a real dial right after it would make two successes in a row.
	alternated atomic.Int64
}

func (d *localDialer) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	d.dials.Add(1)
	switch d.mode.Load() {
	case dialLocalFail:
		return nil, &net.OpError{Op: "dial", Net: network, Err: os.NewSyscallError("socket", syscall.EMFILE)}
	case dialAlternate:
		if d.alternated.Add(1)%2 == 1 {
			return nil, &net.OpError{Op: "dial", Net: network, Err: os.NewSyscallError("socket", syscall.EMFILE)}
		}
	}
	return (&net.Dialer{}).DialContext(ctx, network, addr)
}

// client is a probe client that dials through d and, like the default one, afresh per probe.
func (d *localDialer) client(t *testing.T) *http.Client {
	tr := &http.Transport{DialContext: d.DialContext, DisableKeepAlives: true}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr}
}

func newLocalErrChecker(t *testing.T, cfg Config, d *localDialer) (*Checker, *prometheus.Registry, *testutil.LogBuffer) {
	t.Helper()
	logs := &testutil.LogBuffer{}
	reg := prometheus.NewRegistry()
	c, err := NewChecker(cfg, d.client(t), slog.New(slog.NewJSONHandler(logs, nil)), reg)
	if err != nil {
		t.Fatalf("NewChecker: %v", err)
	}
	return c, reg, logs
}

// TestCheckerLocalErrorsAreNoResult: a probe that fails because this node is out of resources
// neither fails nor passes the backend.
func TestCheckerLocalErrorsAreNoResult(t *testing.T) {
	t.Run("a healthy backend stays up and no result is reported", func(t *testing.T) {
		be := newBackend(t, http.StatusOK)
		d := &localDialer{}
		d.mode.Store(dialLocalFail)
		cfg := fastConfig() // fall 3
		c, reg, logs := newLocalErrChecker(t, cfg, d)
		var results atomic.Int64
		c.OnResult(func(Result) { results.Add(1) })
		c.SetTargets([]Target{{ID: "a", Pool: "p", Address: be.addr(), Path: "/health"}})
		start := time.Now()
		run(t, c)
		// Probes of one target run one after the other, so once this many have dialled, all
		// but the last have been judged: three times over enough to take a down.
		const probes = 3*3 + 1
		testutil.Eventually(t, "probes failing locally", func() bool { return d.dials.Load() >= probes })
		want := float64(probes - 1)
		if !c.Healthy("a") {
			t.Fatal("Healthy(a) = false after local failures only")
		}
		st := statusOf(t, c, "a")
		if st.ConsecutiveFailures != 0 || st.LastError != "" || !st.LastCheck.IsZero() {
			t.Fatalf("status = %+v, want no failure and no check recorded", st)
		}
		if n := results.Load(); n != 0 {
			t.Fatalf("%d results reported, want none", n)
		}
		if got := series(t, reg, "veloflux_health_checks_total"); len(got) != 0 {
			t.Fatalf("veloflux_health_checks_total = %v, want no series", got)
		}
		if got := series(t, reg, "veloflux_health_probe_local_errors_total"); got[""] < want {
			t.Fatalf("veloflux_health_probe_local_errors_total = %v, want >= %v", got, want)
		}
		if be.hits.Load() != 0 {
			t.Fatalf("the backend got %d probes through a dialer that always fails", be.hits.Load())
		}
		lines := logs.Find("health probe failed for lack of local resources; not counted against the backend")
		allowed := 1 + int(time.Since(start)/localErrorLogEvery)
		if len(lines) == 0 || len(lines) > allowed {
			t.Fatalf("%d warnings for %v local failures in %v, want 1..%d", len(lines), want, time.Since(start), allowed)
		}
		if l := lines[0]; l["level"] != "WARN" || l["backend"] != "a" || l["reason"] != "dial tcp: too many open files" || l["suppressed"] != float64(0) {
			t.Fatalf("warning = %v", l)
		}
	})

	t.Run("local failures do not break a rise streak", func(t *testing.T) {
		be := newBackend(t, http.StatusInternalServerError)
		d := &localDialer{}
		cfg := fastConfig()
		cfg.Rise = 3
		c, _, _ := newLocalErrChecker(t, cfg, d)
		c.SetTargets([]Target{{ID: "a", Pool: "p", Address: be.addr(), Path: "/health"}})
		run(t, c)
		testutil.Eventually(t, "a down", func() bool { return !c.Healthy("a") })
		// From now on every success is followed by a local failure: a streak that such a
		// failure broke would never reach rise. The dialer alternates before the backend
		// answers 200, starting with a local failure, so no probe can succeed without a local
		// failure after it, a probe dialed before the switch and answered after it included.
		before := promtest.ToFloat64(c.metrics.localErrors)
		d.mode.Store(dialAlternate)
		be.status.Store(http.StatusOK)
		testutil.Eventually(t, "a up with local failures between its successes", func() bool { return c.Healthy("a") })
		if got := promtest.ToFloat64(c.metrics.localErrors) - before; got < float64(cfg.Rise-1) {
			t.Fatalf("%v local failures while rising, want >= %d", got, cfg.Rise-1)
		}
	})

	t.Run("a closed port still marks the backend down", func(t *testing.T) {
		d := &localDialer{}
		c, _, _ := newLocalErrChecker(t, fastConfig(), d)
		c.SetTargets([]Target{{ID: "gone", Pool: "p", Address: closedAddr(t), Path: "/health"}})
		run(t, c)
		testutil.Eventually(t, "gone down", func() bool { return !c.Healthy("gone") })
		if got := statusOf(t, c, "gone").LastError; got != "dial tcp: connection refused" {
			t.Fatalf("LastError = %q, want %q", got, "dial tcp: connection refused")
		}
		if got := promtest.ToFloat64(c.metrics.localErrors); got != 0 {
			t.Fatalf("%v local failures counted for a refused connection, want 0", got)
		}
	})
}
