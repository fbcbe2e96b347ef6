package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"slices"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/veloflux/veloflux/config"
	"github.com/veloflux/veloflux/discovery/consul"
	"github.com/veloflux/veloflux/gossip"
)

// cluster is this node's gossip membership and the store it replicates: sticky sessions,
// health observations (written by health/consensus) and drains.
type cluster struct {
	name     string
	node     *gossip.Node
	store    *gossip.Store
	sessions *gossip.Sessions
}

// newCluster builds the gossip node and replicated store from the cluster section; nothing
// listens or runs until run starts them.
func (a *app) newCluster(c *config.Config) (*cluster, error) {
	name := c.Cluster.Name
	if name == "" {
		h, err := os.Hostname()
		if err != nil {
			return nil, fmt.Errorf("cluster.name: empty and no hostname: %w", err)
		}
		name = h
	}
	var peers func() []string
	if c.Cluster.JoinConsul {
		peers = func() []string { return a.consulPeers(c, name) }
	}
	gc, sc := gossipConfigs(c, name, peers)
	gc.AdminPort = a.adminPort
	store, err := gossip.NewStore(sc, gossip.NewClock(nil, 0))
	if err != nil {
		return nil, err
	}
	log := a.log.With("component", "gossip")
	node, err := gossip.New(gc, store, log, a.reg)
	if err != nil {
		return nil, err
	}
	gossip.Rebroadcast(store, node, name)
	sessions, err := gossip.NewSessions(store, node, log, a.reg)
	if err != nil {
		return nil, err
	}
	if err := gossip.RegisterStoreMetrics(store, a.reg); err != nil {
		return nil, err
	}
	return &cluster{name: name, node: node, store: store, sessions: sessions}, nil
}

// adminPort is the port the admin API is bound to, 0 without one: gossiped so that the other
// nodes' admin APIs can forward to this one whatever port it has.
func (a *app) adminPort() int {
	if a.admin == nil {
		return 0
	}
	if ta, ok := a.admin.Addr().(*net.TCPAddr); ok {
		return ta.Port
	}
	return 0
}

// gossipConfigs completes the cluster section with what the program knows: the node's name,
// its region and version for the node metadata, and, with join_consul, the peers registered
// in Consul (findPeers), asked at once and again whenever the node is alone.
func gossipConfigs(c *config.Config, name string, findPeers func() []string) (gossip.Config, gossip.StoreConfig) {
	gc := c.Cluster.Config
	gc.Name = name
	gc.Region, gc.Version = c.Geo.NodeRegion, version
	if findPeers != nil {
		gc.Seeds = append(slices.Clone(gc.Seeds), findPeers()...)
		// Nodes started together may all look before any has registered: a node left alone
		// asks again at every reconnect_interval.
		gc.FindPeers = findPeers
	}
	sc := c.Cluster.StoreConfig
	sc.NodeName = name
	return gc, sc
}

// clusterKeys decodes gossip_key and gossip_keys; config validation has checked them already.
func clusterKeys(k config.Cluster) (primary []byte, others [][]byte, err error) {
	if primary, err = gossip.ParseKey(k.GossipKey); err != nil {
		return nil, nil, fmt.Errorf("cluster.gossip_key: %w", err)
	}
	for i, s := range k.GossipKeys {
		key, err := gossip.ParseKey(s)
		if err != nil {
			return nil, nil, fmt.Errorf("cluster.gossip_keys[%d]: %w", i, err)
		}
		others = append(others, key)
	}
	return primary, others, nil
}

// applyKeys gives the running keyring the keys of a reloaded config: that is how keys rotate
// without a restart (docs/clustering.md#key-rotation). Encryption cannot be switched on or off
// at runtime, so that change is reported as needing a restart.
func (c *cluster) applyKeys(k config.Cluster) (changed bool, err error) {
	before := c.node.Keys()
	if k.GossipKey == "" {
		if before != nil {
			return false, errors.New("cluster.gossip_key: removing encryption needs a restart")
		}
		return false, nil
	}
	primary, others, err := clusterKeys(k)
	if err != nil {
		return false, err
	}
	if err := c.node.SetKeys(primary, others); err != nil {
		if errors.Is(err, gossip.ErrNoKeyring) {
			return false, errors.New("cluster.gossip_key: turning encryption on needs a restart")
		}
		return false, fmt.Errorf("cluster.gossip_key: %w", err)
	}
	after := c.node.Keys()
	return !slices.EqualFunc(before, after, bytes.Equal), nil
}

// gossipMetaKey is the service meta key under which a registered node publishes its gossip
// address, for peers that join through Consul.
const gossipMetaKey = "gossip_addr"

// consulPeers asks Consul for the gossip addresses of the other registered VeloFlux nodes: at
// start, and again whenever the node finds itself alone. Failures only cost the seeds: they are
// logged and the node keeps its static seeds.
func (a *app) consulPeers(c *config.Config, self string) []string {
	client, err := consul.NewClient(c.Discovery.Consul)
	if err != nil {
		a.log.Warn("cluster.join_consul: no Consul client", "error", err.Error())
		return nil
	}
	name := c.Discovery.Consul.Register.Name
	if name == "" {
		name = "veloflux"
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	svcs, _, err := client.Catalog().Service(name, "", (&api.QueryOptions{}).WithContext(ctx))
	if err != nil {
		a.log.Warn("cluster.join_consul: could not list peers", "service", name, "error", err.Error())
		return nil
	}
	var peers []string
	for _, s := range svcs {
		if addr := s.ServiceMeta[gossipMetaKey]; addr != "" && s.ServiceMeta["node_name"] != self {
			peers = append(peers, addr)
		}
	}
	if len(peers) > 0 {
		a.log.Info("cluster peers from Consul", "service", name, "peers", peers)
	} else {
		a.log.Debug("no cluster peers in Consul yet", "service", name)
	}
	return peers
}
