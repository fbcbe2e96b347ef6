package consul

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/veloflux/veloflux/internal/testutil"
)

// fakeConsul is a scripted Consul HTTP API served in memory through testutil.Transport: for
// index cases a real agent cannot be made to produce on demand, and for the watch's timers,
// which a synctest bubble can then check exactly (a real agent is outside any bubble). Each
// endpoint answers its current body and index. A request whose index is current blocks, as
// on Consul, until the test changes the endpoint or the request's wait time passes, when it
// answers the same index again (without the up to wait/16 of jitter Consul adds).
type fakeConsul struct {
	mu       sync.Mutex
	changed  chan struct{} // closed and replaced on every change
	eps      map[string]*fakeEndpoint
	services map[string]int // service name -> port, for addService
}

type fakeEndpoint struct {
	index uint64
	body  string
	fail  int         // answer this many requests with 500
	seen  []string    // index parameter of each request, "" when absent
	at    []time.Time // when each request arrived
}

// fakeRequestCap bounds the requests one endpoint answers. A watch polling in a loop would
// never block, so a synctest bubble's clock would never move and the test would hang; past
// the cap the fake holds every request instead, and the test's counts show the polling.
const fakeRequestCap = 1000

const (
	fakeServicesPath = "/v1/catalog/services"
	fakeWebPath      = "/v1/health/service/web"
)

// newFakeConsul returns a fake whose catalog holds one service, web, on port 8080, both at
// index 10. Call it inside the bubble that uses it: its channels belong to that bubble.
func newFakeConsul() *fakeConsul {
	f := &fakeConsul{changed: make(chan struct{}), services: map[string]int{}, eps: map[string]*fakeEndpoint{
		"/v1/agent/self": {body: `{"Config":{"Datacenter":"dc1"}}`},
	}}
	f.addServiceLocked("web", 8080)
	f.eps[fakeServicesPath].index, f.eps[fakeWebPath].index = 10, 10
	return f
}

func fakeHealth(port int) string { return fakeHealthOf("web", port) }

func fakeHealthOf(name string, port int) string {
	return fmt.Sprintf(`[{"Node":{"Node":"n1","Address":"10.0.0.1"},"Service":{"ID":"%s-1","Service":"%s","Port":%d,"Tags":["veloflux.enable=true"]},"Checks":[]}]`,
		name, name, port)
}

// client returns a Consul API client whose requests f answers in memory.
func (f *fakeConsul) client(t *testing.T) *api.Client {
	t.Helper()
	c, err := api.NewClient(&api.Config{Address: "consul.test:8500", Scheme: "http",
		HttpClient: &http.Client{Transport: testutil.Transport(http.HandlerFunc(f.serve))}})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// run starts a source on cfg that talks to f; it is stopped when the test ends.
func (f *fakeConsul) run(t *testing.T, cfg Config) watched {
	t.Helper()
	cfg.Address = "consul.test:8500" // never dialled: the client below answers in memory
	s, reg, logs := newSource(t, cfg)
	s.client = f.client(t)
	return startSource(t, s, reg, logs)
}

func (f *fakeConsul) serve(w http.ResponseWriter, r *http.Request) {
	idx := r.URL.Query().Get("index")
	f.mu.Lock()
	ep, ok := f.eps[r.URL.Path]
	n := 0
	if ok {
		ep.seen = append(ep.seen, idx)
		ep.at = append(ep.at, time.Now())
		n = len(ep.seen)
	}
	f.mu.Unlock()
	if !ok {
		http.NotFound(w, r)
		return
	}
	if n > fakeRequestCap {
		<-r.Context().Done()
		return
	}
	want, _ := strconv.ParseUint(idx, 10, 64)
	f.mu.Lock()
	// As Consul: answer at once without an index or when the data is newer than it, else
	// block until something changes or the wait time has passed.
	if idx != "" && ep.index <= want && ep.fail == 0 {
		changed := f.changed
		f.mu.Unlock()
		wait := 5 * time.Minute // Consul's default
		if d, err := time.ParseDuration(r.URL.Query().Get("wait")); err == nil && d > 0 {
			wait = d
		}
		timer := time.NewTimer(wait)
		defer timer.Stop()
		select {
		case <-changed:
		case <-timer.C:
		case <-r.Context().Done():
			return
		}
		f.mu.Lock()
	}
	if ep.fail > 0 {
		ep.fail--
		f.mu.Unlock()
		http.Error(w, "scripted failure", http.StatusInternalServerError)
		return
	}
	w.Header().Set("X-Consul-Index", strconv.FormatUint(ep.index, 10))
	body := ep.body
	f.mu.Unlock()
	io.WriteString(w, body)
}

// set changes an endpoint and wakes blocked requests.
func (f *fakeConsul) set(path string, change func(*fakeEndpoint)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	change(f.eps[path])
	f.wakeLocked()
}

func (f *fakeConsul) wakeLocked() {
	close(f.changed)
	f.changed = make(chan struct{})
}

// addService registers a routed service with one instance on port, as an agent registration
// would: its health endpoint first, then the catalog's service list, each at a new index.
func (f *fakeConsul) addService(name string, port int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.addServiceLocked(name, port)
	f.wakeLocked()
}

func (f *fakeConsul) addServiceLocked(name string, port int) {
	list := f.eps[fakeServicesPath]
	if list == nil {
		list = &fakeEndpoint{}
		f.eps[fakeServicesPath] = list
	}
	list.index++
	f.eps["/v1/health/service/"+name] = &fakeEndpoint{index: list.index, body: fakeHealthOf(name, port)}
	f.services[name] = port
	tags := make(map[string][]string, len(f.services))
	for _, svc := range slices.Sorted(maps.Keys(f.services)) {
		tags[svc] = []string{"veloflux.enable=true"}
	}
	b, _ := json.Marshal(tags)
	list.body = string(b)
}

func (f *fakeConsul) seen(path string) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.eps[path].seen)
}

// times returns when each request to path arrived.
func (f *fakeConsul) times(path string) []time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.eps[path].at)
}

// requests counts every request f has seen, and those that asked without an index (or with
// index 0), which Consul answers at once: a watch that sends them while idle is polling.
func (f *fakeConsul) requests() (total, nonBlocking int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for path, ep := range f.eps {
		if path == "/v1/agent/self" {
			continue
		}
		for _, idx := range ep.seen {
			total++
			if idx == "" || idx == "0" {
				nonBlocking++
			}
		}
	}
	return total, nonBlocking
}
