package health

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/veloflux/veloflux/internal/testutil"
)

// fakeProber records ProbeNow calls and answers whether a backend is actively checked.
type fakeProber struct {
	mu      sync.Mutex
	checked map[string]bool
	calls   []string
}

func (f *fakeProber) ProbeNow(id string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, id)
	return f.checked[id]
}

func (f *fakeProber) setChecked(id string, checked bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.checked[id] = checked
}

func (f *fakeProber) callsFor(id string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, c := range f.calls {
		if c == id {
			n++
		}
	}
	return n
}

// change is one OnChange call.
type change struct {
	id      string
	ejected bool
	reason  string
}

// changeLog collects OnChange calls.
type changeLog struct {
	mu  sync.Mutex
	all []change
}

func (l *changeLog) record(id string, ejected bool, reason string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.all = append(l.all, change{id, ejected, reason})
}

func (l *changeLog) get() []change {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]change(nil), l.all...)
}

type passiveFixture struct {
	p       *Passive
	reg     *prometheus.Registry
	logs    *testutil.LogBuffer
	changes *changeLog
}

func newTestPassive(t *testing.T, prober Prober) passiveFixture {
	t.Helper()
	f := passiveFixture{reg: prometheus.NewRegistry(), logs: &testutil.LogBuffer{}, changes: &changeLog{}}
	var err error
	f.p, err = NewPassive(prober, slog.New(slog.NewJSONHandler(f.logs, &slog.HandlerOptions{Level: slog.LevelDebug})), f.reg)
	if err != nil {
		t.Fatalf("NewPassive: %v", err)
	}
	f.p.OnChange(f.changes.record)
	return f
}

// runPassive starts p.Run until the test ends, and checks that it returns nil.
func runPassive(t *testing.T, p *Passive) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run() = %v, want nil", err)
			}
		case <-time.After(testutil.Timeout()):
			t.Errorf("Passive.Run did not return within %s of cancel", testutil.Timeout())
		}
	})
}

func passiveConfig(failures int, ejection, maxEjection time.Duration, percent int) PassiveConfig {
	return PassiveConfig{ConsecutiveFailures: failures, EjectionTime: ejection, MaxEjectionTime: maxEjection, MaxEjectionPercent: percent}
}

func onePool(cfg PassiveConfig, ids ...string) []PassivePool {
	return []PassivePool{{Name: "web", Config: cfg, Backends: ids}}
}

func passiveStatusOf(t *testing.T, p *Passive, id string) PassiveStatus {
	t.Helper()
	for _, s := range p.Status() {
		if s.ID == id {
			return s
		}
	}
	t.Fatalf("no passive status for %q", id)
	return PassiveStatus{}
}

func report(p *Passive, id string, outcomes ...Outcome) {
	for _, o := range outcomes {
		p.Report(id, o)
	}
}

func TestPassiveConfigValidate(t *testing.T) {
	tests := []struct {
		name    string
		mutate  func(*PassiveConfig)
		wantErr []string
	}{
		{name: "default is valid", mutate: func(*PassiveConfig) {}},
		{name: "0 failures turns it off", mutate: func(c *PassiveConfig) { c.ConsecutiveFailures = 0 }},
		{name: "negative failures", mutate: func(c *PassiveConfig) { c.ConsecutiveFailures = -1 }, wantErr: []string{"consecutive_failures: must be >= 0, got -1"}},
		{name: "zero ejection time", mutate: func(c *PassiveConfig) { c.EjectionTime = 0 }, wantErr: []string{"ejection_time: must be > 0, got 0s"}},
		{name: "max below ejection time", mutate: func(c *PassiveConfig) { c.MaxEjectionTime = time.Second }, wantErr: []string{"max_ejection_time: must be at least ejection_time (30s), got 1s"}},
		{name: "percent above 100", mutate: func(c *PassiveConfig) { c.MaxEjectionPercent = 101 }, wantErr: []string{"max_ejection_percent: must be between 0 and 100, got 101"}},
		{name: "negative percent", mutate: func(c *PassiveConfig) { c.MaxEjectionPercent = -5 }, wantErr: []string{"max_ejection_percent: must be between 0 and 100, got -5"}},
		{
			name: "all at once",
			mutate: func(c *PassiveConfig) {
				*c = PassiveConfig{ConsecutiveFailures: -1, EjectionTime: time.Minute, MaxEjectionTime: time.Second, MaxEjectionPercent: 200}
			},
			wantErr: []string{"consecutive_failures: must be >= 0", "max_ejection_time: must be at least ejection_time (1m0s), got 1s", "max_ejection_percent: must be between 0 and 100"},
		},
		{
			// max_ejection_time is judged against a valid ejection_time only, so one mistake
			// gives one message.
			name:    "bad ejection time alone",
			mutate:  func(c *PassiveConfig) { c.EjectionTime, c.MaxEjectionTime = -1, -2 },
			wantErr: []string{"ejection_time: must be > 0, got -1ns"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := DefaultPassiveConfig()
			tt.mutate(&c)
			err := c.Validate()
			if len(tt.wantErr) == 0 {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate() = nil, want %q", tt.wantErr)
			}
			for _, w := range tt.wantErr {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Validate() = %q, want it to contain %q", err, w)
				}
			}
		})
	}
}

func TestDefaultPassiveConfig(t *testing.T) {
	want := PassiveConfig{ConsecutiveFailures: 5, EjectionTime: 30 * time.Second, MaxEjectionTime: 5 * time.Minute, MaxEjectionPercent: 50}
	if got := DefaultPassiveConfig(); got != want {
		t.Fatalf("DefaultPassiveConfig() = %+v, want %+v", got, want)
	}
}

func TestMaxEjected(t *testing.T) {
	tests := []struct {
		size, percent, want int
	}{
		{size: 0, percent: 50, want: 0},
		{size: 1, percent: 50, want: 0},  // a pool of one is never emptied
		{size: 1, percent: 100, want: 0}, // not even at 100%
		{size: 2, percent: 50, want: 1},
		{size: 2, percent: 100, want: 1}, // the last one stays
		{size: 3, percent: 50, want: 1},  // rounded down
		{size: 4, percent: 50, want: 2},
		{size: 10, percent: 10, want: 1},
		{size: 10, percent: 1, want: 1}, // at least one
		{size: 10, percent: 0, want: 0}, // 0 means never
		{size: 10, percent: 100, want: 9},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%d backends at %d%%", tt.size, tt.percent), func(t *testing.T) {
			if got := maxEjected(tt.size, tt.percent); got != tt.want {
				t.Fatalf("maxEjected(%d, %d) = %d, want %d", tt.size, tt.percent, got, tt.want)
			}
		})
	}
}

func TestEjectionTime(t *testing.T) {
	tests := []struct {
		name        string
		base, limit time.Duration
		n           int
		want        time.Duration
	}{
		{name: "first", base: 30 * time.Second, limit: 5 * time.Minute, n: 1, want: 30 * time.Second},
		{name: "third", base: 30 * time.Second, limit: 5 * time.Minute, n: 3, want: 90 * time.Second},
		{name: "capped", base: 30 * time.Second, limit: 5 * time.Minute, n: 11, want: 5 * time.Minute},
		{name: "no overflow", base: time.Hour, limit: 1<<63 - 1, n: 1 << 40, want: 1<<63 - 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := ejectionTime(tt.base, tt.limit, tt.n); got != tt.want {
				t.Fatalf("ejectionTime(%s, %s, %d) = %s, want %s", tt.base, tt.limit, tt.n, got, tt.want)
			}
		})
	}
}

func TestPassiveEjection(t *testing.T) {
	tests := []struct {
		name       string
		outcomes   []Outcome
		wantEject  bool
		wantReason string
		wantLabel  string
	}{
		{name: "below the threshold", outcomes: []Outcome{Outcome5xx, Outcome5xx}},
		{name: "a success breaks the run", outcomes: []Outcome{Outcome5xx, Outcome5xx, OutcomeSuccess, Outcome5xx, Outcome5xx}},
		{name: "three 5xx", outcomes: []Outcome{Outcome5xx, Outcome5xx, Outcome5xx}, wantEject: true, wantReason: "3 consecutive 5xx responses", wantLabel: "5xx"},
		{name: "three refused connections", outcomes: []Outcome{OutcomeConnectFailure, OutcomeConnectFailure, OutcomeConnectFailure}, wantEject: true, wantReason: "3 consecutive connection failures", wantLabel: "connect_failure"},
		{name: "three timeouts", outcomes: []Outcome{OutcomeTimeout, OutcomeTimeout, OutcomeTimeout}, wantEject: true, wantReason: "3 consecutive timeouts", wantLabel: "timeout"},
		{
			name:       "mixed failures count together",
			outcomes:   []Outcome{Outcome5xx, OutcomeTimeout, Outcome5xx},
			wantEject:  true,
			wantReason: "3 consecutive failures (5xx responses, timeouts)",
			wantLabel:  "mixed",
		},
		{name: "the kinds before a success are forgotten", outcomes: []Outcome{OutcomeTimeout, OutcomeSuccess, Outcome5xx, Outcome5xx, Outcome5xx}, wantEject: true, wantReason: "3 consecutive 5xx responses", wantLabel: "5xx"},
		{name: "unknown outcomes are ignored", outcomes: []Outcome{Outcome5xx, Outcome5xx, numOutcomes, Outcome(200)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newTestPassive(t, nil)
			f.p.SetPools(onePool(passiveConfig(3, time.Hour, time.Hour, 50), "a", "b", "c", "d"))
			report(f.p, "a", tt.outcomes...)
			if got := f.p.Ejected("a"); got != tt.wantEject {
				t.Fatalf("Ejected(a) = %v, want %v", got, tt.wantEject)
			}
			if f.p.Ejected("b") {
				t.Fatal("Ejected(b) = true for a backend without failures")
			}
			st := passiveStatusOf(t, f.p, "a")
			ejections := counterSeries(t, f.reg, "veloflux_health_ejections_total")
			gauge := counterSeries(t, f.reg, "veloflux_health_ejected_backends")
			if !tt.wantEject {
				if st.Ejected || st.Reason != "" || len(ejections) != 0 || gauge["pool=web"] != 0 {
					t.Fatalf("not ejected, but status %+v, ejections %v, gauge %v", st, ejections, gauge)
				}
				return
			}
			if !st.Ejected || st.Reason != tt.wantReason || st.Ejections != 1 || st.Pool != "web" {
				t.Fatalf("status = %+v, want ejected once in pool web for %q", st, tt.wantReason)
			}
			if d := st.Until.Sub(st.Since); d != time.Hour {
				t.Fatalf("ejected for %s, want the ejection time of 1h", d)
			}
			key := "backend=a,pool=web,reason=" + tt.wantLabel
			if len(ejections) != 1 || ejections[key] != 1 {
				t.Fatalf("veloflux_health_ejections_total = %v, want %s = 1", ejections, key)
			}
			if gauge["pool=web"] != 1 {
				t.Fatalf("veloflux_health_ejected_backends = %v, want pool=web 1", gauge)
			}
			if got := f.changes.get(); len(got) != 1 || got[0] != (change{"a", true, tt.wantReason}) {
				t.Fatalf("OnChange calls = %+v, want one ejection of a", got)
			}
			logs := f.logs.Find("backend ejected")
			if len(logs) != 1 || logs[0]["backend"] != "a" || logs[0]["reason"] != tt.wantReason || logs[0]["level"] != "INFO" {
				t.Fatalf("ejection logs = %v", logs)
			}
			// Requests that were in flight at the ejection change nothing.
			report(f.p, "a", Outcome5xx, Outcome5xx, Outcome5xx, OutcomeSuccess)
			if !f.p.Ejected("a") || counterSeries(t, f.reg, "veloflux_health_ejections_total")[key] != 1 {
				t.Fatal("reports about an ejected backend changed its ejection")
			}
		})
	}
}

// counterSeries returns the samples of one counter or gauge family keyed by sorted labels.
func counterSeries(t *testing.T, reg *prometheus.Registry, name string) map[string]float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			var labels []string
			for _, l := range m.GetLabel() {
				labels = append(labels, l.GetName()+"="+l.GetValue())
			}
			v := m.GetCounter().GetValue()
			if m.GetGauge() != nil {
				v = m.GetGauge().GetValue()
			}
			out[strings.Join(labels, ",")] = v
		}
	}
	return out
}

// TestFailureOutcomesAreNamed: every failure outcome the proxy can report (attempt.Outcome, shared
// with it) has a metric label and words for Status reasons, so a new outcome cannot be
// ejected under an empty reason.
func TestFailureOutcomesAreNamed(t *testing.T) {
	for o := OutcomeSuccess + 1; o < numOutcomes; o++ {
		if n := failureNames[o]; n.label == "" || n.one == "" || n.plural == "" {
			t.Errorf("outcome %d has names %+v", o, n)
		}
	}
}

func TestDescribeFailures(t *testing.T) {
	bit := func(os ...Outcome) uint32 {
		var k uint32
		for _, o := range os {
			k |= 1 << o
		}
		return k
	}
	tests := []struct {
		n                   int64
		kinds               uint32
		wantLabel, wantText string
	}{
		{1, bit(Outcome5xx), "5xx", "a 5xx response"},
		{1, bit(OutcomeTimeout), "timeout", "a timeout"},
		{5, bit(Outcome5xx), "5xx", "5 consecutive 5xx responses"},
		{5, bit(OutcomeConnectFailure), "connect_failure", "5 consecutive connection failures"},
		{3, bit(OutcomeConnectFailure, OutcomeTimeout), "mixed", "3 consecutive failures (connection failures, timeouts)"},
		{4, bit(Outcome5xx, OutcomeConnectFailure, OutcomeTimeout), "mixed", "4 consecutive failures (5xx responses, connection failures, timeouts)"},
		{2, 0, "mixed", "2 consecutive failures"}, // kinds cleared by a racing success
	}
	for _, tt := range tests {
		t.Run(tt.wantText, func(t *testing.T) {
			label, text := describeFailures(tt.n, tt.kinds)
			if label != tt.wantLabel || text != tt.wantText {
				t.Fatalf("describeFailures(%d, %b) = %q, %q; want %q, %q", tt.n, tt.kinds, label, text, tt.wantLabel, tt.wantText)
			}
		})
	}
}

func TestPassiveReturnsWhenTimeIsUp(t *testing.T) {
	f := newTestPassive(t, &fakeProber{checked: map[string]bool{}})
	f.p.SetPools(onePool(passiveConfig(2, 50*time.Millisecond, time.Second, 50), "a", "b"))
	runPassive(t, f.p)
	report(f.p, "a", OutcomeConnectFailure, OutcomeConnectFailure)
	if !f.p.Ejected("a") {
		t.Fatal("a not ejected after 2 connection failures")
	}
	start := time.Now()
	testutil.Eventually(t, "a back", func() bool { return !f.p.Ejected("a") })
	if took := time.Since(start); took < 40*time.Millisecond {
		t.Fatalf("a returned after %s, before its 50ms ejection time", took)
	}
	want := []change{{"a", true, "2 consecutive connection failures"}, {"a", false, "ejection time over"}}
	if got := f.changes.get(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("OnChange calls = %+v, want %+v", got, want)
	}
	if g := counterSeries(t, f.reg, "veloflux_health_ejected_backends"); g["pool=web"] != 0 {
		t.Fatalf("gauge after return = %v, want 0", g)
	}
	if st := passiveStatusOf(t, f.p, "a"); st.Ejected || st.ConsecutiveFailures != 0 || st.Ejections != 1 {
		t.Fatalf("status after return = %+v, want back, failures reset, one ejection remembered", st)
	}
}

func TestPassiveEjectionTimeGrowsAndDecays(t *testing.T) {
	const base, maxT = 30 * time.Millisecond, 150 * time.Millisecond
	f := newTestPassive(t, nil)
	f.p.SetPools(onePool(passiveConfig(1, base, maxT, 50), "a", "b"))
	runPassive(t, f.p)
	ejectAndWait := func(want time.Duration) {
		t.Helper()
		f.p.Report("a", Outcome5xx)
		st := passiveStatusOf(t, f.p, "a")
		if !st.Ejected {
			t.Fatalf("not ejected: %+v", st)
		}
		if got := st.Until.Sub(st.Since); got != want {
			t.Fatalf("ejection %d lasts %s, want %s", st.Ejections, got, want)
		}
		testutil.Eventually(t, "a back", func() bool { return !f.p.Ejected("a") })
	}
	ejectAndWait(base)
	ejectAndWait(2 * base)
	ejectAndWait(3 * base)
	ejectAndWait(4 * base)
	ejectAndWait(maxT) // 5 × 30ms = the cap
	ejectAndWait(maxT)
	// Quiet for max_ejection_time: the count starts again.
	time.Sleep(maxT + 10*time.Millisecond)
	ejectAndWait(base)
	if st := passiveStatusOf(t, f.p, "a"); st.Ejections != 1 {
		t.Fatalf("ejections after a quiet period = %d, want 1", st.Ejections)
	}
}

func TestPassiveReturnsThroughProbe(t *testing.T) {
	prober := &fakeProber{checked: map[string]bool{"a": true}}
	f := newTestPassive(t, prober)
	f.p.SetPools(onePool(passiveConfig(1, 50*time.Millisecond, time.Hour, 50), "a", "b"))
	runPassive(t, f.p)
	f.p.Report("a", Outcome5xx)

	t.Run("a success during the ejection time does not shorten it", func(t *testing.T) {
		f.p.ObserveProbe(Result{ID: "a", OK: true})
		if !f.p.Ejected("a") {
			t.Fatal("a probe before the ejection time was over returned the backend")
		}
	})
	t.Run("time up asks for a probe and waits", func(t *testing.T) {
		testutil.Eventually(t, "a probe asked for", func() bool { return prober.callsFor("a") == 1 })
		st := passiveStatusOf(t, f.p, "a")
		if !st.Ejected || !st.AwaitingProbe {
			t.Fatalf("status after the ejection time = %+v, want ejected and awaiting a probe", st)
		}
		time.Sleep(60 * time.Millisecond) // it does not come back by itself
		if !f.p.Ejected("a") {
			t.Fatal("a checked backend returned without a successful probe")
		}
	})
	t.Run("a failed probe keeps it out", func(t *testing.T) {
		f.p.ObserveProbe(Result{ID: "a", OK: false, Reason: "status 503"})
		if !f.p.Ejected("a") {
			t.Fatal("a failed probe returned the backend")
		}
	})
	t.Run("the first successful probe returns it", func(t *testing.T) {
		f.p.ObserveProbe(Result{ID: "b", OK: true}) // another backend's probe changes nothing
		if !f.p.Ejected("a") {
			t.Fatal("b's probe returned a")
		}
		f.p.ObserveProbe(Result{ID: "a", OK: true})
		if f.p.Ejected("a") {
			t.Fatal("a still ejected after a successful probe")
		}
		want := []change{{"a", true, "a 5xx response"}, {"a", false, "probe succeeded"}}
		if got := f.changes.get(); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("OnChange calls = %+v, want %+v", got, want)
		}
	})
}

func TestPassiveMaxEjectionPercent(t *testing.T) {
	tests := []struct {
		name         string
		pools        []PassivePool
		failing      []string
		wantEjected  int
		wantSkipped  map[string]float64
		wantWarnings int
	}{
		{
			name:        "pool of one is never emptied",
			pools:       onePool(passiveConfig(1, time.Hour, time.Hour, 100), "a"),
			failing:     []string{"a"},
			wantEjected: 0,
			wantSkipped: map[string]float64{"pool=web": 1},
		},
		{
			name:        "half of four",
			pools:       onePool(passiveConfig(1, time.Hour, time.Hour, 50), "a", "b", "c", "d"),
			failing:     []string{"a", "b", "c", "d"},
			wantEjected: 2,
			wantSkipped: map[string]float64{"pool=web": 2},
		},
		{
			name:        "at least one of ten at 5 percent",
			pools:       onePool(passiveConfig(1, time.Hour, time.Hour, 5), "0", "1", "2", "3", "4", "5", "6", "7", "8", "9"),
			failing:     []string{"0", "1"},
			wantEjected: 1,
			wantSkipped: map[string]float64{"pool=web": 1},
		},
		{
			name:        "0 percent never ejects",
			pools:       onePool(passiveConfig(1, time.Hour, time.Hour, 0), "a", "b"),
			failing:     []string{"a"},
			wantEjected: 0,
			wantSkipped: map[string]float64{"pool=web": 1},
		},
		{
			name: "a backend in two pools needs room in both",
			pools: []PassivePool{
				{Name: "big", Config: passiveConfig(1, time.Hour, time.Hour, 50), Backends: []string{"shared", "x", "y", "z"}},
				{Name: "solo", Config: passiveConfig(1, time.Hour, time.Hour, 50), Backends: []string{"shared"}},
			},
			failing:     []string{"shared"},
			wantEjected: 0,
			wantSkipped: map[string]float64{"pool=big": 0, "pool=solo": 1},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newTestPassive(t, nil)
			f.p.SetPools(tt.pools)
			for _, id := range tt.failing {
				// Failing on and on: a refused ejection starts the count again, and is
				// tried again, but never succeeds while the pool has no room.
				report(f.p, id, Outcome5xx)
			}
			ejected := 0
			for _, s := range f.p.Status() {
				if s.Ejected != f.p.Ejected(s.ID) {
					t.Fatalf("Status says %s ejected=%v, Ejected says %v", s.ID, s.Ejected, f.p.Ejected(s.ID))
				}
				if s.Ejected {
					ejected++
				}
			}
			if ejected != tt.wantEjected {
				t.Fatalf("%d backends ejected, want %d", ejected, tt.wantEjected)
			}
			skipped := counterSeries(t, f.reg, "veloflux_health_ejections_skipped_total")
			for k, v := range tt.wantSkipped {
				if skipped[k] != v {
					t.Fatalf("veloflux_health_ejections_skipped_total = %v, want %s = %v", skipped, k, v)
				}
			}
			if n := len(f.logs.Find("backend not ejected: its pool already has as many ejected backends as max_ejection_percent allows")); n != len(tt.failing)-tt.wantEjected {
				t.Fatalf("%d warnings about refused ejections, want one per refused backend", n)
			}
			// A refused backend that keeps failing is refused again without a new warning.
			for _, id := range tt.failing {
				report(f.p, id, Outcome5xx)
			}
			if n := len(f.logs.Find("backend not ejected: its pool already has as many ejected backends as max_ejection_percent allows")); n != len(tt.failing)-tt.wantEjected {
				t.Fatalf("%d warnings after more failures, want still one per refused backend", n)
			}
		})
	}
}

func TestPassiveSetPools(t *testing.T) {
	prober := &fakeProber{checked: map[string]bool{"waiting": true}}
	f := newTestPassive(t, prober)
	cfg := passiveConfig(1, time.Hour, time.Hour, 100)
	short := passiveConfig(1, 20*time.Millisecond, time.Hour, 100)
	f.p.SetPools([]PassivePool{
		{Name: "web", Config: cfg, Backends: []string{"kept", "removed", "spare1", "spare2"}},
		{Name: "off", Config: cfg, Backends: []string{"disabled", "spare3"}},
		{Name: "probed", Config: short, Backends: []string{"waiting", "spare4"}},
	})
	runPassive(t, f.p)
	for _, id := range []string{"kept", "removed", "disabled", "waiting"} {
		f.p.Report(id, OutcomeTimeout)
		if !f.p.Ejected(id) {
			t.Fatalf("%s not ejected", id)
		}
	}
	testutil.Eventually(t, "waiting awaits its probe", func() bool { return passiveStatusOf(t, f.p, "waiting").AwaitingProbe })
	prober.setChecked("waiting", false) // its active check goes away with this reload

	off := cfg
	off.ConsecutiveFailures = 0
	f.p.SetPools([]PassivePool{
		{Name: "web", Config: cfg, Backends: []string{"kept", "spare1", "spare2"}},
		{Name: "off", Config: off, Backends: []string{"disabled", "spare3"}},
		{Name: "probed", Config: short, Backends: []string{"waiting", "spare4"}},
	})
	tests := []struct {
		id      string
		ejected bool
		reason  string // of the return; "" when still ejected
	}{
		{"kept", true, ""},
		{"removed", false, "removed"},
		{"disabled", false, "passive checks off"},
		{"waiting", false, "no active check"},
	}
	got := f.changes.get()
	for _, tt := range tests {
		t.Run(tt.id, func(t *testing.T) {
			if f.p.Ejected(tt.id) != tt.ejected {
				t.Fatalf("Ejected(%s) = %v, want %v", tt.id, !tt.ejected, tt.ejected)
			}
			if tt.reason == "" {
				return
			}
			found := false
			for _, c := range got {
				found = found || c == (change{tt.id, false, tt.reason})
			}
			if !found {
				t.Fatalf("no return of %s with reason %q in %+v", tt.id, tt.reason, got)
			}
		})
	}
	t.Run("removed backend's series are gone", func(t *testing.T) {
		for key := range counterSeries(t, f.reg, "veloflux_health_ejections_total") {
			if strings.Contains(key, "backend=removed") {
				t.Fatalf("series %s of a removed backend remains", key)
			}
		}
		if g := counterSeries(t, f.reg, "veloflux_health_ejected_backends"); g["pool=web"] != 1 || g["pool=off"] != 0 || g["pool=probed"] != 0 {
			t.Fatalf("ejected gauge = %v, want web 1, off 0, probed 0", g)
		}
		if _, listed := slicesIndex(f.p.Status(), "removed"); listed {
			t.Fatal("Status still lists the removed backend")
		}
	})
	t.Run("removed backend's reports are ignored", func(t *testing.T) {
		f.p.Report("removed", OutcomeTimeout)
		if f.p.Ejected("removed") {
			t.Fatal("an unknown backend was ejected")
		}
	})
	t.Run("removing a pool deletes its gauge", func(t *testing.T) {
		f.p.SetPools([]PassivePool{{Name: "web", Config: cfg, Backends: []string{"kept", "spare1", "spare2"}}})
		g := counterSeries(t, f.reg, "veloflux_health_ejected_backends")
		if _, ok := g["pool=off"]; ok || len(g) != 1 {
			t.Fatalf("ejected gauge = %v, want only pool=web", g)
		}
	})
	t.Run("invalid config is logged and replaced by the default", func(t *testing.T) {
		// Five backends at the default 50%: kept, still ejected, leaves room for one more.
		f.p.SetPools([]PassivePool{{Name: "web", Config: PassiveConfig{ConsecutiveFailures: -1}, Backends: []string{"kept", "spare1", "spare2", "spare5", "spare6"}}})
		recs := f.logs.Find("invalid passive check settings")
		if len(recs) != 1 || !strings.Contains(recs[0]["problems"].(string), `pool "web": passive.consecutive_failures`) {
			t.Fatalf("logs = %v", recs)
		}
		report(f.p, "spare1", Outcome5xx, Outcome5xx, Outcome5xx, Outcome5xx)
		if f.p.Ejected("spare1") {
			t.Fatal("ejected after 4 failures; the default needs 5")
		}
		f.p.Report("spare1", Outcome5xx)
		if !f.p.Ejected("spare1") {
			t.Fatal("not ejected after 5 failures under the default config")
		}
	})
}

func slicesIndex(st []PassiveStatus, id string) (int, bool) {
	for i, s := range st {
		if s.ID == id {
			return i, true
		}
	}
	return -1, false
}

func TestPassiveRunTwice(t *testing.T) {
	f := newTestPassive(t, nil)
	runPassive(t, f.p)
	testutil.Eventually(t, "Run started", func() bool {
		f.p.mu.Lock()
		defer f.p.mu.Unlock()
		return f.p.running
	})
	if err := f.p.Run(t.Context()); !errors.Is(err, ErrPassiveRunning) {
		t.Fatalf("second Run = %v, want ErrPassiveRunning", err)
	}
}

func TestNewPassiveMetricsRegistered(t *testing.T) {
	reg := prometheus.NewRegistry()
	if _, err := NewPassive(nil, nil, reg); err != nil {
		t.Fatal(err)
	}
	_, err := NewPassive(nil, nil, reg)
	var already prometheus.AlreadyRegisteredError
	if !errors.As(err, &already) {
		t.Fatalf("second NewPassive on one registry = %v, want AlreadyRegisteredError", err)
	}
	// The checker's metrics live beside the passive ones.
	if _, err := NewChecker(DefaultConfig(), nil, nil, reg); err != nil {
		t.Fatalf("NewChecker beside NewPassive: %v", err)
	}
}

// TestPassiveReportDoesNotAllocate guards the request path: a success, and a failure that
// ejects nothing, allocate nothing.
func TestPassiveReportDoesNotAllocate(t *testing.T) {
	f := newTestPassive(t, nil)
	f.p.SetPools(onePool(passiveConfig(1000000, time.Hour, time.Hour, 50), "a", "b"))
	for _, o := range []Outcome{OutcomeSuccess, Outcome5xx, OutcomeTimeout} {
		if n := testing.AllocsPerRun(1000, func() { f.p.Report("a", o); f.p.Report("unknown", o) }); n != 0 {
			t.Errorf("Report(%d) allocates %v times per call", o, n)
		}
	}
	if n := testing.AllocsPerRun(1000, func() { _ = f.p.Ejected("a") }); n != 0 {
		t.Errorf("Ejected allocates %v times per call", n)
	}
}

// TestPassiveConcurrentUse is for -race: reports from many goroutines while pools change and
// ejections come and go.
func TestPassiveConcurrentUse(t *testing.T) {
	prober := &fakeProber{checked: map[string]bool{"b0": true}}
	f := newTestPassive(t, prober)
	ids := []string{"b0", "b1", "b2", "b3"}
	f.p.SetPools(onePool(passiveConfig(2, time.Millisecond, 5*time.Millisecond, 50), ids...))
	runPassive(t, f.p)
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel()
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := 0; ctx.Err() == nil; i++ {
				id := ids[(g+i)%len(ids)]
				f.p.Report(id, Outcome(i%int(numOutcomes)))
				_ = f.p.Ejected(id)
			}
		})
	}
	wg.Go(func() {
		for i := 0; ctx.Err() == nil; i++ {
			f.p.SetPools(onePool(passiveConfig(1+i%3, time.Millisecond, 5*time.Millisecond, 50), ids[:2+i%3]...))
			f.p.ObserveProbe(Result{ID: "b0", OK: true})
			_ = f.p.Status()
		}
	})
	wg.Wait()
	f.p.SetPools(onePool(passiveConfig(2, time.Millisecond, 5*time.Millisecond, 50), ids...))
	for _, s := range f.p.Status() {
		if s.Ejected != f.p.Ejected(s.ID) {
			t.Fatalf("status and snapshot disagree on %s", s.ID)
		}
	}
	ejected := 0
	for _, s := range f.p.Status() {
		if s.Ejected {
			ejected++
		}
	}
	if ejected > 2 {
		t.Fatalf("%d of 4 backends ejected at 50%%", ejected)
	}
}

// BenchmarkPassiveReport measures the request path's cost: a success on a healthy backend
// (the steady state), and a mix with failures that never reach the threshold.
func BenchmarkPassiveReport(b *testing.B) {
	p, err := NewPassive(nil, nil, nil)
	if err != nil {
		b.Fatal(err)
	}
	ids := make([]string, 1000)
	for i := range ids {
		ids[i] = fmt.Sprint("backend-", i)
	}
	p.SetPools(onePool(passiveConfig(1<<40, time.Hour, time.Hour, 50), ids...))
	b.Run("success", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				p.Report("backend-500", OutcomeSuccess)
			}
		})
	})
	b.Run("failures", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			i := 0
			for pb.Next() {
				o := OutcomeSuccess
				if i%4 == 0 {
					o = Outcome5xx
				}
				p.Report("backend-500", o)
				i++
			}
		})
	})
	b.Run("ejected", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				_ = p.Ejected("backend-500")
			}
		})
	})
}

// blockingStepper stands in for the Pacer: its first Step tells the test that SetPools is
// pacing and waits until the test lets it go on.
type blockingStepper struct {
	once    sync.Once
	pacing  chan struct{}
	release chan struct{}
}

func (s *blockingStepper) Step() {
	s.once.Do(func() {
		close(s.pacing)
		<-s.release
	})
}

// A request whose failure ejects a backend while SetPools steps aside (a reload of a large
// table) is not held up by it: SetPools holds the lock only to swap in what it built.
func TestPassiveReportDuringPacedSetPools(t *testing.T) {
	f := newTestPassive(t, nil)
	cfg := passiveConfig(2, time.Hour, time.Hour, 50)
	f.p.SetPools(onePool(cfg, "a", "b", "c", "d"))

	st := &blockingStepper{pacing: make(chan struct{}), release: make(chan struct{})}
	var releaseOnce sync.Once
	release := func() { releaseOnce.Do(func() { close(st.release) }) }
	t.Cleanup(release)
	f.p.setStepper(st)
	setDone := make(chan struct{})
	go func() {
		defer close(setDone)
		f.p.SetPools(onePool(cfg, "a", "b", "c", "d", "e"))
	}()
	testutil.Receive(t, st.pacing, "SetPools to step aside")

	reported := make(chan struct{})
	go func() {
		defer close(reported)
		report(f.p, "a", Outcome5xx, Outcome5xx)
	}()
	testutil.Receive(t, reported, "the ejecting report to return while SetPools steps aside")
	if !f.p.Ejected("a") {
		t.Fatal("a is not ejected after two 5xx responses")
	}
	release()
	testutil.Receive(t, setDone, "SetPools to end")
	if s := passiveStatusOf(t, f.p, "a"); !s.Ejected || s.Pool != "web" {
		t.Fatalf("after SetPools, a is %+v, want still ejected in web", s)
	}
	if got := passiveStatusOf(t, f.p, "e"); got.Ejected {
		t.Fatalf("e is %+v, want not ejected", got)
	}
	if g := counterSeries(t, f.reg, "veloflux_health_ejected_backends"); g["pool=web"] != 1 {
		t.Fatalf("veloflux_health_ejected_backends = %v, want pool=web 1", g)
	}
}
