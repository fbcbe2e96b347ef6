package consul

import (
	"encoding/json"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/hashicorp/consul/api"

	"github.com/veloflux/veloflux/discovery"
)

func TestChecksPass(t *testing.T) {
	check := func(id, status string) *api.HealthCheck { return &api.HealthCheck{CheckID: id, Status: status} }
	serf := check("serfHealth", api.HealthPassing)
	tests := []struct {
		name          string
		checks        api.HealthChecks
		acceptWarning bool
		want          bool
	}{
		{name: "no checks", want: true},
		{name: "all passing", checks: api.HealthChecks{serf, check("service:web-1", api.HealthPassing)}, want: true},
		{name: "service critical", checks: api.HealthChecks{serf, check("service:web-1", api.HealthCritical)}, want: false},
		{name: "node critical", checks: api.HealthChecks{check("serfHealth", api.HealthCritical), check("service:web-1", api.HealthPassing)}, want: false},
		{name: "warning refused", checks: api.HealthChecks{serf, check("service:web-1", api.HealthWarning)}, want: false},
		{name: "warning accepted", checks: api.HealthChecks{serf, check("service:web-1", api.HealthWarning)}, acceptWarning: true, want: true},
		{name: "critical with warning accepted", checks: api.HealthChecks{check("a", api.HealthWarning), check("b", api.HealthCritical)}, acceptWarning: true, want: false},
		// Maintenance mode is how Consul reports it in /v1/health/service: a critical check.
		{name: "service maintenance", checks: api.HealthChecks{serf, check("_service_maintenance:web-1", api.HealthCritical)}, acceptWarning: true, want: false},
		{name: "node maintenance", checks: api.HealthChecks{serf, check("_node_maintenance", api.HealthCritical)}, acceptWarning: true, want: false},
		{name: "maintenance status", checks: api.HealthChecks{check("x", api.HealthMaint)}, acceptWarning: true, want: false},
		{name: "unknown status", checks: api.HealthChecks{check("x", "weird")}, acceptWarning: true, want: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := checksPass(tt.checks, tt.acceptWarning); got != tt.want {
				t.Fatalf("checksPass = %t, want %t", got, tt.want)
			}
		})
	}
}

// entry builds a health entry as /v1/health/service returns it.
func entry(node, nodeAddr, id, service, addr string, port int, tags []string, meta map[string]string, status string) *api.ServiceEntry {
	return &api.ServiceEntry{
		Node:    &api.Node{Node: node, Address: nodeAddr},
		Service: &api.AgentService{ID: id, Service: service, Address: addr, Port: port, Tags: tags, Meta: meta},
		Checks: api.HealthChecks{
			{Node: node, CheckID: "serfHealth", Status: api.HealthPassing},
			{Node: node, CheckID: "service:" + id, ServiceID: id, Status: status},
		},
	}
}

func TestEntryFilterInstances(t *testing.T) {
	on := []string{"veloflux.enable=true"}
	tags := func(extra ...string) []string { return append(slices.Clone(on), extra...) }
	tests := []struct {
		name     string
		exposed  bool
		entries  []*api.ServiceEntry
		want     []instance
		wantErrs []TagError
	}{
		{
			name: "address, node address fallback, ipv6 brackets, region and sort",
			entries: []*api.ServiceEntry{
				entry("n2", "10.0.0.2", "web-2", "web", "", 8080, tags(), nil, api.HealthPassing),
				entry("n1", "10.0.0.1", "web-1", "web", "2001:db8::1", 8443, tags("veloflux.region=eu", "veloflux.weight=3"), nil, api.HealthCritical),
			},
			want: []instance{
				{ID: "dc1/n1/web-1", Address: "[2001:db8::1]:8443", Healthy: false,
					Settings: settings{Enable: enableTrue, Pool: "web", Weight: 3, Region: "eu"}},
				{ID: "dc1/n2/web-2", Address: "10.0.0.2:8080", Healthy: true,
					Settings: settings{Enable: enableTrue, Pool: "web", Weight: 1, Region: "dc1"}},
			},
		},
		{
			name: "opted out and not opted in are skipped without errors",
			entries: []*api.ServiceEntry{
				entry("n1", "10.0.0.1", "a", "web", "", 80, []string{"veloflux.enable=false", "veloflux.weight=x"}, nil, api.HealthPassing),
				entry("n1", "10.0.0.1", "b", "web", "", 80, []string{"veloflux.weight=x"}, nil, api.HealthPassing),
			},
		},
		{
			name:    "exposed by default routes untagged, not opted out",
			exposed: true,
			entries: []*api.ServiceEntry{
				entry("n1", "10.0.0.1", "a", "web", "", 80, []string{"veloflux.enable=false"}, nil, api.HealthPassing),
				entry("n1", "10.0.0.1", "b", "web", "", 80, nil, nil, api.HealthPassing),
			},
			want: []instance{{ID: "dc1/n1/b", Address: "10.0.0.1:80", Healthy: true, Settings: settings{Pool: "web", Weight: 1, Region: "dc1"}}},
		},
		{
			name: "tag errors: skipped tag keeps the instance, bad route, no port and bad name drop it",
			entries: []*api.ServiceEntry{
				entry("n1", "10.0.0.1", "w1", "web", "", 80, tags("veloflux.weight=abc"), nil, api.HealthPassing),
				entry("n1", "10.0.0.1", "w2", "web", "", 80, tags("veloflux.route=a b"), nil, api.HealthPassing),
				entry("n1", "10.0.0.1", "w3", "web", "", 0, tags(), nil, api.HealthPassing),
				entry("n1", "10.0.0.1", "x1", "my svc", "", 80, tags(), nil, api.HealthPassing),
				entry("n1", "10.0.0.1", "x2", "my svc", "", 80, tags("veloflux.pool=mine"), nil, api.HealthPassing),
				entry("n1", "", "x3", "nowhere", "", 80, tags(), nil, api.HealthPassing),
			},
			want: []instance{
				{ID: "dc1/n1/w1", Address: "10.0.0.1:80", Healthy: true, Settings: settings{Enable: enableTrue, Pool: "web", Weight: 1, Region: "dc1"}},
				{ID: "dc1/n1/x2", Address: "10.0.0.1:80", Healthy: true, Settings: settings{Enable: enableTrue, Pool: "mine", Weight: 1, Region: "dc1"}},
			},
			wantErrs: []TagError{
				{Service: "my svc", Instance: "x1", Node: "n1", Datacenter: "dc1",
					Msg: `service name "my svc": use letters, digits, ".", "_" and "-" only, as a pool name; set veloflux.pool=<name>`},
				{Service: "nowhere", Instance: "x3", Node: "n1", Datacenter: "dc1", Msg: "neither the service nor its node has an address"},
				{Service: "web", Instance: "w1", Node: "n1", Datacenter: "dc1", Tag: "veloflux.weight=abc", Msg: "weight must be 1..10000"},
				{Service: "web", Instance: "w2", Node: "n1", Datacenter: "dc1", Tag: "veloflux.route=a b",
					Msg: `route "a b": invalid host "a b": invalid character ' ' (internationalized names must be written in punycode)`},
				{Service: "web", Instance: "w3", Node: "n1", Datacenter: "dc1", Msg: "port 0: the instance has no usable port"},
			},
		},
		{
			name: "geo: a good value reaches the settings, a bad one is reported and the instance kept with off",
			entries: []*api.ServiceEntry{
				entry("n1", "10.0.0.1", "g1", "web", "", 80, tags("veloflux.geo=nearest"), nil, api.HealthPassing),
				entry("n1", "10.0.0.1", "g2", "web", "", 80, tags("veloflux.geo=everywhere"), nil, api.HealthPassing),
			},
			want: []instance{
				{ID: "dc1/n1/g1", Address: "10.0.0.1:80", Healthy: true, Settings: settings{Enable: enableTrue, Pool: "web", Weight: 1, Region: "dc1", Geo: "nearest"}},
				{ID: "dc1/n1/g2", Address: "10.0.0.1:80", Healthy: true, Settings: settings{Enable: enableTrue, Pool: "web", Weight: 1, Region: "dc1"}},
			},
			wantErrs: []TagError{
				{Service: "web", Instance: "g2", Node: "n1", Datacenter: "dc1", Tag: "veloflux.geo=everywhere",
					Msg: `geo must be off, nearest or redirect, got "everywhere"`},
			},
		},
		{name: "nil parts ignored", entries: []*api.ServiceEntry{nil, {Node: &api.Node{Node: "n"}}, {Service: &api.AgentService{ID: "x"}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := entryFilter{tags: newTagParser("veloflux"), exposedByDefault: tt.exposed}
			got, errs := f.instances("dc1", tt.entries)
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("instances\n got %+v\nwant %+v", got, tt.want)
			}
			if !reflect.DeepEqual(errs, tt.wantErrs) {
				t.Errorf("tag errors\n got %+v\nwant %+v", errs, tt.wantErrs)
			}
		})
	}
}

func TestTagErrorMessage(t *testing.T) {
	tests := []struct {
		name string
		err  TagError
		want string
	}{
		{
			name: "tag",
			err:  TagError{Service: "web", Instance: "web-1", Node: "n1", Datacenter: "dc1", Tag: "veloflux.weight=abc", Msg: "weight must be 1..10000"},
			want: `service web instance web-1 (node n1, dc1): tag "veloflux.weight=abc": weight must be 1..10000`,
		},
		{
			name: "meta",
			err:  TagError{Service: "web", Instance: "web-1", Node: "n1", Datacenter: "dc1", Tag: "veloflux_weight=abc", Meta: true, Msg: "weight must be 1..10000"},
			want: `service web instance web-1 (node n1, dc1): meta "veloflux_weight=abc": weight must be 1..10000`,
		},
		{
			name: "instance",
			err:  TagError{Service: "web", Instance: "web-1", Node: "n1", Datacenter: "dc1", Msg: "port 0: the instance has no usable port"},
			want: `service web instance web-1 (node n1, dc1): port 0: the instance has no usable port`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.err.Error(); got != tt.want {
				t.Fatalf("Error() = %s\nwant      %s", got, tt.want)
			}
		})
	}
}

func TestBuildSnapshot(t *testing.T) {
	inst := func(id, addr string, healthy bool, s settings) instance {
		if s.Weight == 0 {
			s.Weight = 1
		}
		return instance{ID: id, Address: addr, Healthy: healthy, Settings: s}
	}
	r := func(host, path string) routeSpec { return routeSpec{Host: host, PathPrefix: path} }
	tests := []struct {
		name          string
		in            []instance
		want          *discovery.Snapshot
		wantConflicts []string
	}{
		{name: "empty", want: &discovery.Snapshot{Source: "consul"}},
		{
			name: "pools across services and datacenters, routes unioned and sorted",
			in: []instance{
				inst("dc2/n9/web-1", "10.2.0.1:80", true, settings{Pool: "web", Region: "dc2", Routes: []routeSpec{r("example.com", ""), r("", "/web")}}),
				inst("dc1/n1/web-1", "10.1.0.1:80", true, settings{Pool: "web", Region: "dc1", Weight: 5, HealthPath: "/h", Protocol: "h2c", Routes: []routeSpec{r("example.com", "")}}),
				inst("dc1/n2/api-1", "10.1.0.2:81", true, settings{Pool: "api", Region: "dc1", Algorithm: "least_conn", Sticky: true, StripPrefix: true, Routes: []routeSpec{r("example.com", "/api")}}),
				inst("dc1/n3/web-3", "10.1.0.3:80", false, settings{Pool: "web", Region: "dc1", Routes: []routeSpec{r("*.example.com", "")}}),
			},
			want: &discovery.Snapshot{
				Source: "consul",
				Pools: []discovery.Pool{
					{Name: "api", Algorithm: "least_conn", Sticky: true, Backends: []discovery.Backend{
						{ID: "dc1/n2/api-1", Address: "10.1.0.2:81", Weight: 1, Region: "dc1"},
					}},
					{Name: "web", Algorithm: "round_robin", Backends: []discovery.Backend{
						{ID: "dc1/n1/web-1", Address: "10.1.0.1:80", Weight: 5, Region: "dc1", HealthPath: "/h", Scheme: "h2c"},
						{ID: "dc2/n9/web-1", Address: "10.2.0.1:80", Weight: 1, Region: "dc2"},
					}},
				},
				Routes: []discovery.Route{
					{PathPrefix: "/web", Pool: "web"},
					{Host: "*.example.com", Pool: "web"},
					{Host: "example.com", Pool: "web"},
					{Host: "example.com", PathPrefix: "/api", StripPrefix: true, Pool: "api"},
				},
			},
		},
		{
			name: "all backends failing keeps the pool and its routes",
			in:   []instance{inst("dc1/n1/a", "10.0.0.1:80", false, settings{Pool: "a", Routes: []routeSpec{r("a.example", "")}})},
			want: &discovery.Snapshot{
				Source: "consul",
				Pools:  []discovery.Pool{{Name: "a", Algorithm: "round_robin"}},
				Routes: []discovery.Route{{Host: "a.example", Pool: "a"}},
			},
		},
		{
			name: "lowest ID sets pool settings; others reported",
			in: []instance{
				inst("dc1/n1/b", "10.0.0.2:80", true, settings{Pool: "p", Algorithm: "random", Sticky: false, Routes: []routeSpec{r("x.example", "/a")}}),
				inst("dc1/n1/a", "10.0.0.1:80", true, settings{Pool: "p", Algorithm: "ip_hash", Sticky: true, StripPrefix: true, Routes: []routeSpec{r("x.example", "/a")}}),
				inst("dc1/n1/c", "10.0.0.3:80", true, settings{Pool: "p", Algorithm: "ip_hash", Sticky: true, StripPrefix: true}),
			},
			want: &discovery.Snapshot{
				Source: "consul",
				Pools: []discovery.Pool{{Name: "p", Algorithm: "ip_hash", Sticky: true, Backends: []discovery.Backend{
					{ID: "dc1/n1/a", Address: "10.0.0.1:80", Weight: 1},
					{ID: "dc1/n1/b", Address: "10.0.0.2:80", Weight: 1},
					{ID: "dc1/n1/c", Address: "10.0.0.3:80", Weight: 1},
				}}},
				Routes: []discovery.Route{{Host: "x.example", PathPrefix: "/a", StripPrefix: true, Pool: "p"}},
			},
			wantConflicts: []string{
				`pool "p": algorithm "random" of dc1/n1/b differs from "ip_hash" of dc1/n1/a, which wins`,
				`pool "p": sticky false of dc1/n1/b differs from true of dc1/n1/a, which wins`,
				`pool "p": strip_prefix false of dc1/n1/b for route "x.example/a" differs from true of dc1/n1/a, which wins`,
			},
		},
		{
			name: "geo applies to every route of the instance; off stays empty",
			in: []instance{
				inst("dc1/n1/a", "10.0.0.1:80", true, settings{Pool: "a", Geo: "nearest", Routes: []routeSpec{r("a.example", ""), r("", "/a")}}),
				inst("dc1/n1/b", "10.0.0.2:80", true, settings{Pool: "b", Geo: "redirect", StripPrefix: true, Routes: []routeSpec{r("b.example", "/x")}}),
				inst("dc1/n1/c", "10.0.0.3:80", true, settings{Pool: "c", Routes: []routeSpec{r("c.example", "")}}),
			},
			want: &discovery.Snapshot{
				Source: "consul",
				Pools: []discovery.Pool{
					{Name: "a", Algorithm: "round_robin", Backends: []discovery.Backend{{ID: "dc1/n1/a", Address: "10.0.0.1:80", Weight: 1}}},
					{Name: "b", Algorithm: "round_robin", Backends: []discovery.Backend{{ID: "dc1/n1/b", Address: "10.0.0.2:80", Weight: 1}}},
					{Name: "c", Algorithm: "round_robin", Backends: []discovery.Backend{{ID: "dc1/n1/c", Address: "10.0.0.3:80", Weight: 1}}},
				},
				Routes: []discovery.Route{
					{PathPrefix: "/a", Pool: "a", Geo: "nearest"},
					{Host: "a.example", Pool: "a", Geo: "nearest"},
					{Host: "b.example", PathPrefix: "/x", StripPrefix: true, Pool: "b", Geo: "redirect"},
					{Host: "c.example", Pool: "c"},
				},
			},
		},
		{
			name: "geo disagreement: lowest ID wins per route, others reported",
			in: []instance{
				inst("dc1/n1/c", "10.0.0.3:80", true, settings{Pool: "p", Geo: "redirect", Routes: []routeSpec{r("x.example", ""), r("y.example", "")}}),
				inst("dc1/n1/a", "10.0.0.1:80", true, settings{Pool: "p", Geo: "nearest", Routes: []routeSpec{r("x.example", "")}}),
				inst("dc1/n1/b", "10.0.0.2:80", true, settings{Pool: "p", Routes: []routeSpec{r("x.example", ""), r("y.example", "")}}),
			},
			want: &discovery.Snapshot{
				Source: "consul",
				Pools: []discovery.Pool{{Name: "p", Algorithm: "round_robin", Backends: []discovery.Backend{
					{ID: "dc1/n1/a", Address: "10.0.0.1:80", Weight: 1},
					{ID: "dc1/n1/b", Address: "10.0.0.2:80", Weight: 1},
					{ID: "dc1/n1/c", Address: "10.0.0.3:80", Weight: 1},
				}}},
				// y.example is not declared by a, so b (off) owns it and c's redirect loses.
				Routes: []discovery.Route{{Host: "x.example", Pool: "p", Geo: "nearest"}, {Host: "y.example", Pool: "p"}},
			},
			wantConflicts: []string{
				`pool "p": geo "off" of dc1/n1/b for route "x.example" differs from "nearest" of dc1/n1/a, which wins`,
				`pool "p": geo "redirect" of dc1/n1/c for route "x.example" differs from "nearest" of dc1/n1/a, which wins`,
				`pool "p": geo "redirect" of dc1/n1/c for route "y.example" differs from "off" of dc1/n1/b, which wins`,
			},
		},
		{
			name: "unset algorithm counts as round_robin",
			in: []instance{
				inst("dc1/n1/a", "10.0.0.1:80", true, settings{Pool: "p"}),
				inst("dc1/n1/b", "10.0.0.2:80", true, settings{Pool: "p", Algorithm: "round_robin"}),
			},
			want: &discovery.Snapshot{Source: "consul", Pools: []discovery.Pool{{Name: "p", Algorithm: "round_robin", Backends: []discovery.Backend{
				{ID: "dc1/n1/a", Address: "10.0.0.1:80", Weight: 1}, {ID: "dc1/n1/b", Address: "10.0.0.2:80", Weight: 1},
			}}}},
		},
		{
			name: "route claimed by two pools goes to the first by name",
			in: []instance{
				inst("dc1/n1/z", "10.0.0.1:80", true, settings{Pool: "zeta", Routes: []routeSpec{r("", "/shared"), r("", "/z")}}),
				inst("dc1/n1/a", "10.0.0.2:80", true, settings{Pool: "alpha", Routes: []routeSpec{r("", "/shared")}}),
			},
			want: &discovery.Snapshot{
				Source: "consul",
				Pools: []discovery.Pool{
					{Name: "alpha", Algorithm: "round_robin", Backends: []discovery.Backend{{ID: "dc1/n1/a", Address: "10.0.0.2:80", Weight: 1}}},
					{Name: "zeta", Algorithm: "round_robin", Backends: []discovery.Backend{{ID: "dc1/n1/z", Address: "10.0.0.1:80", Weight: 1}}},
				},
				Routes: []discovery.Route{{PathPrefix: "/shared", Pool: "alpha"}, {PathPrefix: "/z", Pool: "zeta"}},
			},
			wantConflicts: []string{`route "/shared": claimed by pools "alpha" and "zeta"; "alpha" wins`},
		},
		{
			name: "the same instance twice counts once",
			in: []instance{
				inst("dc1/n1/a", "10.0.0.1:80", true, settings{Pool: "p"}),
				inst("dc1/n1/a", "10.0.0.1:80", true, settings{Pool: "p"}),
			},
			want: &discovery.Snapshot{Source: "consul", Pools: []discovery.Pool{{Name: "p", Algorithm: "round_robin", Backends: []discovery.Backend{
				{ID: "dc1/n1/a", Address: "10.0.0.1:80", Weight: 1},
			}}}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, conflicts := buildSnapshot(tt.in)
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("snapshot\n got %+v\nwant %+v", got, tt.want)
			}
			if !reflect.DeepEqual(conflicts, tt.wantConflicts) {
				t.Errorf("conflicts\n got %q\nwant %q", conflicts, tt.wantConflicts)
			}
			// Equal catalogs must give DeepEqual snapshots whatever order Consul listed them in.
			for range 20 {
				shuffled := slices.Clone(tt.in)
				rand.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
				again, againConflicts := buildSnapshot(shuffled)
				if !reflect.DeepEqual(again, got) || !reflect.DeepEqual(againConflicts, conflicts) {
					t.Fatalf("order-dependent result:\n%+v %q\n%+v %q", got, conflicts, again, againConflicts)
				}
			}
		})
	}
}

// TestDocsExample builds the snapshot of the complete example in docs/consul-tags.md from its
// registrations, as the agent on node-1 (10.0.0.5, dc1) would report them, all passing.
func TestDocsExample(t *testing.T) {
	var regs []api.AgentServiceRegistration
	if err := json.Unmarshal([]byte(strings.Join(docsBlock(t, "registrations"), "\n")), &regs); err != nil {
		t.Fatalf("registrations: %v", err)
	}
	var want discovery.Snapshot
	dec := json.NewDecoder(strings.NewReader(strings.Join(docsBlock(t, "snapshot"), "\n")))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&want); err != nil {
		t.Fatalf("snapshot: %v", err)
	}
	var entries []*api.ServiceEntry
	for _, r := range regs {
		entries = append(entries, entry("node-1", "10.0.0.5", r.ID, r.Name, r.Address, r.Port, r.Tags, r.Meta, api.HealthPassing))
	}
	insts, errs := entryFilter{tags: newTagParser("veloflux")}.instances("dc1", entries)
	got, conflicts := buildSnapshot(insts)
	if len(errs) != 0 || len(conflicts) != 0 {
		t.Fatalf("the example has tag errors %v or conflicts %q", errs, conflicts)
	}
	if !reflect.DeepEqual(got, &want) {
		t.Fatalf("docs say the example publishes\n%+v\nthe source builds\n%+v", &want, got)
	}
}
