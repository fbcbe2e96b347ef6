package balance_test

import (
	"fmt"
	"testing"

	"go.uber.org/goleak"

	"github.com/veloflux/veloflux/proxy/balance"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// newBackends returns initialised backends named b0, b1, ... with the given weights.
func newBackends(weights ...int) []*balance.Backend {
	bs := make([]*balance.Backend, len(weights))
	for i, w := range weights {
		bs[i] = new(balance.Backend)
		bs[i].Init(fmt.Sprintf("b%d", i), w)
	}
	return bs
}

// indexOf returns the position of b in bs, or -1.
func indexOf(bs []*balance.Backend, b *balance.Backend) int {
	for i, c := range bs {
		if c == b {
			return i
		}
	}
	return -1
}

// mustNew is balance.New for names the test knows are valid.
func mustNew(t testing.TB, algorithm string) balance.Policy {
	t.Helper()
	p, err := balance.New(algorithm)
	if err != nil {
		t.Fatalf("New(%q): %v", algorithm, err)
	}
	return p
}

// clientKey is the ip_hash key of the i-th test client, hashed from a 4-byte address the way
// the proxy hashes a client IP.
func clientKey(i int) uint64 {
	return balance.HashBytes([]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
}
