package balance_test

import (
	"fmt"
	"strings"

	"github.com/veloflux/veloflux/proxy/balance"
)

// The proxy keeps one Backend per upstream for the life of the process and, per request,
// passes the healthy ones to the pool's Policy.
func ExampleNew() {
	policy, err := balance.New("round_robin")
	if err != nil {
		fmt.Println(err)
		return
	}
	names := []string{"a", "b", "c"}
	backends := make([]*balance.Backend, len(names))
	for i, w := range []int{5, 1, 1} {
		backends[i] = new(balance.Backend)
		backends[i].Init(names[i], w)
	}
	var picked []string
	for range 7 {
		i := policy.Pick(backends, 0)
		backends[i].Acquire() // while the request is in flight
		picked = append(picked, names[i])
		backends[i].Release()
	}
	fmt.Println(strings.Join(picked, " "))

	_, err = balance.New("fastest")
	fmt.Println(err)
	// Output:
	// a a b a c a a
	// balance: unknown algorithm "fastest" (valid: ip_hash, least_conn, random, round_robin, weighted)
}

// Rendezvous keeps a client on the same backend as long as that backend is a candidate.
func ExampleRendezvous() {
	backends := make([]*balance.Backend, 3)
	for i, id := range []string{"web-1", "web-2", "web-3"} {
		backends[i] = new(balance.Backend)
		backends[i].Init(id, 1)
	}
	client := balance.HashString("203.0.113.9")
	first := backends[balance.Rendezvous(backends, client)]
	again := backends[balance.Rendezvous(backends, client)]
	fmt.Println(first == again)
	// Output: true
}
