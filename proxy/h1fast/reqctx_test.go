package h1fast

import (
	"context"
	"testing"

	"github.com/veloflux/veloflux/internal/testutil"
)

// The request context behaves as a cancellable context to everything derived from it: its
// channel closes and Err says canceled at its end, functions registered with AfterFunc run
// then unless stopped, and contexts derived with package context end with it.
func TestRequestContextEnds(t *testing.T) {
	type key struct{}
	base := context.WithValue(context.Background(), key{}, "conn")
	t.Run("values and done", func(t *testing.T) {
		rc := newReqContext(base)
		if rc.Value(key{}) != "conn" {
			t.Fatal("the connection's value is lost")
		}
		done := rc.Done()
		if rc.Err() != nil {
			t.Fatal("ended before its end")
		}
		rc.end()
		testutil.Receive(t, done, "Done closes")
		if rc.Err() != context.Canceled {
			t.Fatalf("Err %v, want canceled", rc.Err())
		}
		testutil.Receive(t, rc.Done(), "Done asked after the end is closed")
	})
	t.Run("after funcs", func(t *testing.T) {
		rc := newReqContext(base)
		ran := make(chan int, 3)
		stop1 := rc.AfterFunc(func() { ran <- 1 })
		rc.AfterFunc(func() { ran <- 2 })
		stop3 := rc.AfterFunc(func() { ran <- 3 })
		if !stop1() {
			t.Fatal("stop before the end did not stop")
		}
		if stop1() {
			t.Fatal("a second stop reported stopping")
		}
		rc.end()
		rc.end()
		got := map[int]bool{}
		for range 2 {
			got[testutil.Receive(t, ran, "a function runs at the end")] = true
		}
		if !got[2] || !got[3] {
			t.Fatalf("ran %v, want 2 and 3", got)
		}
		if stop3() {
			t.Fatal("stop after the function ran reported stopping")
		}
		rc.AfterFunc(func() { ran <- 4 })
		if n := testutil.Receive(t, ran, "a function registered after the end runs"); n != 4 {
			t.Fatalf("ran %d, want 4", n)
		}
	})
	t.Run("derived contexts", func(t *testing.T) {
		rc := newReqContext(base)
		child, cancel := context.WithCancel(rc)
		defer cancel()
		fired := make(chan struct{})
		context.AfterFunc(rc, func() { close(fired) })
		rc.end()
		testutil.Receive(t, child.Done(), "a child context ends")
		testutil.Receive(t, fired, "context.AfterFunc runs")
		if child.Value(key{}) != "conn" {
			t.Fatal("the child lost the connection's value")
		}
	})
}
