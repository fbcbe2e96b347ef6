package discovery

import (
	"fmt"
	"time"

	"github.com/veloflux/veloflux/internal/backendtls"
)

// Backend is one upstream instance as a source saw it. Values are immutable once published.
type Backend struct {
	// ID identifies the backend across snapshots, so per-backend state (connection counts,
	// health, sticky pins) survives table rebuilds. Unique within a pool.
	ID string
	// Address is host:port.
	Address string
	// Weight is the relative share of traffic, >= 1.
	Weight int
	// Region is where the backend runs; empty means the node's own region.
	Region string
	// HealthPath is the HTTP path of the active health check; empty means not checked
	// unless HealthCheck.Type is tcp.
	HealthPath string
	// HealthCheck holds the rest of the active check's settings the source gave for this
	// backend (Consul tags); each zero field leaves that setting to the node's configuration.
	HealthCheck HealthCheck
	// Scheme is how the proxy talks to the backend: "http" (HTTP/1.1, the default when
	// empty), "https" (HTTP/1.1 or HTTP/2 over TLS) or "h2c" (HTTP/2 without TLS).
	Scheme string
	// TLSSkipVerify accepts any certificate from an https backend (self-signed test
	// setups). It removes the protection TLS gives against a network attacker.
	TLSSkipVerify bool
	// TLS is the rest of the client side of TLS towards an https backend (private CA, server
	// name, client certificate); the zero value is the defaults. Ignored for other schemes.
	TLS backendtls.Settings
}

// HealthCheck is how a source asks for one backend to be actively checked. Values are as in
// the configuration file's health_check section; "" and 0 mean "as configured".
type HealthCheck struct {
	Type         string // "http" or "tcp"
	Method       string // HTTP method, an RFC 9110 token
	Host         string // Host header
	ExpectStatus string // statuses that pass, e.g. "200-299,301"
	Interval     time.Duration
	Timeout      time.Duration
	MaxInterval  time.Duration
	Rise         int
	Fall         int // consecutive failures before down: the file's retries
}

// Pool is a named set of interchangeable backends and how to balance over them.
type Pool struct {
	Name string
	// Algorithm names a balancing policy: round_robin, weighted, least_conn, ip_hash, random.
	Algorithm string
	// Sticky pins each client session to one backend with a signed cookie.
	Sticky bool
	// MaxConnsPerBackend caps the requests in flight to each backend of the pool, beyond
	// which requests wait in a queue; 0 leaves it to the proxy's own setting.
	MaxConnsPerBackend int
	Backends           []Backend
}

// Route sends requests whose host and path match to a pool.
type Route struct {
	// Host is an exact host ("example.com"), a host with port ("example.com:8443"), a
	// wildcard ("*.example.com", one or more labels) or empty for the default route.
	Host string
	// PathPrefix is matched on whole bytes of the URL path; empty means "/".
	PathPrefix string
	// StripPrefix removes PathPrefix from the path sent upstream.
	StripPrefix bool
	Pool        string
	// Geo is how the route uses the client's location: "" or "off" balances over every
	// healthy backend of the pool; "nearest" serves from the first region, in the client's
	// nearest-first order, that has a healthy backend; "redirect" chooses the region the same
	// way and answers 307 to that region's redirect host when it is not this node's region.
	// Any other value makes the snapshot invalid.
	Geo string
}

// Snapshot is a complete, immutable view of pools and routes from one source.
type Snapshot struct {
	// Source names where the snapshot came from ("static", "consul"), for logs and conflicts.
	Source string
	Pools  []Pool
	Routes []Route
}

// Pool returns the pool with the given name.
func (s *Snapshot) Pool(name string) (*Pool, bool) {
	for i := range s.Pools {
		if s.Pools[i].Name == name {
			return &s.Pools[i], true
		}
	}
	return nil, false
}

// Conflict reports a pool defined by more than one source; the first source wins.
type Conflict struct {
	Pool    string
	Winner  string
	Ignored string
}

func (c Conflict) String() string {
	return fmt.Sprintf("pool %q from %s ignored: %s defines it", c.Pool, c.Ignored, c.Winner)
}

// Merge combines snapshots in priority order: a pool defined by an earlier snapshot hides the
// same-named pool of later ones (reported as a Conflict). Routes are concatenated in order.
func Merge(snaps ...*Snapshot) (*Snapshot, []Conflict) {
	out := &Snapshot{Source: "merged"}
	owner := make(map[string]string)
	var conflicts []Conflict
	for _, s := range snaps {
		if s == nil {
			continue
		}
		for _, p := range s.Pools {
			if w, ok := owner[p.Name]; ok {
				conflicts = append(conflicts, Conflict{Pool: p.Name, Winner: w, Ignored: s.Source})
				continue
			}
			owner[p.Name] = s.Source
			out.Pools = append(out.Pools, p)
		}
		out.Routes = append(out.Routes, s.Routes...)
	}
	return out, conflicts
}
