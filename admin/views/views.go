package views

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/veloflux/veloflux/admin"
	"github.com/veloflux/veloflux/config"
	"github.com/veloflux/veloflux/discovery/consul"
	"github.com/veloflux/veloflux/gossip"
	"github.com/veloflux/veloflux/health"
	"github.com/veloflux/veloflux/health/consensus"
	"github.com/veloflux/veloflux/proxy"
)

// Parts are the node's parts the views read and drive. Every one is built before the admin
// API serves and stays the same for the life of the Controller; each may be running.
type Parts struct {
	// Version is the build's version, and Started when the node started. ConfigFile is the
	// path of the configuration file. All three are shown as they are.
	Version    string
	Started    time.Time
	ConfigFile string

	// Proxy, Server, Checker, Passive, Consensus and Drains are required.
	Proxy  *proxy.Proxy
	Server *proxy.Server // its addresses, and the node drain
	// Checker is the active checker; its targets are this node's share of the probes.
	Checker *health.Checker
	Passive *health.Passive
	// Consensus is the health verdict the proxy reads (the node's own without a cluster).
	Consensus *consensus.View
	Drains    *gossip.Drains
	// Consul is the Consul catalog source. nil: discovery.consul is off, and the status
	// shows "consul": null.
	Consul *consul.Source
	// Cluster is the gossip membership. nil: the node runs alone, and the status shows
	// "cluster": null.
	Cluster *Cluster
	// ACME returns the state of the certificates obtained with ACME, shown as "acme". nil:
	// global.tls.auto_cert is off, and the status shows "acme": null.
	ACME func() any
	// Metrics are the node's own metrics, which /admin/stats reads. Required.
	Metrics prometheus.Gatherer
	// Sessions are the sticky-session pins the proxy uses: the cluster's shared table with a
	// Cluster, this node's own without. Required.
	Sessions SessionCounter
	// Log receives what goes wrong while building a view. nil discards.
	Log *slog.Logger

	// Running returns the configuration in use and the result of the last load of the
	// configuration file, start-up included; cmd replaces both on reload. Required.
	Running func() (*config.Config, Reload)
	// SourceConflicts returns the pool names that several discovery sources define, as the
	// routing merge last reported them. nil: none, shown as null.
	SourceConflicts func() []string
	// SetDraining tells the world beyond this node's listeners (cluster peers, Consul) that
	// the node drains, or serves again; the Controller calls it after draining or undraining
	// Server. nil: nobody else is told.
	SetDraining func(draining bool)
}

// SessionCounter counts the stored sticky-session moves by the backend they moved to
// (gossip.Sessions and proxy.LocalSessions have the method).
type SessionCounter interface {
	ByBackend() map[string]int
}

// Cluster is the node's gossip membership and the replicated store, as the status shows them.
type Cluster struct {
	Name  string // this node's name in the cluster
	Node  *gossip.Node
	Store *gossip.Store
}

// Reload is the result of loading the configuration file, shown as "last_reload".
type Reload struct {
	At    time.Time `json:"at"`
	OK    bool      `json:"ok"`
	Error string    `json:"error,omitempty"`
}

// Controller implements admin.Controller over Parts. Its methods are safe for concurrent
// use: every part answers from its own snapshots or locks.
type Controller struct {
	p Parts
}

var _ admin.Controller = (*Controller)(nil)

// New returns a Controller over p, or an error naming every required part that is missing.
func New(p Parts) (*Controller, error) {
	var errs []error
	for _, r := range []struct {
		name    string
		missing bool
	}{
		{"Proxy", p.Proxy == nil},
		{"Server", p.Server == nil},
		{"Checker", p.Checker == nil},
		{"Passive", p.Passive == nil},
		{"Consensus", p.Consensus == nil},
		{"Drains", p.Drains == nil},
		{"Running", p.Running == nil},
		{"Metrics", p.Metrics == nil},
		{"Sessions", p.Sessions == nil},
		{"Cluster.Node", p.Cluster != nil && p.Cluster.Node == nil},
		{"Cluster.Store", p.Cluster != nil && p.Cluster.Store == nil},
	} {
		if r.missing {
			errs = append(errs, fmt.Errorf("admin views: Parts.%s is required", r.name))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if p.Log == nil {
		p.Log = slog.New(slog.DiscardHandler)
	}
	return &Controller{p: p}, nil
}

// Status is GET /admin/status: the node, its table, its last reload and its sources.
func (c *Controller) Status() any {
	p := c.p
	_, last := p.Running()
	return map[string]any{
		"version":          p.Version,
		"started":          p.Started.UTC(),
		"uptime_seconds":   int64(time.Since(p.Started).Seconds()),
		"draining":         p.Proxy.Draining(),
		"inflight":         p.Proxy.InFlight(),
		"table_version":    p.Proxy.TableVersion(),
		"config_file":      p.ConfigFile,
		"last_reload":      last,
		"health_targets":   len(p.Consensus.Status()),
		"health_probed":    len(p.Checker.Status()),
		"listen_addresses": addrStrings(p.Server.Addrs()),
		"consul":           c.consulStatus(),
		"source_conflicts": c.conflicts(),
		"cluster":          c.clusterStatus(),
		"acme":             c.acmeStatus(),
	}
}

// acmeStatus is the ACME manager's state, or nil without auto_cert.
func (c *Controller) acmeStatus() any {
	if c.p.ACME == nil {
		return nil
	}
	return c.p.ACME()
}

// clusterStatus lists the gossip members, alive and departed, and the replicated entries by
// kind (tombstones included), or nil when the node runs alone.
func (c *Controller) clusterStatus() any {
	cl := c.p.Cluster
	if cl == nil {
		return nil
	}
	entries := make(map[string]int, 3)
	for _, k := range []gossip.Kind{gossip.KindSession, gossip.KindHealth, gossip.KindDrain} {
		entries[k.String()] = cl.Store.Len(k)
	}
	return map[string]any{
		"name":     cl.Name,
		"members":  cl.Node.AllMembers(),
		"entries":  entries,
		"sessions": entries[gossip.KindSession.String()],
	}
}

// consulStatus is the Consul source's state, or nil when it is off.
func (c *Controller) consulStatus() any {
	if c.p.Consul == nil {
		return nil
	}
	return c.p.Consul.Status()
}

func (c *Controller) conflicts() []string {
	if c.p.SourceConflicts == nil {
		return nil
	}
	return c.p.SourceConflicts()
}

func addrStrings(addrs []net.Addr) []string {
	var out []string
	for _, a := range addrs {
		out = append(out, a.String())
	}
	return out
}

// poolView is a pool as the admin API shows it: the proxy's view plus the health checker's
// reason for each backend, and the passive checks' ejection.
type poolView struct {
	proxy.PoolStatus
	Backends []backendView `json:"backends"`
}

type backendView struct {
	proxy.BackendStatus
	HealthPath string    `json:"health_path,omitempty"`
	LastCheck  time.Time `json:"last_check,omitzero"`
	LastError  string    `json:"last_error,omitempty"`
	NextCheck  time.Time `json:"next_check,omitzero"`
	// EjectedReason and EjectedUntil are set while the passive checks eject the backend.
	EjectedReason string    `json:"ejected_reason,omitempty"`
	EjectedUntil  time.Time `json:"ejected_until,omitzero"`
}

// Pools is GET /admin/pools: every pool of the routing table with its backends.
func (c *Controller) Pools() any {
	checks := make(map[string]health.TargetStatus)
	for _, s := range c.p.Checker.Status() {
		checks[s.ID] = s
	}
	ejections := c.ejections()
	pools := c.p.Proxy.Pools()
	out := make([]poolView, 0, len(pools))
	for _, p := range pools {
		v := poolView{PoolStatus: p, Backends: make([]backendView, 0, len(p.Backends))}
		for _, b := range p.Backends {
			bv := backendView{BackendStatus: b}
			if s, ok := checks[b.ID]; ok {
				bv.HealthPath, bv.LastCheck, bv.LastError, bv.NextCheck = s.Path, s.LastCheck, s.LastError, s.NextCheck
			}
			if e, ok := ejections[b.ID]; ok {
				bv.EjectedReason, bv.EjectedUntil = e.Reason, e.Until
			}
			v.Backends = append(v.Backends, bv)
		}
		out = append(out, v)
	}
	return out
}

// Routes is GET /admin/routes: the routes of the table in use.
func (c *Controller) Routes() any { return c.p.Proxy.Routes() }

// Config is GET /admin/config: the configuration in use, secrets redacted.
func (c *Controller) Config() any {
	cfg, _ := c.p.Running()
	return cfg.Redacted()
}

// Drain is POST /admin/drain: the node answers 503 and tells its peers and Consul.
func (c *Controller) Drain() {
	c.p.Server.Drain()
	c.setDraining(true)
}

// Undrain is POST /admin/undrain.
func (c *Controller) Undrain() {
	c.p.Server.Undrain()
	c.setDraining(false)
}

func (c *Controller) setDraining(draining bool) {
	if c.p.SetDraining != nil {
		c.p.SetDraining(draining)
	}
}

// DrainBackend drains or undrains a backend that some pool of the routing table has.
func (c *Controller) DrainBackend(id string, drained bool) error {
	known := false
	for _, p := range c.p.Proxy.Pools() {
		if slices.ContainsFunc(p.Backends, func(b proxy.BackendStatus) bool { return b.ID == id }) {
			known = true
			break
		}
	}
	if !known && drained {
		// Undraining an ID no pool has is allowed: it cleans up after a removed backend.
		return fmt.Errorf("drain %q: %w", id, admin.ErrUnknownBackend)
	}
	return c.p.Drains.SetBackend(id, drained)
}
