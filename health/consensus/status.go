package consensus

import (
	"cmp"
	"slices"
	"time"

	"github.com/veloflux/veloflux/gossip"
)

// BackendStatus is one backend as the cluster sees it, for the admin API.
type BackendStatus struct {
	ID string
	// Healthy is the consensus: what Healthy(ID) answers.
	Healthy bool
	// Probers are the members assigned to probe the backend, by name: this node alone when
	// standalone, none for a backend without a health check path.
	Probers []string
	// Quorum is how many of Probers must report down to take the backend out.
	Quorum int
	// Standalone is true when this node decides alone (no gossip, or no peer in sight).
	Standalone bool
	// Observers are the observations known of this backend, by node and then source; the
	// voting ones are the fresh active observations of Probers.
	Observers []ObserverStatus
	// Why says what took the backend out, e.g. "2 of 2 probers report down: node-a: status
	// 503; node-b: timeout"; "" while healthy.
	Why string
}

// ObserverStatus is one node's latest observation of a backend.
type ObserverStatus struct {
	Node string
	Observation
	// Expires is when the observation stops counting; zero for this node's own verdict when
	// standalone, which needs no expiry.
	Expires time.Time
	// Fresh is false once Expires has passed: the observer stopped refreshing it.
	Fresh bool
	// Voting says whether the observation counts toward the quorum right now.
	Voting bool
}

// Status returns every backend sorted by ID.
func (v *View) Status() []BackendStatus {
	var fresh []gossip.Entry
	if v.store != nil {
		v.store.Range(gossip.KindHealth, func(e gossip.Entry) bool {
			fresh = append(fresh, e)
			return true
		})
	}
	now := time.Now()
	v.mu.Lock()
	defer v.mu.Unlock()
	clustered := v.clusteredLocked()
	byPart := make(map[string][]ObserverStatus)
	if clustered {
		live := make(map[string]bool, len(fresh))
		for _, e := range fresh {
			part, obs, err := decodeObservationEntry(e)
			if err != nil {
				continue
			}
			live[e.Key] = true
			byPart[part] = append(byPart[part], ObserverStatus{Node: e.Node, Observation: obs,
				Expires: time.Unix(0, e.Expires), Fresh: true})
		}
		for key, s := range v.seen {
			if !live[key] && !now.Before(s.expires) {
				byPart[s.part] = append(byPart[s.part], ObserverStatus{Node: s.node, Observation: s.obs, Expires: s.expires})
			}
		}
	}
	view := *v.view.Load()
	out := make([]BackendStatus, 0, len(v.targets))
	for _, t := range v.targets {
		healthy, ok := view[t.ID]
		probers := slices.Clone(v.probers[t.ID])
		bs := BackendStatus{ID: t.ID, Healthy: healthy || !ok, Probers: probers, Quorum: quorum(len(probers)),
			Standalone: !clustered, Why: v.down[t.ID]}
		if len(probers) == 0 {
			bs.Quorum = 0
		}
		if clustered {
			bs.Observers = byPart[v.partOf[t.ID]]
			for i := range bs.Observers {
				o := &bs.Observers[i]
				_, assigned := slices.BinarySearch(probers, o.Node)
				o.Voting = o.Fresh && assigned && o.Source == SourceActive
			}
		} else {
			bs.Observers = v.localObserversLocked(t.ID)
		}
		slices.SortFunc(bs.Observers, func(a, b ObserverStatus) int {
			return cmp.Or(cmp.Compare(a.Node, b.Node), cmp.Compare(a.Source, b.Source))
		})
		out = append(out, bs)
	}
	slices.SortFunc(out, func(a, b BackendStatus) int { return cmp.Compare(a.ID, b.ID) })
	return out
}

// localObserversLocked is what this node alone knows of a backend, shown when standalone.
// v.mu must be held.
func (v *View) localObserversLocked(id string) []ObserverStatus {
	var out []ObserverStatus
	if p := v.mine[id]; p != nil && (!p.last.At.IsZero() || p.inherited) {
		out = append(out, ObserverStatus{Node: v.self, Fresh: true, Voting: true, Observation: p.observation()})
	}
	if rep := v.passive[id]; rep != nil {
		out = append(out, ObserverStatus{Node: v.self, Fresh: true, Observation: rep.obs})
	}
	return out
}
