package main

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/veloflux/veloflux/config"
	"github.com/veloflux/veloflux/discovery/consul"
)

// consulConfig turns the discovery.consul section into the source's settings, with the
// standard CONSUL_HTTP_* variables applied where the file keeps a default.
func consulConfig(c *config.Config, environ []string) consul.Config {
	k := c.Discovery.Consul
	cc := consul.DefaultConfig()
	cc.Address, cc.Scheme, cc.Token, cc.TokenFile = k.Address, k.Scheme, k.Token, k.TokenFile
	cc.Datacenter, cc.Datacenters = k.Datacenter, append([]string(nil), k.Datacenters...)
	cc.TLS = consul.TLSConfig{
		CAFile: k.TLS.CAFile, CertFile: k.TLS.CertFile, KeyFile: k.TLS.KeyFile,
		ServerName: k.TLS.ServerName, InsecureSkipVerify: k.TLS.InsecureSkipVerify,
	}
	cc.TagPrefix, cc.ExposedByDefault, cc.AcceptWarning = k.TagPrefix, k.ExposedByDefault, k.AcceptWarning
	cc.WaitTime, cc.Coalesce, cc.MinBackoff, cc.MaxBackoff = k.WaitTime, k.Coalesce, k.MinBackoff, k.MaxBackoff
	return cc.FromEnv(environ)
}

// registration describes this node to Consul: its proxy listener, and its /readyz on the
// metrics listener as the check, so a draining node turns critical.
func registration(c *config.Config, proxyAddr, metricsAddr string) (consul.Registration, error) {
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
	return consul.Registration{
		Name:                    r.Name,
		ID:                      r.ID,
		Address:                 r.Address,
		Port:                    port,
		Tags:                    append([]string(nil), r.Tags...),
		Meta:                    map[string]string{"version": version},
		CheckURL:                "http://" + net.JoinHostPort(checkHost, checkPort) + "/readyz",
		CheckInterval:           r.CheckInterval,
		DeregisterCriticalAfter: r.DeregisterCriticalAfter,
	}, nil
}

// startConsul creates the Consul source (and registrar) when discovery.consul is enabled and
// starts them with spawn.
func (a *app) startConsul(spawn func(string, func(context.Context) error)) error {
	cfg := a.cfg.Discovery.Consul
	if !cfg.Enabled {
		return nil
	}
	cc := consulConfig(a.cfg, a.environ)
	src, err := consul.New(cc, a.log.With("component", "consul"), a.reg)
	if err != nil {
		return err
	}
	a.consul = src
	spawn("consul", func(ctx context.Context) error { return src.Run(ctx, a.routing.setConsul) })
	if !cfg.Register.Enabled {
		return nil
	}
	client, err := consul.NewClient(cc)
	if err != nil {
		return err
	}
	reg, err := registration(a.cfg, a.server.Addrs()[0].String(), a.metricsAddr)
	if err != nil {
		return err
	}
	if a.cluster != nil {
		// Peers joining through Consul read this node's gossip address from its meta.
		select {
		case <-a.cluster.node.Ready():
			reg.Meta[gossipMetaKey] = a.cluster.node.LocalAddr()
			reg.Meta["node_name"] = a.cluster.name
		case <-time.After(5 * time.Second):
			a.log.Warn("gossip not bound after 5s: registering without its address")
		}
	}
	a.registrar, err = consul.NewRegistrar(client, reg, a.log.With("component", "consul-register"))
	if err != nil {
		return err
	}
	spawn("consul register", a.registrar.Run)
	return nil
}

// setDraining tells Consul at once that this node is out of service (or back).
func (a *app) setDraining(draining bool) {
	if a.cluster != nil {
		if err := a.cluster.node.SetDraining(draining); err != nil {
			a.log.Warn("could not tell the cluster about the drain", "draining", draining, "error", err.Error())
		}
	}
	if a.registrar == nil {
		return
	}
	if err := a.registrar.SetDraining(draining); err != nil {
		a.log.Warn("could not tell Consul about the drain; its /readyz check will", "draining", draining, "error", err.Error())
	}
}
