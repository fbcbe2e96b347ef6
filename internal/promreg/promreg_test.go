package promreg

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

func TestRegisterAllOrNone(t *testing.T) {
	reg := prometheus.NewRegistry()
	a := prometheus.NewCounter(prometheus.CounterOpts{Name: "veloflux_test_a_total", Help: "a"})
	b := prometheus.NewCounter(prometheus.CounterOpts{Name: "veloflux_test_b_total", Help: "b"})
	clash := prometheus.NewCounter(prometheus.CounterOpts{Name: "veloflux_test_b_total", Help: "b again"})
	if err := Register(reg, b); err != nil {
		t.Fatal(err)
	}
	if err := Register(reg, a, clash); err == nil {
		t.Fatal("registering a name twice succeeded")
	}
	// a was unregistered again: registering it alone works.
	if err := Register(reg, a); err != nil {
		t.Fatalf("a stayed registered after the failed batch: %v", err)
	}
	if err := Register(nil, a, clash); err != nil {
		t.Fatalf("a nil registerer: %v", err)
	}
}
