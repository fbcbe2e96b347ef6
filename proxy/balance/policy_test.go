package balance_test

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/veloflux/veloflux/proxy/balance"
)

func TestAlgorithms(t *testing.T) {
	got := balance.Algorithms()
	want := []string{"ip_hash", "least_conn", "random", "round_robin", "weighted"}
	if !slices.Equal(got, want) {
		t.Fatalf("Algorithms() = %q, want %q", got, want)
	}
	if !slices.IsSorted(got) {
		t.Errorf("Algorithms() not sorted: %q", got)
	}
	got[0] = "mutated"
	if again := balance.Algorithms(); again[0] != "ip_hash" {
		t.Errorf("Algorithms() shares its slice between calls: %q", again)
	}
}

func TestNew(t *testing.T) {
	tests := []struct {
		name      string
		algorithm string
		wantErr   bool
	}{
		{name: "round robin", algorithm: "round_robin"},
		{name: "weighted alias", algorithm: "weighted"},
		{name: "least conn", algorithm: "least_conn"},
		{name: "ip hash", algorithm: "ip_hash"},
		{name: "random", algorithm: "random"},
		{name: "empty", algorithm: "", wantErr: true},
		{name: "wrong case", algorithm: "Round_Robin", wantErr: true},
		{name: "dash instead of underscore", algorithm: "least-conn", wantErr: true},
		{name: "unknown", algorithm: "fastest", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := balance.New(tt.algorithm)
			if !tt.wantErr {
				if err != nil || p == nil {
					t.Fatalf("New(%q) = %v, %v; want a policy", tt.algorithm, p, err)
				}
				return
			}
			if err == nil {
				t.Fatalf("New(%q) succeeded, want an error", tt.algorithm)
			}
			if !errors.Is(err, balance.ErrUnknownAlgorithm) {
				t.Errorf("error %v does not wrap ErrUnknownAlgorithm", err)
			}
			for _, name := range balance.Algorithms() {
				if !strings.Contains(err.Error(), name) {
					t.Errorf("error %q does not list valid name %q", err, name)
				}
			}
			if !strings.Contains(err.Error(), `"`+tt.algorithm+`"`) {
				t.Errorf("error %q does not quote the bad name", err)
			}
		})
	}
}

func TestPickEdgeCases(t *testing.T) {
	for _, algo := range balance.Algorithms() {
		t.Run(algo, func(t *testing.T) {
			p := mustNew(t, algo)
			if got := p.Pick(nil, 1); got != -1 {
				t.Errorf("Pick(nil) = %d, want -1", got)
			}
			if got := p.Pick([]*balance.Backend{}, 1); got != -1 {
				t.Errorf("Pick(empty) = %d, want -1", got)
			}
			one := newBackends(3)
			for key := range uint64(50) {
				if got := p.Pick(one, key); got != 0 {
					t.Fatalf("Pick(one candidate, key %d) = %d, want 0", key, got)
				}
			}
			// A Backend that missed Init reads as weight 1, so no policy divides by or draws
			// from a zero weight sum.
			raw := []*balance.Backend{new(balance.Backend), new(balance.Backend)}
			for key := range uint64(50) {
				if got := p.Pick(raw, key); got != 0 && got != 1 {
					t.Fatalf("Pick(uninitialised backends) = %d", got)
				}
			}
			if w := raw[0].Weight(); w != 1 {
				t.Errorf("uninitialised Weight() = %d, want 1", w)
			}
			// Every candidate must be reachable, or the policy is silently dropping backends.
			bs := newBackends(1, 1, 1, 1, 1)
			seen := make([]bool, len(bs))
			for key := range uint64(1000) {
				seen[p.Pick(bs, clientKey(int(key)))] = true
			}
			for i, ok := range seen {
				if !ok {
					t.Errorf("candidate %d never picked in 1000 picks", i)
				}
			}
		})
	}
}

// TestPickDoesNotAllocate guards the request path: Pick runs once per request.
func TestPickDoesNotAllocate(t *testing.T) {
	for _, algo := range balance.Algorithms() {
		t.Run(algo, func(t *testing.T) {
			p := mustNew(t, algo)
			bs := newBackends(5, 1, 3, 2, 8, 1, 1, 4)
			var key uint64
			allocs := testing.AllocsPerRun(1000, func() {
				key++
				p.Pick(bs, key)
			})
			if allocs != 0 {
				t.Errorf("Pick allocates %.1f times per call, want 0", allocs)
			}
		})
	}
}
