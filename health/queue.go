package health

import "container/heap"

// queue orders the targets waiting for their next probe by due time. A target is in the queue
// or being probed, never both, so one target never has two probes in flight.
type queue []*target

func (q queue) Len() int           { return len(q) }
func (q queue) Less(i, j int) bool { return q[i].next.Before(q[j].next) }
func (q queue) Swap(i, j int) {
	q[i], q[j] = q[j], q[i]
	q[i].index = i
	q[j].index = j
}

func (q *queue) Push(x any) {
	t := x.(*target)
	t.index = len(*q)
	*q = append(*q, t)
}

func (q *queue) Pop() any {
	old := *q
	n := len(old)
	t := old[n-1]
	old[n-1] = nil // let a removed target be collected
	t.index = -1
	*q = old[:n-1]
	return t
}

// remove takes t out of the queue if it is queued.
func (q *queue) remove(t *target) {
	if t.index >= 0 {
		heap.Remove(q, t.index)
	}
}
