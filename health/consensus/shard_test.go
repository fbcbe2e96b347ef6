package consensus

import (
	"fmt"
	"slices"
	"testing"

	"github.com/veloflux/veloflux/gossip"
)

func memberNames(n int) []string {
	names := make([]string, n)
	for i := range names {
		names[i] = fmt.Sprintf("node-%02d", i)
	}
	return names
}

func TestRendezvousDeterministic(t *testing.T) {
	names := memberNames(7)
	reversed := slices.Clone(names)
	slices.Reverse(reversed)
	for i := range 200 {
		id := fmt.Sprintf("backend-%d", i)
		a := rendezvous(names, id, 3)
		b := rendezvous(reversed, id, 3)
		if !slices.Equal(a, b) {
			t.Fatalf("%s: order of members changed the pick: %v vs %v", id, a, b)
		}
		if again := rendezvous(names, id, 3); !slices.Equal(a, again) {
			t.Fatalf("%s: second call picked %v, first %v", id, again, a)
		}
		if len(a) != 3 || a[0] == a[1] || a[1] == a[2] || a[0] == a[2] {
			t.Fatalf("%s: want 3 distinct members, got %v", id, a)
		}
	}
}

func TestRendezvousSizes(t *testing.T) {
	tests := []struct {
		name    string
		members int
		k       int
		want    int
	}{
		{"k below members", 5, 2, 2},
		{"k equals members", 3, 3, 3},
		{"k above members", 2, 5, 2},
		{"single member", 1, 2, 1},
		{"no members", 0, 2, 0},
		{"k zero", 3, 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := rendezvous(memberNames(tt.members), "b", tt.k); len(got) != tt.want {
				t.Fatalf("rendezvous(%d members, k=%d) = %v, want %d members", tt.members, tt.k, got, tt.want)
			}
		})
	}
}

// TestRendezvousSpreadsEvenly: with k=2 over 10 members each member probes about a fifth of
// the backends.
func TestRendezvousSpreadsEvenly(t *testing.T) {
	const backends, k = 10000, 2
	names := memberNames(10)
	load := map[string]int{}
	for i := range backends {
		for _, n := range rendezvous(names, fmt.Sprintf("pool-a/10.0.%d.%d:8080", i/256, i%256), k) {
			load[n]++
		}
	}
	want := backends * k / len(names) // 2000
	for _, n := range names {
		if got := load[n]; got < want*90/100 || got > want*110/100 {
			t.Errorf("%s probes %d backends, want %d ± 10%%", n, got, want)
		}
	}
	t.Logf("load per member: %v", load)
}

// TestRendezvousMovesOnlyTheDeadShare: when a member dies, only the backends it probed get a
// new prober, each keeps its surviving prober, and nothing else moves.
func TestRendezvousMovesOnlyTheDeadShare(t *testing.T) {
	const k = 2
	names := memberNames(6)
	dead := names[2]
	survivors := slices.DeleteFunc(slices.Clone(names), func(n string) bool { return n == dead })
	moved := 0
	for i := range 3000 {
		id := fmt.Sprintf("backend-%d", i)
		before := rendezvous(names, id, k)
		after := rendezvous(survivors, id, k)
		if !slices.Contains(before, dead) {
			if !slices.Equal(before, after) {
				t.Fatalf("%s did not involve %s but moved: %v -> %v", id, dead, before, after)
			}
			continue
		}
		moved++
		for _, p := range before {
			if p != dead && !slices.Contains(after, p) {
				t.Fatalf("%s lost its surviving prober %s: %v -> %v", id, p, before, after)
			}
		}
		if len(after) != k || slices.Contains(after, dead) {
			t.Fatalf("%s: after the death probers are %v", id, after)
		}
	}
	// The dead member held about k/len(names) of the backends.
	if want := 3000 * k / len(names); moved < want*80/100 || moved > want*120/100 {
		t.Fatalf("%d backends moved, want about %d", moved, want)
	}
}

func TestMembershipCandidates(t *testing.T) {
	ms := []gossip.Member{
		{Name: "eu-1", Region: "eu"}, {Name: "eu-2", Region: "eu"},
		{Name: "us-1", Region: "us"}, {Name: "ap-1", Region: "ap"},
	}
	tests := []struct {
		name   string
		self   string
		region string
		want   []string
	}{
		{"own region when target has none", "eu-1", "", []string{"eu-1", "eu-2"}},
		{"own region seen from another region", "us-1", "", []string{"us-1"}},
		{"target region", "eu-1", "us", []string{"us-1"}},
		{"region without members falls back to all", "eu-1", "sa", []string{"ap-1", "eu-1", "eu-2", "us-1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := newMembership(ms, tt.self)
			if got := m.candidates(tt.region); !slices.Equal(got, tt.want) {
				t.Fatalf("candidates(%q) from %s = %v, want %v", tt.region, tt.self, got, tt.want)
			}
		})
	}
}

func TestMembershipClustered(t *testing.T) {
	tests := []struct {
		name    string
		members []string
		self    string
		want    bool
	}{
		{"no members (gossip not running)", nil, "a", false},
		{"alone", []string{"a"}, "a", false},
		{"with a peer", []string{"a", "b"}, "a", true},
		{"self missing from the list", []string{"b", "c"}, "a", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var ms []gossip.Member
			for _, n := range tt.members {
				ms = append(ms, gossip.Member{Name: n})
			}
			if got := newMembership(ms, tt.self).clustered(); got != tt.want {
				t.Fatalf("clustered() = %t, want %t", got, tt.want)
			}
		})
	}
}

func TestQuorum(t *testing.T) {
	for k, want := range map[int]int{1: 1, 2: 2, 3: 2, 4: 3, 5: 3} {
		if got := quorum(k); got != want {
			t.Errorf("quorum(%d) = %d, want %d", k, got, want)
		}
	}
}
