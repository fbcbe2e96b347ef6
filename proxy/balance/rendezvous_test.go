package balance_test

import (
	"fmt"
	"slices"
	"testing"

	"github.com/veloflux/veloflux/proxy/balance"
)

func TestHashIsXXH64(t *testing.T) {
	// Published XXH64 (seed 0) vectors: nodes of one cluster, and different releases, must
	// agree on every hash, so the function may never drift.
	tests := []struct {
		name  string
		input string
		want  uint64
	}{
		{name: "empty", input: "", want: 0xef46db3751d8e999},
		{name: "a", input: "a", want: 0xd24ec4f1a98c6e5b},
		{name: "asdf", input: "asdf", want: 0x415872f599cea71e},
		{name: "63 bytes", input: "Call me Ishmael. Some years ago--never mind how long precisely-", want: 0x02a2e85470d6fd96},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := balance.HashString(tt.input); got != tt.want {
				t.Errorf("HashString(%q) = %#x, want %#x", tt.input, got, tt.want)
			}
			if got := balance.HashBytes([]byte(tt.input)); got != tt.want {
				t.Errorf("HashBytes(%q) = %#x, want %#x", tt.input, got, tt.want)
			}
		})
	}
}

// TestRendezvousGolden pins the key-to-backend mapping. Every VeloFlux node must send a client
// to the same backend, including nodes running different releases during a rolling upgrade,
// so a change here is a compatibility break, not a refactor.
func TestRendezvousGolden(t *testing.T) {
	ids := []string{"web-a", "web-b", "web-c", "web-d"}
	clients := []string{"10.0.0.1", "10.0.0.2", "10.0.0.3", "192.168.1.7", "172.16.4.20", "2001:db8::1", "2001:db8::2", "203.0.113.9"}
	tests := []struct {
		name    string
		weights []int
		want    []string // backend per client
	}{
		{
			name:    "equal weights",
			weights: []int{1, 1, 1, 1},
			want:    []string{"web-c", "web-d", "web-a", "web-d", "web-b", "web-a", "web-d", "web-a"},
		},
		{
			name:    "weighted",
			weights: []int{1, 2, 3, 4},
			want:    []string{"web-c", "web-d", "web-b", "web-d", "web-b", "web-a", "web-d", "web-c"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			bs := make([]*balance.Backend, len(ids))
			for i, id := range ids {
				bs[i] = new(balance.Backend)
				bs[i].Init(id, tt.weights[i])
			}
			got := make([]string, len(clients))
			for i, c := range clients {
				got[i] = ids[balance.Rendezvous(bs, balance.HashString(c))]
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("mapping = %q, want %q", got, tt.want)
			}
		})
	}
}

// TestRendezvousMinimalDisruption removes each backend in turn and checks that exactly the
// keys it owned move, and that adding it back restores the original mapping.
func TestRendezvousMinimalDisruption(t *testing.T) {
	const (
		n    = 10
		keys = 100000
	)
	tests := []struct {
		name    string
		weights []int
	}{
		{name: "equal weights", weights: []int{1, 1, 1, 1, 1, 1, 1, 1, 1, 1}},
		{name: "mixed weights", weights: []int{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			bs := newBackends(tt.weights...)
			orig := make([]*balance.Backend, keys)
			for k := range keys {
				orig[k] = bs[balance.Rendezvous(bs, clientKey(k))]
			}
			var totalWeight int
			for _, w := range tt.weights {
				totalWeight += w
			}
			for r := range n {
				t.Run(fmt.Sprintf("remove b%d", r), func(t *testing.T) {
					removed := bs[r]
					rest := slices.Delete(slices.Clone(bs), r, r+1)
					moved, owned := 0, 0
					for k := range keys {
						got := rest[balance.Rendezvous(rest, clientKey(k))]
						if orig[k] == removed {
							owned++
							moved++
							continue
						}
						if got != orig[k] {
							t.Fatalf("key %d moved from b%d to b%d though b%d was removed",
								k, indexOf(bs, orig[k]), indexOf(bs, got), r)
						}
					}
					// The removed backend owned about weight/total of the keys.
					want := keys * tt.weights[r] / totalWeight
					if owned < want*8/10 || owned > want*12/10 {
						t.Errorf("b%d owned %d keys, want about %d", r, owned, want)
					}
					if moved != owned {
						t.Errorf("%d keys moved, want exactly the %d owned by b%d", moved, owned, r)
					}
					// Put it back at the end, in a different position: the mapping must return.
					back := append(rest, removed)
					for k := range keys {
						if got := back[balance.Rendezvous(back, clientKey(k))]; got != orig[k] {
							t.Fatalf("after re-adding b%d, key %d maps to b%d, originally b%d",
								r, k, indexOf(bs, got), indexOf(bs, orig[k]))
						}
					}
				})
			}
		})
	}
}

func TestRendezvousWeightedShares(t *testing.T) {
	tests := []struct {
		name    string
		weights []int
	}{
		{name: "equal", weights: []int{1, 1, 1, 1, 1}},
		{name: "linear", weights: []int{1, 2, 3, 4}},
		{name: "skewed", weights: []int{10, 1}},
		{name: "one heavy", weights: []int{50, 1, 1, 1}},
	}
	const keys = 100000
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			bs := newBackends(tt.weights...)
			counts := make([]int, len(bs))
			for k := range keys {
				counts[balance.Rendezvous(bs, clientKey(k))]++
			}
			assertShares(t, counts, tt.weights, keys)
		})
	}
}

// TestRendezvousWeightChange checks that raising one backend's weight only pulls keys to it:
// no key moves between two other backends, because their scores did not change.
func TestRendezvousWeightChange(t *testing.T) {
	bs := newBackends(2, 2, 2, 2, 2)
	const keys = 50000
	before := make([]int, keys)
	for k := range keys {
		before[k] = balance.Rendezvous(bs, clientKey(k))
	}
	const grown = 3
	bs[grown].SetWeight(6)
	gained := 0
	for k := range keys {
		after := balance.Rendezvous(bs, clientKey(k))
		switch {
		case after == before[k]:
		case after == grown:
			gained++
		default:
			t.Fatalf("key %d moved from b%d to b%d; only moves to b%d are allowed", k, before[k], after, grown)
		}
	}
	// 1/5 -> 6/14 of the keys: about 22.9% of all keys move to it.
	if want := keys * 16 / 70; gained < want*9/10 || gained > want*11/10 {
		t.Errorf("b%d gained %d keys, want about %d", grown, gained, want)
	}
}

func TestRendezvousOrderIndependent(t *testing.T) {
	tests := []struct {
		name    string
		weights []int
	}{
		{name: "equal weights", weights: []int{1, 1, 1, 1, 1, 1}},
		{name: "mixed weights", weights: []int{3, 1, 4, 1, 5, 9}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			bs := newBackends(tt.weights...)
			rev := slices.Clone(bs)
			slices.Reverse(rev)
			rot := append(slices.Clone(bs[2:]), bs[:2]...)
			for k := range 20000 {
				key := clientKey(k)
				want := bs[balance.Rendezvous(bs, key)]
				if got := rev[balance.Rendezvous(rev, key)]; got != want {
					t.Fatalf("key %d: reversed order picks b%d, want b%d", k, indexOf(bs, got), indexOf(bs, want))
				}
				if got := rot[balance.Rendezvous(rot, key)]; got != want {
					t.Fatalf("key %d: rotated order picks b%d, want b%d", k, indexOf(bs, got), indexOf(bs, want))
				}
			}
		})
	}
}

func TestIPHashIsRendezvous(t *testing.T) {
	p := mustNew(t, "ip_hash")
	bs := newBackends(1, 3, 2, 5)
	for k := range 5000 {
		key := clientKey(k)
		if got, want := p.Pick(bs, key), balance.Rendezvous(bs, key); got != want {
			t.Fatalf("ip_hash Pick(key %d) = %d, Rendezvous = %d", k, got, want)
		}
		if again := p.Pick(bs, key); again != p.Pick(bs, key) {
			t.Fatalf("ip_hash is not stable for key %d", k)
		}
	}
}

// FuzzRendezvous checks Rendezvous's contract on arbitrary pools: the result is in range,
// does not depend on candidate order, survives the removal of any other backend, and moves
// only away from a removed winner.
func FuzzRendezvous(f *testing.F) {
	f.Add(uint64(1), uint64(2), uint8(5), uint8(0), []byte{1, 1, 1, 1, 1})
	f.Add(uint64(0), uint64(0), uint8(2), uint8(1), []byte{255, 1})
	f.Add(uint64(1<<63), uint64(42), uint8(20), uint8(7), []byte{3, 1, 4, 1, 5, 9, 2, 6})
	f.Fuzz(func(t *testing.T, key, seed uint64, n, remove uint8, weights []byte) {
		size := int(n%32) + 1
		bs := make([]*balance.Backend, size)
		for i := range bs {
			w := 1
			if len(weights) > 0 {
				w = int(weights[i%len(weights)])
			}
			bs[i] = new(balance.Backend)
			bs[i].Init(fmt.Sprintf("%d-%d", seed, i), w)
		}
		got := balance.Rendezvous(bs, key)
		if got < 0 || got >= size {
			t.Fatalf("Rendezvous = %d with %d candidates", got, size)
		}
		winner := bs[got]
		rev := slices.Clone(bs)
		slices.Reverse(rev)
		if r := rev[balance.Rendezvous(rev, key)]; r != winner {
			t.Fatalf("reversed order changes the winner")
		}
		if size == 1 {
			return
		}
		r := int(remove) % size
		rest := slices.Delete(slices.Clone(bs), r, r+1)
		after := rest[balance.Rendezvous(rest, key)]
		if bs[r] != winner && after != winner {
			t.Fatalf("removing a loser (b%d) moved the key from b%d to b%d", r, got, indexOf(bs, after))
		}
	})
}
