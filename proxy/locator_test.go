package proxy

import (
	"net/http"
	"net/netip"
	"testing"

	"github.com/veloflux/veloflux/discovery"
)

// fixedLocator puts every client in one region.
type fixedLocator string

func (l fixedLocator) Region(netip.Addr) (string, bool) { return string(l), l != "" }

func TestLocatorPrefersClientRegion(t *testing.T) {
	eu1, eu2, us := newBackend(t, "eu1", nil), newBackend(t, "eu2", nil), newBackend(t, "us", nil)
	regional := func(id, addr, region string) discovery.Backend {
		b := member(id, addr, 1)
		b.Region = region
		return b
	}
	snap := onePoolSnapshot("round_robin", false,
		regional("eu1", eu1.addr(), "eu"), regional("eu2", eu2.addr(), "eu"), regional("us", us.addr(), "us"))

	tests := []struct {
		name    string
		region  string
		down    []string
		wantAny []string // every answer must come from one of these
	}{
		{"client in eu stays in eu", "eu", nil, []string{"eu1", "eu2"}},
		{"client in us stays in us", "us", nil, []string{"us"}},
		{"region without healthy backends falls back to all", "eu", []string{"eu1", "eu2"}, []string{"us"}},
		{"unknown region balances over all", "", nil, []string{"eu1", "eu2", "us"}},
		{"region with no backends balances over all", "ap", nil, []string{"eu1", "eu2", "us"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hv := &downSet{}
			hv.setDown(tt.down...)
			tp := startProxy(t, DefaultConfig(), Options{Health: hv, Locator: fixedLocator(tt.region)}, snap)
			c := newClient(t)
			seen := map[string]int{}
			for i := 0; i < 30; i++ {
				seen[send(t, c, http.MethodGet, tp.url+"/", "", nil, "").body]++
			}
			allowed := map[string]bool{}
			for _, id := range tt.wantAny {
				allowed[id] = true
			}
			for id, n := range seen {
				if !allowed[id] {
					t.Errorf("%d requests went to %s, want only %v", n, id, tt.wantAny)
				}
			}
			if len(seen) != len(tt.wantAny) {
				t.Errorf("answers came from %v, want all of %v", seen, tt.wantAny)
			}
		})
	}
}
