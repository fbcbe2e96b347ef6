package discovery

import (
	"reflect"
	"testing"
)

func TestMerge(t *testing.T) {
	static := &Snapshot{
		Source: "static",
		Pools:  []Pool{{Name: "web", Backends: []Backend{{ID: "a", Address: "10.0.0.1:80", Weight: 1}}}},
		Routes: []Route{{Host: "example.com", Pool: "web"}},
	}
	consul := &Snapshot{
		Source: "consul",
		Pools: []Pool{
			{Name: "web", Backends: []Backend{{ID: "x", Address: "10.9.9.9:80", Weight: 1}}},
			{Name: "api", Backends: []Backend{{ID: "b", Address: "10.0.0.2:80", Weight: 3}}},
		},
		Routes: []Route{{PathPrefix: "/api", Pool: "api"}},
	}
	tests := []struct {
		name          string
		in            []*Snapshot
		wantPools     []string
		wantRoutes    int
		wantConflicts []Conflict
	}{
		{"static wins a name conflict", []*Snapshot{static, consul}, []string{"web", "api"}, 2,
			[]Conflict{{Pool: "web", Winner: "static", Ignored: "consul"}}},
		{"order decides the winner", []*Snapshot{consul, static}, []string{"web", "api"}, 2,
			[]Conflict{{Pool: "web", Winner: "consul", Ignored: "static"}}},
		{"nil snapshots are skipped", []*Snapshot{nil, static, nil}, []string{"web"}, 1, nil},
		{"nothing", nil, nil, 0, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, conflicts := Merge(tt.in...)
			var names []string
			for _, p := range got.Pools {
				names = append(names, p.Name)
			}
			if !reflect.DeepEqual(names, tt.wantPools) {
				t.Errorf("pools %v, want %v", names, tt.wantPools)
			}
			if len(got.Routes) != tt.wantRoutes {
				t.Errorf("%d routes, want %d", len(got.Routes), tt.wantRoutes)
			}
			if !reflect.DeepEqual(conflicts, tt.wantConflicts) {
				t.Errorf("conflicts %v, want %v", conflicts, tt.wantConflicts)
			}
		})
	}
	if p, _ := static.Pool("web"); p.Backends[0].ID != "a" {
		t.Errorf("Merge modified its input")
	}
}

func TestConflictString(t *testing.T) {
	c := Conflict{Pool: "web", Winner: "static", Ignored: "consul"}
	if got, want := c.String(), `pool "web" from consul ignored: static defines it`; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
}

func TestSnapshotPool(t *testing.T) {
	s := &Snapshot{Pools: []Pool{{Name: "a"}, {Name: "b", Sticky: true}}}
	if p, ok := s.Pool("b"); !ok || !p.Sticky {
		t.Errorf("Pool(b) = %+v, %v", p, ok)
	}
	if _, ok := s.Pool("c"); ok {
		t.Errorf("Pool(c) found a pool that does not exist")
	}
}
