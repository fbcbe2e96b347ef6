package gossip

import (
	"fmt"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// Batches never outgrow a packet, carry every entry once, in order, and decode as a full state.
func TestFanoutBatchesFitAPacketAndDecode(t *testing.T) {
	const max = 600
	f := newFanout(max, newNodeMetrics(func() map[string]int { return nil }))
	var want []string
	for i := range 50 {
		e := Entry{Kind: KindSession, Key: fmt.Sprintf("session-%02d", i), Value: []byte("backend-x"), Node: "a", Stamp: Timestamp{WallNanos: int64(i + 1)}}
		msg, err := AppendEntry(nil, e)
		if err != nil {
			t.Fatal(err)
		}
		f.add(msg)
		want = append(want, e.Key)
	}
	f.mu.Lock()
	f.handOffLocked() // the partial last batch, as the ticker would
	f.mu.Unlock()
	var got []string
	for len(f.ready) > 0 {
		b := <-f.ready
		if len(b) > max {
			t.Errorf("batch of %d bytes, limit %d", len(b), max)
		}
		if b[0] != batchMarker {
			t.Fatalf("batch starts with %#x", b[0])
		}
		entries, err := DecodeState(b[1:])
		if err != nil {
			t.Fatalf("batch does not decode: %v", err)
		}
		for _, e := range entries {
			got = append(got, e.Key)
		}
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("batches carried %v, want %v", got, want)
	}
}

// When the sender falls behind by maxReadyBatches, further batches are dropped and counted, and
// add still returns at once.
func TestFanoutDropsWhenTheSenderFallsBehind(t *testing.T) {
	m := newNodeMetrics(func() map[string]int { return nil })
	f := newFanout(minEntryBytes+1+stateHeaderBytes, m) // one entry per batch
	msg, err := AppendEntry(nil, Entry{Kind: KindSession, Key: "k", Node: "a", Stamp: Timestamp{WallNanos: 1}})
	if err != nil {
		t.Fatal(err)
	}
	for range maxReadyBatches + 6 {
		f.add(msg)
	}
	if got := len(f.ready); got != maxReadyBatches {
		t.Errorf("%d batches waiting, want %d", got, maxReadyBatches)
	}
	reg := prometheus.NewRegistry()
	if err := m.register(reg); err != nil {
		t.Fatal(err)
	}
	if got := metricValue(t, reg, "veloflux_gossip_messages_total", map[string]string{"direction": "sent", "result": "dropped"}); got != 5 {
		t.Errorf("dropped = %v, want 5 (the sixth is still the batch in progress)", got)
	}
}
