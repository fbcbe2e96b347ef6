package consul

import (
	"cmp"
	"fmt"
	"time"
)

// Datacenter states in Status.
const (
	StateStarting = "starting" // no request has succeeded yet
	StateOK       = "ok"       // every watch of the datacenter succeeded on its last try
	StateError    = "error"    // some watch is failing; its last good data is still used
)

// Status is the source's state for the admin API. It is a copy: changing it changes nothing.
type Status struct {
	Datacenters []DatacenterStatus `json:"datacenters"`
	// TagErrors lists every tag or meta entry that could not be used, sorted by
	// datacenter, service, instance and tag.
	TagErrors []TagError `json:"tag_errors"`
	// PoolConflicts lists instances whose pool-level settings (algorithm, sticky, a route's
	// strip_prefix) lost to another instance's, and routes claimed by more than one pool.
	PoolConflicts []string `json:"pool_conflicts"`
	// Published reports whether a snapshot has been published since Run started.
	Published bool `json:"published"`
}

// DatacenterStatus is the state of one watched datacenter.
type DatacenterStatus struct {
	// Name is the datacenter. For the agent's own datacenter (Config.Datacenter "") it is ""
	// until the agent has told its name.
	Name string `json:"name"`
	// State is StateStarting, StateOK or StateError.
	State string `json:"state"`
	// LastError is the most recent failure, without the ACL token; "" when State is ok.
	LastError string `json:"last_error,omitempty"`
	// LastSuccess is when a request to this datacenter last succeeded; zero if never.
	LastSuccess time.Time `json:"last_success"`
	// Index is the X-Consul-Index of the last service list read. It goes down when the
	// datacenter's servers lost their state (a restarted dev agent, a restored snapshot).
	Index uint64 `json:"index"`
	// Services are the watched services, sorted.
	Services []string `json:"services"`
}

// TagError is a VeloFlux tag or meta entry of one instance that could not be used. The entry is
// skipped; for a bad route, pool, algorithm, strip_prefix or protocol the whole instance is.
type TagError struct {
	Service    string `json:"service"`
	Instance   string `json:"instance"` // the Consul service ID
	Node       string `json:"node"`
	Datacenter string `json:"datacenter"`
	// Tag is the tag as registered, or key=value for a meta entry; "" when the problem is the
	// instance itself (no port).
	Tag  string `json:"tag"`
	Meta bool   `json:"meta,omitempty"`
	Msg  string `json:"msg"`
}

// Error reads: service web instance web-1 (node n1, dc1): tag "veloflux.weight=abc": weight must be 1..10000
func (e TagError) Error() string {
	where := fmt.Sprintf("service %s instance %s (node %s, %s)", e.Service, e.Instance, e.Node, e.Datacenter)
	switch {
	case e.Tag == "":
		return where + ": " + e.Msg
	case e.Meta:
		return fmt.Sprintf("%s: meta %q: %s", where, e.Tag, e.Msg)
	default:
		return fmt.Sprintf("%s: tag %q: %s", where, e.Tag, e.Msg)
	}
}

// compareTagErrors orders tag errors for Status and for stable comparisons of the state.
func compareTagErrors(a, b TagError) int {
	return cmp.Or(
		cmp.Compare(a.Datacenter, b.Datacenter), cmp.Compare(a.Service, b.Service),
		cmp.Compare(a.Instance, b.Instance), cmp.Compare(a.Node, b.Node),
		cmp.Compare(a.Tag, b.Tag), cmp.Compare(a.Msg, b.Msg),
	)
}
