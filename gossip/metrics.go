package gossip

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/veloflux/veloflux/internal/promreg"
)

// Label values of veloflux_gossip_messages_total and veloflux_gossip_pushpull_bytes_total.
const (
	dirSent     = "sent"
	dirReceived = "received"

	resultOK      = "ok"
	resultDropped = "dropped"
	resultError   = "error"
)

// Label values of veloflux_gossip_members, both always exported so a dashboard sees 0 rather than a
// missing series. memberlist's event API does not say whether a node left or died (the state it
// passes is stale) nor when one is suspected, so a departed node is one that left or was declared
// dead, for as long as this node retries it (Config.ReconnectTimeout).
const (
	memberAlive    = "alive"
	memberDeparted = "departed"
)

type nodeMetrics struct {
	// messages counts broadcasts and push/pull payloads alike: a full state that fails to merge
	// is a received message in error.
	messages      *prometheus.CounterVec
	pushPullBytes *prometheus.CounterVec
	catchup       *prometheus.CounterVec
	members       *membersCollector
}

func newNodeMetrics(counts func() map[string]int) *nodeMetrics {
	m := &nodeMetrics{
		messages: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "veloflux_gossip_messages_total",
			Help: "Gossip messages by direction (sent, received) and result (ok, dropped, error).",
		}, []string{"direction", "result"}),
		pushPullBytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "veloflux_gossip_pushpull_bytes_total",
			Help: "Bytes of full state exchanged in push/pull, by direction (sent, received).",
		}, []string{"direction"}),
		catchup: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "veloflux_gossip_catchup_bytes_total",
			Help: "Bytes of digest catch-up by direction (sent, received) and part (digest: the push/pull digests; ranges: bucket sums of slots that differ; entries: the entries of buckets that differ).",
		}, []string{"direction", "part"}),
		members: &membersCollector{
			desc: prometheus.NewDesc("veloflux_gossip_members",
				"Cluster members as this node sees them, by state (alive; departed: left or dead, still retried).",
				[]string{"state"}, nil),
			counts: counts,
		},
	}
	for _, dir := range []string{dirSent, dirReceived} {
		for _, res := range []string{resultOK, resultDropped, resultError} {
			m.messages.WithLabelValues(dir, res)
		}
		m.pushPullBytes.WithLabelValues(dir)
		for _, part := range []string{"digest", "ranges", "entries"} {
			m.catchup.WithLabelValues(dir, part)
		}
	}
	return m
}

func (m *nodeMetrics) register(reg prometheus.Registerer) error {
	if err := promreg.Register(reg, m.messages, m.pushPullBytes, m.catchup, m.members); err != nil {
		return fmt.Errorf("gossip: register metrics: %w", err)
	}
	return nil
}

// membersCollector computes the member gauge at scrape time: memberlist calls its event delegate
// with its node lock held, so keeping a gauge current from those callbacks would have to re-enter
// memberlist from inside them.
type membersCollector struct {
	desc   *prometheus.Desc
	counts func() map[string]int
}

func (c *membersCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *membersCollector) Collect(ch chan<- prometheus.Metric) {
	counts := c.counts()
	for _, s := range []string{memberAlive, memberDeparted} {
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(counts[s]), s)
	}
}
