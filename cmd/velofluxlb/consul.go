package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/veloflux/veloflux/config"
	"github.com/veloflux/veloflux/discovery/consul"
)

// registrationOf describes this node to Consul: its proxy listener, and its /readyz on the
// metrics listener as the check, so a draining node turns critical.
func registrationOf(c *config.Config, proxyAddr, metricsAddr string) (consul.Registration, error) {
	r := c.Discovery.Consul.Register
	_, portStr, err := net.SplitHostPort(proxyAddr)
	if err != nil {
		return consul.Registration{}, fmt.Errorf("discovery.consul.register: proxy address %q: %w", proxyAddr, err)
	}
	port, _ := strconv.Atoi(portStr)
	checkHost, checkPort, err := net.SplitHostPort(metricsAddr)
	if err != nil {
		return consul.Registration{}, fmt.Errorf("discovery.consul.register: metrics address %q: %w", metricsAddr, err)
	}
	if ip := net.ParseIP(checkHost); ip != nil && ip.IsUnspecified() {
		// The agent checks from its own host: a wildcard listener answers on the advertised
		// address, or on loopback when none is set.
		checkHost = r.Address
		if checkHost == "" {
			checkHost = "127.0.0.1"
		}
	}
	r.Tags = append([]string(nil), r.Tags...)
	return consul.Registration{
		RegisterConfig: r,
		Port:           port,
		Meta:           map[string]string{"version": version},
		CheckURL:       "http://" + net.JoinHostPort(checkHost, checkPort) + "/readyz",
	}, nil
}

// registration keeps this node registered in Consul while it runs. It is built with the rest
// of the node, but its consul.Registrar is made when it runs: peers that join the cluster
// through Consul read the gossip address from the service meta, and the gossip node learns
// its address only when it runs and binds.
type registration struct {
	client  *api.Client
	reg     consul.Registration // complete but for the gossip address; only Run uses it
	cluster *cluster            // nil without a cluster
	log     *slog.Logger

	// mu guards registrar and draining, and is held across the registrar's SetDraining, so
	// that the agent ends in the state of the last SetDraining even when it races Run.
	mu        sync.Mutex
	registrar *consul.Registrar // nil until Run has made it
	draining  bool
}

func newRegistration(a *app, proxyAddr, metricsAddr string) (*registration, error) {
	client, err := consul.NewClient(a.cfg.Discovery.Consul)
	if err != nil {
		return nil, err
	}
	reg, err := registrationOf(a.cfg, proxyAddr, metricsAddr)
	if err != nil {
		return nil, err
	}
	// Checked now, so that a bad setting stops the start rather than the running node.
	if err := reg.Validate(); err != nil {
		return nil, err
	}
	return &registration{client: client, reg: reg, cluster: a.cluster, log: a.log.With("component", "consul-register")}, nil
}

// Run waits until the gossip node has bound (at most 5s), so that the registration carries
// its address, then registers the node and keeps it registered until ctx ends; see
// consul.Registrar.Run. While the agent is unreachable it retries every check interval.
func (r *registration) Run(ctx context.Context) error {
	if r.cluster != nil {
		wait := time.NewTimer(5 * time.Second)
		defer wait.Stop()
		select {
		case <-r.cluster.node.Ready():
			r.reg.Meta[gossipMetaKey] = r.cluster.node.LocalAddr()
			r.reg.Meta["node_name"] = r.cluster.name
		case <-wait.C:
			r.log.Warn("gossip not bound after 5s: registering without its address")
		case <-ctx.Done():
			return nil
		}
	}
	registrar, err := consul.NewRegistrar(r.client, r.reg, r.log)
	if err != nil {
		return err
	}
	r.mu.Lock()
	r.registrar = registrar
	if r.draining {
		// The registrar keeps the state and applies it once it has registered; until then
		// the agent has no service to put in maintenance, hence the error.
		_ = registrar.SetDraining(true)
	}
	r.mu.Unlock()
	return registrar.Run(ctx)
}

// SetDraining puts the registered service in maintenance (draining true) or takes it out.
// Before Run has registered, the state is kept and applied when it does.
func (r *registration) SetDraining(draining bool) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.draining = draining
	if r.registrar == nil {
		return nil
	}
	return r.registrar.SetDraining(draining)
}

// setDraining tells the cluster and Consul at once that this node is out of service (or back).
func (a *app) setDraining(draining bool) {
	if a.cluster != nil {
		if err := a.cluster.node.SetDraining(draining); err != nil {
			a.log.Warn("could not tell the cluster about the drain", "draining", draining, "error", err.Error())
		}
	}
	if a.register == nil {
		return
	}
	if err := a.register.SetDraining(draining); err != nil {
		a.log.Warn("could not tell Consul about the drain; its /readyz check will", "draining", draining, "error", err.Error())
	}
}
