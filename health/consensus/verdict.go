package consensus

import (
	"fmt"
	"maps"
	"strings"
	"time"

	"github.com/veloflux/veloflux/gossip"
)

// vote is one observer's word on a backend as the consensus sees it.
type vote struct {
	Node string
	Observation
	Fresh bool
}

// verdict is the consensus on one backend.
type verdict struct {
	Down          bool
	Votes, Quorum int // down votes counted, and how many were needed
	Why           string
}

// judge applies the quorum rule: a backend is down when at least quorum(len(probers)) of its
// assigned probers have a fresh active observation saying down. Everything else in votes (other
// observers, passive reports, expired observations) is ignored, and no vote at all is healthy.
func judge(probers []string, votes []vote) verdict {
	v := verdict{Quorum: quorum(len(probers))}
	if len(probers) == 0 {
		return v
	}
	var reasons []string
	for _, p := range probers {
		for _, o := range votes {
			if o.Node != p || !o.Fresh || o.Source != SourceActive || o.Healthy {
				continue
			}
			v.Votes++
			reason := o.Reason
			if reason == "" {
				reason = "down"
			}
			reasons = append(reasons, p+": "+reason)
			break
		}
	}
	if v.Votes >= v.Quorum {
		v.Down = true
		v.Why = fmt.Sprintf("%d of %d probers report down: %s", v.Votes, len(probers), strings.Join(reasons, "; "))
	}
	return v
}

// votesLocked reads the fresh active observations of a backend's probers from the store, with
// when each expires. v.mu must be held.
func (v *View) votesLocked(id string, probers []string) ([]vote, []time.Time) {
	var votes []vote
	var expires []time.Time
	part := v.partOf[id]
	for _, p := range probers {
		e, ok := v.store.Get(gossip.KindHealth, observationKey(SourceActive, part, p))
		if !ok {
			continue
		}
		_, obs, err := decodeObservationEntry(e)
		if err != nil {
			continue // counted when it arrived
		}
		votes = append(votes, vote{Node: p, Observation: obs, Fresh: true})
		expires = append(expires, time.Unix(0, e.Expires))
	}
	return votes, expires
}

// recomputeLocked rebuilds the view and swaps it in when it changed. Clustered, each backend is
// judged from its probers' observations in the store, which every node holds alike; standalone,
// the view is the Checker's own verdicts. v.mu must be held, which also keeps views from being
// published out of order.
func (v *View) recomputeLocked(now time.Time) {
	clustered := v.clusteredLocked()
	view := make(map[string]bool, len(v.targets))
	down := make(map[string]string)
	var nextExpiry time.Time
	for _, t := range v.targets {
		if !t.Checked() {
			continue
		}
		if !clustered {
			p := v.mine[t.ID]
			if v.checker.Healthy(t.ID) && (p == nil || !p.inherited) {
				view[t.ID] = true
				continue
			}
			view[t.ID] = false
			why := "down by this node's own checks"
			if p != nil && p.reason != "" {
				why += ": " + p.reason
			}
			down[t.ID] = why
			continue
		}
		votes, expires := v.votesLocked(t.ID, v.probers[t.ID])
		j := judge(v.probers[t.ID], votes)
		view[t.ID] = !j.Down
		if j.Down {
			down[t.ID] = j.Why
		}
		// Only a down vote expiring can change the verdict.
		for i, o := range votes {
			if !o.Healthy && o.Source == SourceActive && (nextExpiry.IsZero() || expires[i].Before(nextExpiry)) {
				nextExpiry = expires[i]
			}
		}
	}
	if !nextExpiry.IsZero() {
		// Just past the expiry, so the store, which drops entries at Expires <= now, agrees.
		nextExpiry = nextExpiry.Add(time.Millisecond)
	}
	v.nextExpiry = nextExpiry
	old := *v.view.Load()
	for id, why := range down {
		if _, was := v.down[id]; !was {
			v.logger.Info("backend down in the cluster view", "backend", id, "why", why, "standalone", !clustered)
		}
	}
	for id := range v.down {
		if _, still := down[id]; !still {
			if _, known := view[id]; known {
				v.logger.Info("backend up in the cluster view", "backend", id, "standalone", !clustered)
			}
		}
	}
	v.down = down
	v.metrics.down.Set(float64(len(down)))
	if maps.Equal(view, old) {
		return
	}
	v.view.Store(&view)
}
