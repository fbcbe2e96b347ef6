package pace

import (
	"os"
	"runtime"
	"sync/atomic"
	"testing"
	"time"
)

// With one processor, a goroutine that waits for input runs at the first Step after the input
// arrives, while the work that steps aside is still going on; runtime.Gosched alone would leave
// it waiting for the scheduler's 10 ms network poll.
func TestStepServesWaitingGoroutines(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	p, err := New(time.Nanosecond) // every Step steps aside
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	var served atomic.Bool
	done := make(chan struct{})
	go func() {
		defer close(done)
		var b [1]byte
		if _, err := r.Read(b[:]); err == nil {
			served.Store(true)
		}
	}()
	runtime.Gosched() // the reader is parked in the poller
	if _, err := w.Write([]byte{1}); err != nil {
		t.Fatal(err)
	}
	steps := 0
	for ; !served.Load() && steps < 100_000; steps++ {
		spin(20 * time.Microsecond)
		p.Step()
	}
	<-done
	if steps > 2 {
		t.Fatalf("the reader ran after %d steps of 20 µs, want at most 2", steps)
	}
}

// spin keeps the processor busy for about d without calling into the scheduler.
func spin(d time.Duration) {
	for start := time.Now(); time.Since(start) < d; {
	}
}

func TestStepWaitsForItsSlice(t *testing.T) {
	p, err := New(time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	p.Step()
	if n := p.Steps(); n != 0 {
		t.Fatalf("Step stepped aside %d times before its slice was over", n)
	}
}

func TestNilPacer(t *testing.T) {
	var p *Pacer
	p.Step()
	if p.Steps() != 0 {
		t.Fatal("a nil Pacer stepped aside")
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
}

// A closed Pacer no longer steps aside, and closing it again does not close descriptors that
// may belong to other files by then.
func TestCloseTwice(t *testing.T) {
	p, err := New(time.Nanosecond)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	r, w, err := os.Pipe() // may take the numbers the Pacer's pipe had
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	p.Step()
	if p.Steps() != 0 {
		t.Fatal("a closed Pacer stepped aside")
	}
	if _, err := w.Write([]byte{1}); err != nil {
		t.Fatalf("the second Close closed another file's descriptor: %v", err)
	}
}

func BenchmarkStep(b *testing.B) {
	p, err := New(time.Nanosecond)
	if err != nil {
		b.Fatal(err)
	}
	defer p.Close()
	b.ReportAllocs()
	for b.Loop() {
		p.Step()
	}
}
