package main

import (
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/veloflux/veloflux/internal/pace"
	"github.com/veloflux/veloflux/internal/testutil/testconfig"
)

// bigConfig is a node's configuration with pools × perPool backends, one route per pool (by
// host), the port of the first moved backends moved by shift: two shifts give two tables that
// differ in those backends. No pool has an active health check, so nothing is probed.
func bigConfig(pools, perPool, moved, shift int) testconfig.Config {
	c := testconfig.Config{Global: testconfig.Global{
		BindAddress: "127.0.0.1:0", MetricsAddress: testconfig.Ptr(""), AdminAddress: testconfig.Ptr(""),
		AccessLog: testconfig.Ptr(false), LogLevel: "warn",
	}}
	for p := range pools {
		pool := testconfig.Pool{Name: fmt.Sprintf("p%d", p)}
		for i := range perPool {
			port := 8000 + i/250
			if p*perPool+i < moved {
				port += shift
			}
			pool.Backends = append(pool.Backends, testconfig.Backend{Address: fmt.Sprintf("10.%d.%d.%d:%d", p/250, p%250, i%250+1, port)})
		}
		c.Pools = append(c.Pools, pool)
		c.Routes = append(c.Routes, testconfig.Route{Host: fmt.Sprintf("p%d.example", p), Pool: pool.Name})
	}
	return c
}

// BenchmarkReload10000Backends is a configuration reload that swaps a table of 10,000
// backends (100 pools of 100, one route each) for a new one: the file read, parsed and
// validated, the routing table built and swapped, health and metrics reconciled. In the new
// table one backend has moved (a usual change), or every backend is new (the most a reload
// can change: every per-backend state and metric series replaced). The time per op is the
// reload's; writing the file is left out.
func BenchmarkReload10000Backends(b *testing.B) {
	for _, bc := range []struct {
		name  string
		moved int
	}{{"one_moved", 1}, {"all_new", 10000}} {
		b.Run(bc.name, func(b *testing.B) { benchmarkReload(b, bc.moved) })
	}
}

func benchmarkReload(b *testing.B, moved int) {
	dir := b.TempDir()
	path := filepath.Join(dir, "config.yaml")
	files := [2]string{bigConfig(100, 100, moved, 0).YAML(b), bigConfig(100, 100, moved, 1).YAML(b)}
	a, _ := appFromFile(b, path, files[0])
	var worst time.Duration
	b.ReportAllocs()
	cpu0 := cpuTime(b)
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		b.StopTimer()
		if err := os.WriteFile(path, []byte(files[(i+1)%2]), 0o600); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		start := time.Now()
		a.reload("benchmark")
		worst = max(worst, time.Since(start))
		if !a.lastReload.OK {
			b.Fatalf("reload failed: %s", a.lastReload.Error)
		}
	}
	// CPU time (this process's, the garbage collector's included) moves less than wall time
	// on a busy machine; the file writes in it are small against the reloads.
	b.ReportMetric(float64((cpuTime(b)-cpu0).Microseconds())/1000/float64(b.N), "cpu-ms/op")
	b.ReportMetric(float64(worst.Microseconds())/1000, "worst-ms")
}

// TestReloadStepsAside: a reload of 10,000 backends (tens of milliseconds of work) steps aside
// for the requests throughout, not once at its end; the pace package shows that a step serves
// the requests waiting, and the proxy's tests that its table build steps aside too.
func TestReloadStepsAside(t *testing.T) {
	path := filepath.Join(t.TempDir(), "config.yaml")
	a, _ := appFromFile(t, path, bigConfig(100, 100, 10000, 0).YAML(t))
	if err := os.WriteFile(path, []byte(bigConfig(100, 100, 10000, 1).YAML(t)), 0o600); err != nil {
		t.Fatal(err)
	}
	// Counting the steps of the node's Pacer would depend on the machine's speed, so the
	// reload gets one that steps aside at every call: the count is how often it is asked.
	fine, err := pace.New(time.Nanosecond)
	if err != nil {
		t.Fatal(err)
	}
	defer fine.Close()
	a.pace, a.routing.pace = fine, fine
	a.passive.SetPacer(fine)
	a.reload("test")
	if !a.lastReload.OK {
		t.Fatalf("reload failed: %s", a.lastReload.Error)
	}
	// Each of the file's 10,200 list items once when read and once when decoded, and each
	// pool when validated, snapshotted, made health targets and passive pools.
	if n := fine.Steps(); n < 20400+4*100 {
		t.Fatalf("the reload stepped aside %d times, want at least 20,800", n)
	}
}

// cpuTime is the user and system CPU time of the process so far.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
