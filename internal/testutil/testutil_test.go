package testutil

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// fatalRecorder is a testing.TB whose Fatalf records the message and ends the goroutine, as
// the real one does, so a helper's failure path can be checked without failing this test.
type fatalRecorder struct {
	testing.TB // nil: calling anything else panics
	msg        string
}

func (r *fatalRecorder) Helper() {}

func (r *fatalRecorder) Fatalf(format string, args ...any) {
	r.msg = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

// run calls f with r on a goroutine of its own (Fatalf ends that goroutine) and waits for it.
func (r *fatalRecorder) run(f func(testing.TB)) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		f(r)
	}()
	<-done
}

func TestEventually(t *testing.T) {
	t.Run("returns once the condition holds, with the time it took", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			start := time.Now()
			r := &fatalRecorder{}
			var took time.Duration
			r.run(func(tb testing.TB) {
				took = Eventually(tb, "three seconds to pass", func() bool { return time.Since(start) >= 3*time.Second })
			})
			if r.msg != "" {
				t.Fatalf("failed: %s", r.msg)
			}
			if took < 3*time.Second || took > 3*time.Second+20*time.Millisecond {
				t.Errorf("took %v, want 3s give or take one poll", took)
			}
		})
	})
	t.Run("fails after the guard, naming what and the last note", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			start := time.Now()
			r := &fatalRecorder{}
			r.run(func(tb testing.TB) {
				EventuallyWithNote(tb, "the pigs to fly", func() (bool, string) { return false, "pigs on the ground" })
			})
			if waited := time.Since(start); waited < Timeout() {
				t.Errorf("gave up after %v, before the guard %v", waited, Timeout())
			}
			for _, want := range []string{"waiting for the pigs to fly", "last seen: pigs on the ground"} {
				if !strings.Contains(r.msg, want) {
					t.Errorf("failure %q does not contain %q", r.msg, want)
				}
			}
		})
	})
}

func TestCounting(t *testing.T) {
	t.Run("waits past the guard while the count grows", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			start := time.Now()
			// One event every half guard: ten of them take five guards in all.
			count := func() (int, string) { n := int(time.Since(start) / (Timeout() / 2)); return n, fmt.Sprint(n) }
			r := &fatalRecorder{}
			var took time.Duration
			r.run(func(tb testing.TB) { took = Counting(tb, "ten events", 10, count) })
			if r.msg != "" {
				t.Fatalf("failed: %s", r.msg)
			}
			if want := 5 * Timeout(); took < want || took > want+20*time.Millisecond {
				t.Errorf("took %v, want %v give or take one poll", took, want)
			}
		})
	})
	t.Run("fails a guard after the count stopped, naming what and the last note", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			start := time.Now()
			// Three events a second apart, then none.
			count := func() (int, string) {
				n := min(int(time.Since(start)/time.Second), 3)
				return n, fmt.Sprintf("%d probes", n)
			}
			r := &fatalRecorder{}
			r.run(func(tb testing.TB) { Counting(tb, "ten probes", 10, count) })
			if waited, want := time.Since(start), 3*time.Second+Timeout(); waited < want || waited > want+time.Second {
				t.Errorf("gave up after %v, want a guard (%v) after the last event at 3s", waited, Timeout())
			}
			for _, want := range []string{"waiting for ten probes", "stuck at 3 of 10", "last seen: 3 probes"} {
				if !strings.Contains(r.msg, want) {
					t.Errorf("failure %q does not contain %q", r.msg, want)
				}
			}
		})
	})
}

func TestReceive(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ch := make(chan int, 1)
		go func() {
			time.Sleep(time.Second)
			ch <- 7
		}()
		if got := Receive(t, ch, "the value"); got != 7 {
			t.Fatalf("Receive = %d, want 7", got)
		}

		r := &fatalRecorder{}
		r.run(func(tb testing.TB) { Receive(tb, make(chan struct{}), "a signal nobody sends") })
		if !strings.Contains(r.msg, "waiting for a signal nobody sends") {
			t.Fatalf("failure %q does not name what", r.msg)
		}
	})
}

func TestScaledTimeout(t *testing.T) {
	tests := []struct {
		scale   string
		want    time.Duration
		wantErr bool
	}{
		{"", time.Minute, false},
		{"1", time.Minute, false},
		{"2.5", 150 * time.Second, false},
		{"0.5", 30 * time.Second, false},
		{"0", 0, true},
		{"-1", 0, true},
		{"NaN", 0, true},
		{"fast", 0, true},
		{"1e9", 0, true},
	}
	for _, tt := range tests {
		t.Run(strconv.Quote(tt.scale), func(t *testing.T) {
			got, err := scaledTimeout(tt.scale)
			if (err != nil) != tt.wantErr || got != tt.want {
				t.Fatalf("scaledTimeout(%q) = %v, %v; want %v, error %t", tt.scale, got, err, tt.want, tt.wantErr)
			}
			if err != nil && !strings.Contains(err.Error(), TimeoutScaleEnv) {
				t.Errorf("error %q does not name %s", err, TimeoutScaleEnv)
			}
		})
	}
}

func TestLogBuffer(t *testing.T) {
	var b LogBuffer
	logger := b.Logger()
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			for j := range 50 {
				logger.Info("tick", "worker", i, "n", j)
			}
			logger.Debug("done", "worker", i)
		})
	}
	wg.Wait()
	b.WriteLine([]byte("panic: not JSON"))
	logger.Warn("after the noise")

	if got := len(b.Find("tick")); got != 400 {
		t.Errorf("Find(tick) = %d records, want 400", got)
	}
	done := b.Find("done")
	if len(done) != 8 || done[0]["level"] != "DEBUG" {
		t.Errorf("Find(done) = %v, want 8 debug records", done)
	}
	if got := len(b.Records()); got != 409 {
		t.Errorf("Records = %d, want 409 (the line that is not JSON skipped)", got)
	}
	if got := b.Count("panic: not JSON"); got != 1 {
		t.Errorf("Count of the raw line = %d, want 1", got)
	}
	if last := b.Find("after the noise"); len(last) != 1 || last[0]["level"] != "WARN" {
		t.Errorf("record after a line that is not JSON = %v", last)
	}
}

func TestFreeAddrAndPorts(t *testing.T) {
	addr := FreeAddr(t)
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("FreeAddr %s not bindable for TCP: %v", addr, err)
	}
	ln.Close()
	pc, err := net.ListenPacket("udp", addr)
	if err != nil {
		t.Fatalf("FreeAddr %s not bindable for UDP: %v", addr, err)
	}
	pc.Close()

	ports := FreePorts(t, 5)
	seen := make(map[int]bool)
	for _, p := range ports {
		if p <= 0 || seen[p] {
			t.Fatalf("FreePorts = %v: want 5 distinct ports", ports)
		}
		seen[p] = true
	}
}

func TestFreeAddrOnAndSharedPort(t *testing.T) {
	ips := []string{"127.0.0.1", "127.0.0.2"}
	for _, ip := range ips {
		addr := FreeAddrOn(t, ip)
		if host, _, _ := net.SplitHostPort(addr); host != ip {
			t.Fatalf("FreeAddrOn(%s) = %s", ip, addr)
		}
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			t.Fatalf("FreeAddrOn %s not bindable: %v", addr, err)
		}
		ln.Close()
	}

	lns := ListenSamePort(t, ips...)
	if len(lns) != len(ips) {
		t.Fatalf("ListenSamePort gave %d listeners for %d addresses", len(lns), len(ips))
	}
	_, port, _ := net.SplitHostPort(lns[0].Addr().String())
	for i, ln := range lns {
		if want := net.JoinHostPort(ips[i], port); ln.Addr().String() != want {
			t.Errorf("listener %d on %s, want %s", i, ln.Addr(), want)
		}
		ln.Close()
	}

	port = SharedPort(t, ips...)
	for _, ip := range ips {
		ln, err := net.Listen("tcp", net.JoinHostPort(ip, port))
		if err != nil {
			t.Fatalf("SharedPort %s not bindable on %s: %v", port, ip, err)
		}
		defer ln.Close()
	}
}

func TestClock(t *testing.T) {
	t0 := time.Unix(1_800_000_000, 0)
	c := NewClock(t0)
	now := c.Now
	if !now().Equal(t0) {
		t.Fatalf("Now = %v, want %v", now(), t0)
	}
	c.Add(90 * time.Second)
	if got := now().Sub(t0); got != 90*time.Second {
		t.Fatalf("after Add: %v from start, want 90s", got)
	}
	c.Set(t0.Add(-time.Hour))
	if got := now().Sub(t0); got != -time.Hour {
		t.Fatalf("after Set: %v from start, want -1h", got)
	}
}

func TestTransport(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		release := make(chan struct{})
		h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			body, _ := io.ReadAll(r.Body)
			if r.URL.Query().Get("wait") != "" {
				select {
				case <-release:
				case <-r.Context().Done():
					return
				}
			}
			w.Header().Set("X-Seen", r.Method+" "+r.RequestURI+" "+r.Host)
			fmt.Fprintf(w, "got %q", body)
		})
		c := &http.Client{Transport: Transport(h)}

		resp, err := c.Post("http://svc.test/echo?x=1", "text/plain", strings.NewReader("hello"))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(b) != `got "hello"` || resp.Header.Get("X-Seen") != "POST /echo?x=1 svc.test" {
			t.Fatalf("answer %q, X-Seen %q", b, resp.Header.Get("X-Seen"))
		}

		// A handler that blocks holds the request on the bubble's clock: the client's own
		// timeout ends it after exactly that long.
		start := time.Now()
		_, err = (&http.Client{Transport: Transport(h), Timeout: time.Minute}).Get("http://svc.test/?wait=1")
		if err == nil || time.Since(start) != time.Minute {
			t.Fatalf("blocked request ended after %v with %v, want the 1m client timeout", time.Since(start), err)
		}
		close(release)
		if _, err := c.Get("http://svc.test/?wait=1"); err != nil {
			t.Fatalf("released request: %v", err)
		}
	})
}
