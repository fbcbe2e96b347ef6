package views

import (
	"cmp"
	"fmt"
	"math"
	"net"
	"slices"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/veloflux/veloflux/admin"
)

// stats is GET /admin/stats: counters since the node started, read from its own metrics. A
// reader that wants rates (the dashboard) takes the difference of two readings.
type stats struct {
	At time.Time `json:"at"`
	// Requests counts answered requests; ByClass splits them by status class (2xx ... 5xx).
	Requests int64            `json:"requests"`
	ByClass  map[string]int64 `json:"by_class"`
	Pools    []poolStats      `json:"pools"`
	Latency  latency          `json:"latency"`
	Retries  int64            `json:"retries"`
	// RateLimited counts requests refused with 429 by the per-client rate limit.
	RateLimited  int64        `json:"rate_limited"`
	InFlight     int64        `json:"inflight"`
	Certificates []certExpiry `json:"certificates"`
}

type poolStats struct {
	Pool     string `json:"pool"` // "" for requests no route matched
	Requests int64  `json:"requests"`
	Errors   int64  `json:"errors"` // answered 5xx
}

// latency is veloflux_request_duration_seconds over every pool: the upper bound of each
// bucket in seconds with the cumulative count at or below it. Count is every request; the
// +Inf bucket, which JSON cannot write, is Count.
type latency struct {
	Count   uint64   `json:"count"`
	Sum     float64  `json:"sum_seconds"`
	Buckets []bucket `json:"buckets"`
}

type bucket struct {
	LE    float64 `json:"le"`
	Count uint64  `json:"count"`
}

type certExpiry struct {
	CertFile string    `json:"cert_file"`
	Expires  time.Time `json:"expires"`
}

// Stats is GET /admin/stats.
func (c *Controller) Stats() any {
	out := stats{At: time.Now().UTC(), ByClass: map[string]int64{}, Pools: []poolStats{}, Certificates: []certExpiry{},
		Latency: latency{Buckets: []bucket{}}}
	families, err := c.p.Metrics.Gather()
	if err != nil {
		// Gather returns what it could alongside the error; a partial reading beats none.
		c.p.Log.Warn("admin stats: gathering metrics", "error", err.Error())
	}
	pools := map[string]*poolStats{}
	les := map[float64]uint64{}
	for _, f := range families {
		for _, m := range f.GetMetric() {
			labels := labelMap(m)
			switch f.GetName() {
			case "veloflux_requests_total":
				n := int64(m.GetCounter().GetValue())
				out.Requests += n
				class := statusClass(labels["code"])
				out.ByClass[class] += n
				ps := pools[labels["pool"]]
				if ps == nil {
					ps = &poolStats{Pool: labels["pool"]}
					pools[labels["pool"]] = ps
				}
				ps.Requests += n
				if class == "5xx" {
					ps.Errors += n
				}
			case "veloflux_request_duration_seconds":
				h := m.GetHistogram()
				out.Latency.Count += h.GetSampleCount()
				out.Latency.Sum += h.GetSampleSum()
				for _, b := range h.GetBucket() {
					if !math.IsInf(b.GetUpperBound(), +1) {
						les[b.GetUpperBound()] += b.GetCumulativeCount()
					}
				}
			case "veloflux_retries_total":
				out.Retries += int64(m.GetCounter().GetValue())
			case "veloflux_rate_limited_total":
				out.RateLimited += int64(m.GetCounter().GetValue())
			case "veloflux_inflight_requests":
				out.InFlight = int64(m.GetGauge().GetValue())
			case "veloflux_tls_certificate_expiry_timestamp_seconds":
				sec, frac := math.Modf(m.GetGauge().GetValue())
				out.Certificates = append(out.Certificates, certExpiry{CertFile: labels["cert_file"],
					Expires: time.Unix(int64(sec), int64(frac*1e9)).UTC()})
			}
		}
	}
	for le, n := range les {
		out.Latency.Buckets = append(out.Latency.Buckets, bucket{LE: le, Count: n})
	}
	slices.SortFunc(out.Latency.Buckets, func(a, b bucket) int { return cmp.Compare(a.LE, b.LE) })
	for _, ps := range pools {
		out.Pools = append(out.Pools, *ps)
	}
	slices.SortFunc(out.Pools, func(a, b poolStats) int { return cmp.Compare(a.Pool, b.Pool) })
	slices.SortFunc(out.Certificates, func(a, b certExpiry) int { return cmp.Compare(a.CertFile, b.CertFile) })
	return out
}

func labelMap(m *dto.Metric) map[string]string {
	out := make(map[string]string, len(m.GetLabel()))
	for _, l := range m.GetLabel() {
		out[l.GetName()] = l.GetValue()
	}
	return out
}

// statusClass turns a code label ("200", "503") into its class ("2xx", "5xx").
func statusClass(code string) string {
	if len(code) != 3 || code[0] < '1' || code[0] > '5' {
		return "other"
	}
	return code[:1] + "xx"
}

// sessions is GET /admin/sessions.
type sessions struct {
	// Scope is "cluster" when the pins are the cluster's shared table (this node's copy of
	// it), "node" when they are this node's alone.
	Scope     string        `json:"scope"`
	Total     int           `json:"total"`
	ByBackend []backendPins `json:"by_backend"`
}

type backendPins struct {
	Backend string `json:"backend"`
	Pins    int    `json:"pins"`
}

// Sessions is GET /admin/sessions: the stored sticky-session moves, counted by the backend each
// session moved to. Sessions on the backend they started on are carried by their cookies and
// stored nowhere, so they are not counted.
func (c *Controller) Sessions() any {
	out := sessions{Scope: "node", ByBackend: []backendPins{}}
	if c.p.Cluster != nil {
		out.Scope = "cluster"
	}
	for id, n := range c.p.Sessions.ByBackend() {
		out.Total += n
		out.ByBackend = append(out.ByBackend, backendPins{Backend: id, Pins: n})
	}
	slices.SortFunc(out.ByBackend, func(a, b backendPins) int {
		return cmp.Or(cmp.Compare(b.Pins, a.Pins), cmp.Compare(a.Backend, b.Backend))
	})
	return out
}

// PeerAdmin returns the host of the gossip address of node, a live member other than this
// one, and the admin port it gossips (0 when it gossips none).
func (c *Controller) PeerAdmin(node string) (string, int, error) {
	cl := c.p.Cluster
	if cl == nil || node == cl.Name {
		return "", 0, fmt.Errorf("peer %q: %w", node, admin.ErrUnknownPeer)
	}
	for _, m := range cl.Node.Members() {
		if m.Name != node {
			continue
		}
		host, _, err := net.SplitHostPort(m.Addr)
		if err != nil {
			return "", 0, fmt.Errorf("peer %q: gossip address %q: %w", node, m.Addr, err)
		}
		return host, m.AdminPort, nil
	}
	return "", 0, fmt.Errorf("peer %q: %w", node, admin.ErrUnknownPeer)
}
