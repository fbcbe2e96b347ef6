package gossip

import (
	"fmt"
	"slices"
	"testing"
	"time"
)

// TestSessionConvergence measures, for clusters of 3 and 20 real memberlist nodes on
// loopback, how long a pin written on one node takes to be readable on every other node.
func TestSessionConvergence(t *testing.T) {
	for _, size := range []int{3, 20} {
		t.Run(fmt.Sprintf("%d nodes", size), func(t *testing.T) {
			nodes := []storeNode{startStoreNode(t, "n0")}
			for i := 1; i < size; i++ {
				nodes = append(nodes, startStoreNode(t, fmt.Sprintf("n%d", i), nodes[0].LocalAddr()))
			}
			names := make([]string, size)
			for i := range names {
				names[i] = fmt.Sprintf("n%d", i)
			}
			slices.Sort(names) // Members lists names in string order: n0, n1, n10, ...
			for _, n := range nodes {
				eventually(t, 30*time.Second, "full membership", seesMembers(n.Node, names...))
			}
			var took []time.Duration
			for w := 0; w < 10; w++ {
				writer := nodes[w%size]
				key := fmt.Sprintf("sess-%d", w)
				start := time.Now()
				writer.put(t, KindSession, key, "backend-x")
				eventually(t, 30*time.Second, key+" everywhere", func() bool {
					for _, n := range nodes {
						if n.value(KindSession, key) != "backend-x" {
							return false
						}
					}
					return true
				})
				took = append(took, time.Since(start))
			}
			slices.Sort(took)
			t.Logf("%d nodes: pin visible on every node after median %v, max %v (10 writes)",
				size, took[len(took)/2].Round(time.Millisecond), took[len(took)-1].Round(time.Millisecond))
		})
	}
}
