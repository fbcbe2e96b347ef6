package consensus

import (
	"cmp"
	"slices"

	"github.com/cespare/xxhash/v2"

	"github.com/veloflux/veloflux/gossip"
	"github.com/veloflux/veloflux/health"
)

// member is the part of a gossip member that the assignment depends on.
type member struct {
	Name, Region string
}

// membership is one node's view of the live cluster, the input of every assignment. Two nodes
// with equal memberships assign every backend to the same probers, which is what lets each of
// them compute the consensus alone.
type membership struct {
	members []member // sorted by name
	self    string
	region  string // self's region
}

// newMembership keeps the names and regions of ms, sorted by name, and finds self among them.
func newMembership(ms []gossip.Member, self string) membership {
	m := membership{self: self, members: make([]member, 0, len(ms))}
	for _, g := range ms {
		m.members = append(m.members, member{Name: g.Name, Region: g.Region})
		if g.Name == self {
			m.region = g.Region
		}
	}
	slices.SortFunc(m.members, func(a, b member) int { return cmp.Compare(a.Name, b.Name) })
	return m
}

// clustered reports whether the probing is shared: this node sees itself and at least one peer.
// Anything less (no gossip, not started yet, alone) is standalone, where this node probes
// everything and trusts its own verdicts.
func (m membership) clustered() bool {
	if len(m.members) < 2 {
		return false
	}
	_, found := slices.BinarySearchFunc(m.members, m.self, func(e member, name string) int { return cmp.Compare(e.Name, name) })
	return found
}

// equal reports whether m and o would assign every backend alike.
func (m membership) equal(o membership) bool {
	return m.self == o.self && m.region == o.region && slices.Equal(m.members, o.members)
}

// candidates are the members allowed to probe a backend of region ("" = this node's own): the
// members of that region, or every member when that region has none, so a backend is probed
// from further away rather than not at all.
func (m membership) candidates(region string) []string {
	if region == "" {
		region = m.region
	}
	var local, all []string
	for _, mem := range m.members {
		all = append(all, mem.Name)
		if mem.Region == region {
			local = append(local, mem.Name)
		}
	}
	if len(local) > 0 {
		return local
	}
	return all
}

// probers returns the members that probe t, sorted by name: the k candidates with the highest
// rendezvous score.
func (m membership) probers(t health.Target, k int) []string {
	p := rendezvous(m.candidates(t.Region), t.ID, k)
	slices.Sort(p)
	return p
}

// rendezvous picks the k names with the highest score(name, id), best first (min(k, len(names))
// of them). Rendezvous hashing rather than a ring: every backend spreads independently over the
// candidates, and when a member leaves only the backends it probed move, each to the next best
// member, while every other assignment stays put and keeps its checker state.
func rendezvous(names []string, id string, k int) []string {
	k = min(k, len(names))
	if k <= 0 {
		return nil
	}
	type scored struct {
		name  string
		score uint64
	}
	all := make([]scored, len(names))
	for i, n := range names {
		all[i] = scored{n, rendezvousScore(n, id)}
	}
	// Ties are next to impossible with 64-bit scores, but breaking them by name keeps the
	// result independent of the input order, which is the whole point.
	slices.SortFunc(all, func(a, b scored) int {
		if c := cmp.Compare(b.score, a.score); c != 0 {
			return c
		}
		return cmp.Compare(a.name, b.name)
	})
	out := make([]string, k)
	for i := range out {
		out[i] = all[i].name
	}
	return out
}

// rendezvousScore hashes a member name and a backend ID with a NUL between them, so ("ab", "c")
// and ("a", "bc") score independently.
func rendezvousScore(name, id string) uint64 {
	d := xxhash.New()
	_, _ = d.WriteString(name)
	_, _ = d.Write([]byte{0})
	_, _ = d.WriteString(id)
	return d.Sum64()
}

// quorum is how many of k probers must report a backend down for the cluster to take it out: a
// strict majority, so with k=2 both must agree and no single node can take a backend out for
// everyone.
func quorum(k int) int { return k/2 + 1 }
