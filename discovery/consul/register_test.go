package consul

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/veloflux/veloflux/discovery/consul/consultest"
	"github.com/veloflux/veloflux/internal/testutil"
)

func TestRegistrationValidate(t *testing.T) {
	valid := func() Registration {
		return Registration{RegisterConfig: RegisterConfig{ID: "vf-1"}, Port: 8080, CheckURL: "http://127.0.0.1:8081/readyz"}
	}
	manyMeta := func(n int) map[string]string {
		m := make(map[string]string, n)
		for i := range n {
			m[fmt.Sprintf("k%d", i)] = "v"
		}
		return m
	}
	tests := []struct {
		name    string
		edit    func(*Registration)
		wantErr []string // substrings of the error; none means valid
	}{
		{name: "minimal is valid", edit: func(*Registration) {}},
		{name: "highest port", edit: func(r *Registration) { r.Port = 65535 }},
		{name: "limits reached but not passed", edit: func(r *Registration) {
			r.Meta = manyMeta(64)
			r.Meta[strings.Repeat("k", 128)] = strings.Repeat("v", 512)
			delete(r.Meta, "k0")
		}},
		{name: "meta key with dash and underscore", edit: func(r *Registration) {
			r.Meta = map[string]string{"gossip_addr": "10.0.0.5:7946", "build-id": "x"}
		}},
		{name: "ipv4 address", edit: func(r *Registration) { r.Address = "10.0.0.5" }},
		{name: "ipv6 address", edit: func(r *Registration) { r.Address = "fd00::5" }},
		{name: "host name address", edit: func(r *Registration) { r.Address = "edge-1.example.com" }},
		{name: "https check", edit: func(r *Registration) { r.CheckURL = "https://10.0.0.5:8443/readyz" }},
		{name: "port zero", edit: func(r *Registration) { r.Port = 0 },
			wantErr: []string{"discovery.consul.register.port: must be 1..65535, got 0"}},
		{name: "port too high", edit: func(r *Registration) { r.Port = 65536 },
			wantErr: []string{"discovery.consul.register.port: must be 1..65535, got 65536"}},
		{name: "meta key with dot", edit: func(r *Registration) { r.Meta = map[string]string{"gossip.addr": "x"} },
			wantErr: []string{`discovery.consul.register.meta["gossip.addr"]: key must match`}},
		{name: "meta key empty", edit: func(r *Registration) { r.Meta = map[string]string{"": "x"} },
			wantErr: []string{`meta[""]: key must be 1..128 characters`}},
		{name: "meta key too long", edit: func(r *Registration) { r.Meta = map[string]string{strings.Repeat("k", 129): "x"} },
			wantErr: []string{"key must be 1..128 characters"}},
		{name: "meta key reserved", edit: func(r *Registration) { r.Meta = map[string]string{"consul-version": "x"} },
			wantErr: []string{`meta["consul-version"]: key prefix "consul-" is reserved`}},
		{name: "meta value too long", edit: func(r *Registration) { r.Meta = map[string]string{"version": strings.Repeat("v", 513)} },
			wantErr: []string{`meta["version"]: value must be at most 512 bytes, got 513`}},
		{name: "too many meta keys", edit: func(r *Registration) { r.Meta = manyMeta(65) },
			wantErr: []string{"discovery.consul.register.meta: at most 64 keys, got 65"}},
		{name: "check url missing", edit: func(r *Registration) { r.CheckURL = "" },
			wantErr: []string{"discovery.consul.register.check_url: required"}},
		{name: "check url relative", edit: func(r *Registration) { r.CheckURL = "/readyz" },
			wantErr: []string{"check_url: must be an absolute http or https URL"}},
		{name: "check url not http", edit: func(r *Registration) { r.CheckURL = "tcp://10.0.0.5:8080" },
			wantErr: []string{"check_url: must be an absolute http or https URL"}},
		{name: "address with port", edit: func(r *Registration) { r.Address = "10.0.0.5:8080" },
			wantErr: []string{"discovery.consul.register.address: must be a host name or IP without port"}},
		{name: "unspecified address", edit: func(r *Registration) { r.Address = "0.0.0.0" },
			wantErr: []string{"discovery.consul.register.address: 0.0.0.0 is not an address clients can reach"}},
		{name: "id with slash", edit: func(r *Registration) { r.ID = "vf/1" },
			wantErr: []string{"discovery.consul.register.id: must not contain '/'"}},
		{name: "name with space", edit: func(r *Registration) { r.Name = "velo flux" },
			wantErr: []string{"discovery.consul.register.name: must not contain"}},
		{name: "empty tag", edit: func(r *Registration) { r.Tags = []string{"edge", ""} },
			wantErr: []string{"discovery.consul.register.tags[1]: must not be empty"}},
		{name: "negative intervals", edit: func(r *Registration) {
			r.CheckInterval, r.DeregisterCriticalAfter = -time.Second, -time.Minute
		}, wantErr: []string{"check_interval: must be > 0", "deregister_critical_after: must be > 0"}},
		{name: "all problems at once", edit: func(r *Registration) {
			r.Port, r.CheckURL, r.Meta = 0, "", map[string]string{"a.b": "x"}
		}, wantErr: []string{"port:", "check_url:", `meta["a.b"]`}},
	}
	client := regClient(t, "127.0.0.1:1") // never contacted: validation happens before any call
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			reg := valid()
			tt.edit(&reg)
			r, err := NewRegistrar(client, reg, nil)
			if len(tt.wantErr) == 0 {
				if err != nil {
					t.Fatalf("NewRegistrar: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("NewRegistrar accepted %+v as %+v", reg, r.reg)
			}
			for _, want := range tt.wantErr {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not contain %q", err, want)
				}
			}
		})
	}
	t.Run("nil client", func(t *testing.T) {
		if _, err := NewRegistrar(nil, valid(), nil); err == nil {
			t.Fatal("NewRegistrar accepted a nil client")
		}
	})
}

func TestRegistrationDefaults(t *testing.T) {
	host, err := os.Hostname()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		reg      Registration
		wantName string
		wantID   string
	}{
		{name: "all defaults", reg: Registration{Port: 8080},
			wantName: "veloflux", wantID: "veloflux-" + host + "-8080"},
		{name: "id follows name", reg: Registration{RegisterConfig: RegisterConfig{Name: "edge"}, Port: 443},
			wantName: "edge", wantID: "edge-" + host + "-443"},
		{name: "given id kept", reg: Registration{RegisterConfig: RegisterConfig{Name: "edge", ID: "edge-a"}, Port: 443},
			wantName: "edge", wantID: "edge-a"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.reg.CheckURL = "http://127.0.0.1:8081/readyz"
			r, err := NewRegistrar(regClient(t, "127.0.0.1:1"), tt.reg, nil)
			if err != nil {
				t.Fatal(err)
			}
			got := r.reg
			if got.Name != tt.wantName || got.ID != tt.wantID {
				t.Errorf("name, id = %q, %q; want %q, %q", got.Name, got.ID, tt.wantName, tt.wantID)
			}
			if got.CheckInterval != 5*time.Second || got.DeregisterCriticalAfter != time.Minute {
				t.Errorf("check interval, deregister after = %s, %s; want 5s, 1m", got.CheckInterval, got.DeregisterCriticalAfter)
			}
		})
	}
	t.Run("caller's maps and slices are copied", func(t *testing.T) {
		reg := Registration{RegisterConfig: RegisterConfig{Tags: []string{"a"}}, Port: 1, CheckURL: "http://h/readyz", Meta: map[string]string{"k": "v"}}
		r, err := NewRegistrar(regClient(t, "127.0.0.1:1"), reg, nil)
		if err != nil {
			t.Fatal(err)
		}
		reg.Tags[0], reg.Meta["k"] = "changed", "changed"
		if r.reg.Tags[0] != "a" || r.reg.Meta["k"] != "v" {
			t.Errorf("registrar sees the caller's later edits: tags %v meta %v", r.reg.Tags, r.reg.Meta)
		}
	})
}

// TestRegistrarRegistersWithCheck registers against a real agent and follows the HTTP check
// as the test's /readyz flips between 200 and 503.
func TestRegistrarRegistersWithCheck(t *testing.T) {
	agent := consultest.Start(t, "")
	client := regClient(t, agent.HTTPAddr)
	ready := regReadyz(t)
	reg := Registration{
		RegisterConfig: RegisterConfig{
			Name:          "veloflux-edge",
			ID:            "edge-1",
			Address:       "127.0.0.2",
			Tags:          []string{"edge", "eu"},
			CheckInterval: 200 * time.Millisecond,
		},
		Port:     8443,
		Meta:     map[string]string{"gossip_addr": "127.0.0.2:7946", "version": "1.2.3"},
		CheckURL: ready.URL + "/readyz",
	}
	r, err := NewRegistrar(client, reg, nil)
	if err != nil {
		t.Fatal(err)
	}
	regRun(t, r)

	var entry *api.CatalogService
	testutil.EventuallyWithNote(t, "service in the catalog", func() (bool, string) {
		svcs, _, err := client.Catalog().Service(reg.Name, "", nil)
		if err != nil || len(svcs) != 1 {
			return false, fmt.Sprintf("catalog: %d entries, err %v", len(svcs), err)
		}
		entry = svcs[0]
		return true, ""
	})
	if entry.ServiceID != reg.ID || entry.ServiceAddress != reg.Address || entry.ServicePort != reg.Port {
		t.Errorf("catalog entry id, address, port = %q, %q, %d; want %q, %q, %d",
			entry.ServiceID, entry.ServiceAddress, entry.ServicePort, reg.ID, reg.Address, reg.Port)
	}
	if tags := slices.Sorted(slices.Values(entry.ServiceTags)); !slices.Equal(tags, reg.Tags) {
		t.Errorf("catalog tags = %v, want %v", tags, reg.Tags)
	}
	for k, v := range reg.Meta {
		if entry.ServiceMeta[k] != v {
			t.Errorf("catalog meta %q = %q, want %q (all: %v)", k, entry.ServiceMeta[k], v, entry.ServiceMeta)
		}
	}

	steps := []struct {
		name   string
		status int
		want   string
	}{
		{name: "ready passes", status: http.StatusOK, want: api.HealthPassing},
		{name: "not ready is critical", status: http.StatusServiceUnavailable, want: api.HealthCritical},
		{name: "ready again passes", status: http.StatusOK, want: api.HealthPassing},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			ready.status.Store(int32(st.status))
			// The output names the URL Consul polled and the answer it got.
			wantOutput := reg.CheckURL + ": " + strconv.Itoa(st.status)
			testutil.EventuallyWithNote(t, "check "+st.want, func() (bool, string) {
				c := regHTTPCheck(t, client, reg.Name, reg.ID)
				return c.Status == st.want && strings.Contains(c.Output, wantOutput),
					fmt.Sprintf("status %s, output %q, want output with %q", c.Status, c.Output, wantOutput)
			})
		})
	}
}

// TestRegistrarDraining checks that maintenance makes the service critical the moment
// SetDraining returns, while /readyz still answers 200, and that the wish survives a
// registration that happens after it.
func TestRegistrarDraining(t *testing.T) {
	agent := consultest.Start(t, "")
	client := regClient(t, agent.HTTPAddr)
	ready := regReadyz(t)
	reg := Registration{RegisterConfig: RegisterConfig{ID: "drain-1", CheckInterval: 200 * time.Millisecond}, Port: 8080, CheckURL: ready.URL + "/readyz"}
	r, err := NewRegistrar(client, reg, nil)
	if err != nil {
		t.Fatal(err)
	}

	// Draining before the first registration fails at the agent but is kept.
	if err := r.SetDraining(true); !isStatus(err, http.StatusNotFound) {
		t.Fatalf("SetDraining before Run = %v, want the agent's 404", err)
	}
	regRun(t, r)
	testutil.EventuallyWithNote(t, "registered in maintenance", func() (bool, string) {
		status, maint := regAgentHealth(t, client, reg.ID)
		return maint != nil && status == api.HealthCritical, "status " + status
	})
	t.Run("undrain clears maintenance at once", func(t *testing.T) {
		if err := r.SetDraining(false); err != nil {
			t.Fatal(err)
		}
		if _, maint := regAgentHealth(t, client, reg.ID); maint != nil {
			t.Fatalf("maintenance check still there after SetDraining(false): %+v", maint)
		}
		testutil.EventuallyWithNote(t, "service passing", func() (bool, string) {
			status, _ := regAgentHealth(t, client, reg.ID)
			return status == api.HealthPassing, "status " + status
		})
		// Let the catalog catch up too, so the catalog check below starts from passing.
		testutil.EventuallyWithNote(t, "catalog health passing", func() (bool, string) {
			entries, _, err := client.Health().Service("veloflux", "", true, nil)
			return err == nil && len(entries) == 1, fmt.Sprintf("%d passing entries, err %v", len(entries), err)
		})
	})
	t.Run("drain is critical at once", func(t *testing.T) {
		if err := r.SetDraining(true); err != nil {
			t.Fatal(err)
		}
		status, maint := regAgentHealth(t, client, reg.ID)
		if status != api.HealthCritical || maint == nil || maint.Status != api.HealthCritical {
			t.Fatalf("right after SetDraining(true): status %s, maintenance check %+v; want critical", status, maint)
		}
		if maint.Notes != "veloflux draining" {
			t.Errorf("maintenance reason = %q, want %q", maint.Notes, "veloflux draining")
		}
		if c := regHTTPCheck(t, client, "veloflux", reg.ID); c.Status != api.HealthPassing {
			t.Errorf("http check = %s; the test needs it passing to show maintenance alone makes the service critical", c.Status)
		}
		testutil.EventuallyWithNote(t, "catalog health critical", func() (bool, string) {
			entries, _, err := client.Health().Service("veloflux", "", true, nil)
			return err == nil && len(entries) == 0, fmt.Sprintf("%d passing entries, err %v", len(entries), err)
		})
	})
	t.Run("undrain passes at once", func(t *testing.T) {
		if err := r.SetDraining(false); err != nil {
			t.Fatal(err)
		}
		if status, maint := regAgentHealth(t, client, reg.ID); status != api.HealthPassing || maint != nil {
			t.Fatalf("right after SetDraining(false): status %s, maintenance check %+v; want passing", status, maint)
		}
	})
}

// TestRegistrarDeregistersOnCancel checks Run removes the service before it returns.
func TestRegistrarDeregistersOnCancel(t *testing.T) {
	agent := consultest.Start(t, "")
	client := regClient(t, agent.HTTPAddr)
	ready := regReadyz(t)
	reg := Registration{RegisterConfig: RegisterConfig{ID: "bye-1", CheckInterval: 200 * time.Millisecond}, Port: 8080, CheckURL: ready.URL + "/readyz"}
	r, err := NewRegistrar(client, reg, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	testutil.EventuallyWithNote(t, "service in the catalog", func() (bool, string) {
		svcs, _, err := client.Catalog().Service("veloflux", "", nil)
		return err == nil && len(svcs) == 1, fmt.Sprintf("%d entries, err %v", len(svcs), err)
	})

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run = %v, want nil after cancel", err)
		}
	case <-time.After(testutil.Timeout()):
		t.Fatal("Run did not return after cancel")
	}
	// Deregistration is synchronous in the agent: gone the moment Run has returned.
	if _, _, err := client.Agent().Service(reg.ID, nil); !isStatus(err, http.StatusNotFound) {
		t.Fatalf("agent service after Run returned: err %v, want 404", err)
	}
	testutil.EventuallyWithNote(t, "catalog empty", func() (bool, string) {
		svcs, _, err := client.Catalog().Service("veloflux", "", nil)
		return err == nil && len(svcs) == 0, fmt.Sprintf("%d entries, err %v", len(svcs), err)
	})
}

// TestRegistrarReregistersLostService makes the agent lose the service, by a deregistration
// behind the registrar's back (as when Consul reaps it) and by a restart without its data
// directory (as when a container is recreated), and expects the registrar to put it back,
// still draining, with its check passing; how soon is logged here and checked exactly in
// TestRegistrarRegistersAgainAtNextPoll.
func TestRegistrarReregistersLostService(t *testing.T) {
	agent := consultest.Start(t, "")
	client := regClient(t, agent.HTTPAddr)
	ready := regReadyz(t)
	const interval = 200 * time.Millisecond
	reg := Registration{RegisterConfig: RegisterConfig{ID: "phoenix-1", CheckInterval: interval}, Port: 8080, CheckURL: ready.URL + "/readyz"}
	r, err := NewRegistrar(client, reg, nil)
	if err != nil {
		t.Fatal(err)
	}
	regRun(t, r)
	testutil.EventuallyWithNote(t, "registered", func() (bool, string) {
		_, _, err := client.Agent().Service(reg.ID, nil)
		return err == nil, fmt.Sprint(err)
	})
	if err := r.SetDraining(true); err != nil {
		t.Fatal(err)
	}
	// back waits for the registration to reappear and returns how long it took since lost.
	back := func(t *testing.T, lost time.Time) {
		t.Helper()
		testutil.EventuallyWithNote(t, "registered again", func() (bool, string) {
			_, _, err := client.Agent().Service(reg.ID, nil)
			return err == nil, fmt.Sprint(err)
		})
		took := time.Since(lost)
		// Reported, not bounded: on a loaded machine, wall time says more about the machine
		// than about the poll. TestRegistrarRegistersAgainAtNextPoll checks it on a fake clock.
		t.Logf("registered again %s after the agent lost it (poll interval %s)", took.Round(time.Millisecond), interval)
		testutil.EventuallyWithNote(t, "maintenance applied again", func() (bool, string) {
			status, maint := regAgentHealth(t, client, reg.ID)
			return maint != nil && status == api.HealthCritical, "status " + status
		})
		testutil.EventuallyWithNote(t, "http check passing again", func() (bool, string) {
			c := regHTTPCheck(t, client, "veloflux", reg.ID)
			return c.Status == api.HealthPassing && strings.Contains(c.Output, reg.CheckURL), c.Status + ": " + c.Output
		})
	}

	t.Run("deregistered behind its back", func(t *testing.T) {
		if err := client.Agent().ServiceDeregister(reg.ID); err != nil {
			t.Fatal(err)
		}
		back(t, time.Now())
	})
	t.Run("agent restarted without its data", func(t *testing.T) {
		// The agent restores services registered through its API from its data directory;
		// remove them so it comes back as a recreated agent would.
		self, err := client.Agent().Self()
		if err != nil {
			t.Fatal(err)
		}
		dataDir, _ := self["DebugConfig"]["DataDir"].(string)
		if dataDir == "" {
			t.Fatalf("agent self has no DebugConfig.DataDir: %v", self["DebugConfig"])
		}
		agent.Stop()
		for _, sub := range []string{"services", "checks"} {
			if err := os.RemoveAll(filepath.Join(dataDir, sub)); err != nil {
				t.Fatal(err)
			}
		}
		// Restart returns once there is a leader; the registrar may be back before that,
		// since registration is agent-local. Time from when the agent answers again.
		up := make(chan time.Time, 1)
		go func() {
			for deadline := time.Now().Add(testutil.Timeout()); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
				if _, err := client.Status().Leader(); err == nil {
					break
				}
			}
			up <- time.Now()
		}()
		agent.Restart()
		back(t, <-up)
	})
}

// TestRegistrarRunAgentErrors drives Run against a fake agent to check which answers end
// Run and which are retried.
func TestRegistrarRunAgentErrors(t *testing.T) {
	tests := []struct {
		name         string
		registerCode func(attempt int) int
		wantErr      bool
		wantAttempts int // Run is cancelled once the fake has seen this many registrations
	}{
		{name: "rejected registration ends Run", wantErr: true, wantAttempts: 1,
			registerCode: func(int) int { return http.StatusBadRequest }},
		{name: "server errors are retried", wantAttempts: 3,
			registerCode: func(attempt int) int {
				if attempt < 3 {
					return http.StatusInternalServerError
				}
				return http.StatusOK
			}},
		{name: "acl denial is retried", wantAttempts: 3,
			registerCode: func(attempt int) int {
				if attempt < 3 {
					return http.StatusForbidden
				}
				return http.StatusOK
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fake := &regFakeAgent{registerCode: tt.registerCode, registered: make(chan struct{})}
			srv := httptest.NewServer(fake)
			t.Cleanup(srv.Close)
			reg := Registration{RegisterConfig: RegisterConfig{ID: "fake-1", CheckInterval: 20 * time.Millisecond}, Port: 8080, CheckURL: "http://127.0.0.1:1/readyz"}
			r, err := NewRegistrar(regClient(t, strings.TrimPrefix(srv.URL, "http://")), reg, nil)
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			done := make(chan error, 1)
			go func() { done <- r.Run(ctx) }()
			if !tt.wantErr {
				select {
				case <-fake.registered:
				case err := <-done:
					t.Fatalf("Run returned %v before registering", err)
				case <-time.After(testutil.Timeout()):
					t.Fatalf("no successful registration after %d attempts", fake.attempts())
				}
				if err := r.Run(ctx); err == nil || !strings.Contains(err.Error(), "already running") {
					t.Errorf("second concurrent Run = %v, want an already-running error", err)
				}
				cancel()
			}
			select {
			case err := <-done:
				if tt.wantErr != (err != nil) {
					t.Fatalf("Run = %v, want error %t", err, tt.wantErr)
				}
				if tt.wantErr && !isStatus(err, http.StatusBadRequest) {
					t.Errorf("Run error %v does not carry the agent's 400", err)
				}
			case <-time.After(testutil.Timeout()):
				t.Fatal("Run did not return")
			}
			if got := fake.attempts(); got != tt.wantAttempts {
				t.Errorf("registration attempts = %d, want %d", got, tt.wantAttempts)
			}
			if got := fake.deregistered.Load(); got != !tt.wantErr {
				t.Errorf("deregistered = %t, want %t", got, !tt.wantErr)
			}
		})
	}
}

// TestRegistrarRegistrationRequest checks what is sent to the agent for what the real agent
// does not show back: the check's interval, timeout, initial status and reaping delay.
func TestRegistrarRegistrationRequest(t *testing.T) {
	tests := []struct {
		name         string
		interval     time.Duration
		deregister   time.Duration
		wantInterval string
		wantReap     string
	}{
		{name: "defaults", wantInterval: "5s", wantReap: "1m0s"},
		{name: "sub-second interval sent as consul's floor", interval: 200 * time.Millisecond, wantInterval: "1s", wantReap: "1m0s"},
		{name: "longer intervals as given", interval: 30 * time.Second, deregister: 10 * time.Minute, wantInterval: "30s", wantReap: "10m0s"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fake := &regFakeAgent{registerCode: func(int) int { return http.StatusOK }, registered: make(chan struct{})}
			srv := httptest.NewServer(fake)
			t.Cleanup(srv.Close)
			reg := Registration{
				RegisterConfig: RegisterConfig{
					ID: "wire-1", Address: "10.0.0.5", Tags: []string{"edge"},
					CheckInterval: tt.interval, DeregisterCriticalAfter: tt.deregister,
				},
				Port:     8080,
				Meta:     map[string]string{"gossip_addr": "10.0.0.5:7946"},
				CheckURL: "http://10.0.0.5:8081/readyz",
			}
			r, err := NewRegistrar(regClient(t, strings.TrimPrefix(srv.URL, "http://")), reg, nil)
			if err != nil {
				t.Fatal(err)
			}
			regRun(t, r)
			testutil.Receive(t, fake.registered, "a registration")
			fake.mu.Lock()
			body, query := fake.lastBody, fake.lastQuery
			fake.mu.Unlock()
			var got api.AgentServiceRegistration
			if err := json.Unmarshal(body, &got); err != nil {
				t.Fatalf("registration body %s: %v", body, err)
			}
			if got.ID != "wire-1" || got.Name != "veloflux" || got.Address != "10.0.0.5" || got.Port != 8080 ||
				!slices.Equal(got.Tags, []string{"edge"}) || got.Meta["gossip_addr"] != "10.0.0.5:7946" {
				t.Errorf("registration = %s", body)
			}
			c := got.Check
			if c == nil {
				t.Fatalf("registration without check: %s", body)
			}
			if c.HTTP != reg.CheckURL || c.Interval != tt.wantInterval || c.Timeout != tt.wantInterval ||
				c.Status != api.HealthCritical || c.DeregisterCriticalServiceAfter != tt.wantReap {
				t.Errorf("check = http %q interval %q timeout %q status %q reap %q; want %q, %q, %q, critical, %q",
					c.HTTP, c.Interval, c.Timeout, c.Status, c.DeregisterCriticalServiceAfter,
					reg.CheckURL, tt.wantInterval, tt.wantInterval, tt.wantReap)
			}
			// Replacing drops checks an older configuration left under the same ID.
			if q, err := url.ParseQuery(query); err != nil || q.Get("replace-existing-checks") != "true" {
				t.Errorf("registration query = %q, want replace-existing-checks=true", query)
			}
		})
	}
}

// TestRegistrarRetriesDraining checks that a SetDraining the agent failed to take is sent
// again by Run, so that a drain at shutdown is not lost to one agent hiccup.
func TestRegistrarRetriesDraining(t *testing.T) {
	fake := &regFakeAgent{
		registerCode: func(int) int { return http.StatusOK },
		registered:   make(chan struct{}),
		maintCode: func(call int) int {
			if call == 2 { // the first is Run's "not draining" after registering
				return http.StatusInternalServerError
			}
			return http.StatusOK
		},
	}
	// In a synctest bubble, with the agent in memory, "not sent again" is checked over five
	// poll intervals of the fake clock: exactly, rather than over 100ms of a busy machine.
	synctest.Test(t, func(t *testing.T) {
		fake.registered = make(chan struct{}) // a channel of the bubble
		reg := Registration{RegisterConfig: RegisterConfig{ID: "retry-1", CheckInterval: 20 * time.Millisecond}, Port: 8080, CheckURL: "http://127.0.0.1:1/readyz"}
		r, err := NewRegistrar(regMemClient(t, fake), reg, nil)
		if err != nil {
			t.Fatal(err)
		}
		regRun(t, r)
		testutil.Receive(t, fake.registered, "a registration")
		testutil.EventuallyWithNote(t, "maintenance state sent after registering", func() (bool, string) {
			fake.mu.Lock()
			defer fake.mu.Unlock()
			return len(fake.maint) == 1, fmt.Sprint(fake.maint)
		})
		if err := r.SetDraining(true); !isStatus(err, http.StatusInternalServerError) {
			t.Fatalf("SetDraining = %v, want the agent's 500", err)
		}
		testutil.EventuallyWithNote(t, "drain sent again by Run", func() (bool, string) {
			fake.mu.Lock()
			defer fake.mu.Unlock()
			return slices.Equal(fake.maint, []string{"false", "true", "true"}), fmt.Sprint(fake.maint)
		})
		// Once taken, it is not sent again every interval.
		time.Sleep(5 * reg.CheckInterval)
		synctest.Wait()
		fake.mu.Lock()
		defer fake.mu.Unlock()
		if len(fake.maint) != 3 {
			t.Errorf("maintenance calls = %v, want exactly false, true, true", fake.maint)
		}
	})
}

// TestRegistrarRegistersAgainAtNextPoll: an agent that lost the registration gets it back,
// still draining, at the first poll after the loss, on a synctest clock: exactly one
// CheckInterval's wait at most, where the real agent's test can only bound it loosely.
func TestRegistrarRegistersAgainAtNextPoll(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fake := &regFakeAgent{registerCode: func(int) int { return http.StatusOK }, registered: make(chan struct{})}
		const interval = 5 * time.Second
		reg := Registration{RegisterConfig: RegisterConfig{ID: "phoenix-1", CheckInterval: interval}, Port: 8080, CheckURL: "http://127.0.0.1:1/readyz"}
		r, err := NewRegistrar(regMemClient(t, fake), reg, nil)
		if err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		regRun(t, r)
		synctest.Wait()
		if err := r.SetDraining(true); err != nil {
			t.Fatal(err)
		}
		time.Sleep(interval + interval/2) // the poll at 5s finds it present
		fake.lose()                       // lost at 7.5s, as by an agent restarted without its data
		time.Sleep(2 * interval)
		synctest.Wait()

		fake.mu.Lock()
		defer fake.mu.Unlock()
		var at []time.Duration
		for _, a := range fake.registeredAt {
			at = append(at, a.Sub(start))
		}
		if want := []time.Duration{0, 2 * interval}; !slices.Equal(at, want) {
			t.Errorf("registered at %v, want %v: at start and at the first poll after the loss", at, want)
		}
		if want := []string{"false", "true", "true"}; !slices.Equal(fake.maint, want) {
			t.Errorf("maintenance calls = %v, want %v: the drain applied again with the registration", fake.maint, want)
		}
	})
}

// regFakeAgent answers the agent endpoints the registrar uses.
type regFakeAgent struct {
	registerCode func(attempt int) int
	maintCode    func(call int) int // nil: 200
	registered   chan struct{}      // closed on the first successful registration

	mu           sync.Mutex
	n            int    // registration attempts
	closed       bool   // registered is closed
	lastBody     []byte // the last registration request
	lastQuery    string
	registeredAt []time.Time // when each successful registration arrived
	lost         bool        // the service is gone: reading it answers 404
	maint        []string    // the enable parameter of each maintenance call
	deregistered atomic.Bool
}

// lose makes the fake forget the service until the next registration.
func (f *regFakeAgent) lose() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.lost = true
}

func (f *regFakeAgent) attempts() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.n
}

func (f *regFakeAgent) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	switch {
	case req.URL.Path == "/v1/agent/service/register":
		body, _ := io.ReadAll(req.Body)
		f.mu.Lock()
		f.n++
		f.lastBody, f.lastQuery = body, req.URL.RawQuery
		code := f.registerCode(f.n)
		if code == http.StatusOK {
			f.registeredAt = append(f.registeredAt, time.Now())
			f.lost = false
		}
		if code == http.StatusOK && !f.closed {
			close(f.registered)
			f.closed = true
		}
		f.mu.Unlock()
		w.WriteHeader(code)
	case strings.HasPrefix(req.URL.Path, "/v1/agent/service/deregister/"):
		f.deregistered.Store(true)
	case strings.HasPrefix(req.URL.Path, "/v1/agent/service/maintenance/"):
		f.mu.Lock()
		f.maint = append(f.maint, req.URL.Query().Get("enable"))
		code := http.StatusOK
		if f.maintCode != nil {
			code = f.maintCode(len(f.maint))
		}
		f.mu.Unlock()
		w.WriteHeader(code)
	case strings.HasPrefix(req.URL.Path, "/v1/agent/service/"):
		f.mu.Lock()
		lost := f.lost
		f.mu.Unlock()
		if lost {
			http.NotFound(w, req)
			return
		}
		_, _ = w.Write([]byte(`{}`))
	default:
		http.NotFound(w, req)
	}
}

// regReadyz is a /readyz whose answer the test sets.
type regReadyzServer struct {
	*httptest.Server
	status atomic.Int32
}

func regReadyz(t *testing.T) *regReadyzServer {
	t.Helper()
	s := &regReadyzServer{}
	s.status.Store(http.StatusOK)
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(int(s.status.Load()))
	}))
	t.Cleanup(s.Close)
	return s
}

// regMemClient returns a client whose requests h answers in memory, for synctest bubbles.
func regMemClient(t *testing.T, h http.Handler) *api.Client {
	t.Helper()
	c, err := api.NewClient(&api.Config{Address: "agent.test:8500", Scheme: "http",
		HttpClient: &http.Client{Transport: testutil.Transport(h)}})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func regClient(t *testing.T, addr string) *api.Client {
	t.Helper()
	cfg := DefaultConfig()
	cfg.Address = addr
	c, err := NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// regRun runs r until the test ends and checks that Run then returns nil.
func regRun(t *testing.T, r *Registrar) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run = %v, want nil", err)
		}
	})
}

// regHTTPCheck returns the service's HTTP check from the catalog, failing if there is none.
func regHTTPCheck(t *testing.T, client *api.Client, name, id string) *api.HealthCheck {
	t.Helper()
	var found *api.HealthCheck
	testutil.EventuallyWithNote(t, "http check in the catalog", func() (bool, string) {
		checks, _, err := client.Health().Checks(name, nil)
		if err != nil {
			return false, err.Error()
		}
		for _, c := range checks {
			if c.ServiceID == id && c.Type == "http" {
				found = c
				return true, ""
			}
		}
		return false, fmt.Sprintf("%d checks, none http for %s", len(checks), id)
	})
	return found
}

// regAgentHealth returns the agent's aggregated status for service id and its maintenance
// check, or nil when not in maintenance. The agent answers from local state, without
// waiting for the catalog to catch up.
func regAgentHealth(t *testing.T, client *api.Client, id string) (string, *api.HealthCheck) {
	t.Helper()
	status, info, err := client.Agent().AgentHealthServiceByID(id)
	if err != nil {
		t.Fatalf("agent health of %s: %v", id, err)
	}
	if info == nil {
		return "missing", nil
	}
	for _, c := range info.Checks {
		if c.CheckID == "_service_maintenance:"+id {
			return status, c
		}
	}
	return status, nil
}
