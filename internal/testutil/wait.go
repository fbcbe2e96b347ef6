package testutil

import (
	"fmt"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"
)

// TimeoutScaleEnv names the environment variable that multiplies Timeout, for machines slower
// than any guard foresaw (e.g. VELOFLUX_TEST_TIMEOUT_SCALE=3 under emulation).
const TimeoutScaleEnv = "VELOFLUX_TEST_TIMEOUT_SCALE"

// baseTimeout is the guard before scaling. It only keeps a broken test from hanging until go
// test's own -timeout: nothing a test waits for should take more than a fraction of it, even
// on a loaded 2-core machine, so it can be long without slowing any passing run.
const baseTimeout = 60 * time.Second

var timeout = sync.OnceValue(func() time.Duration {
	d, err := scaledTimeout(os.Getenv(TimeoutScaleEnv))
	if err != nil {
		// A guard silently at the default would hide the mistake until a slow run fails.
		panic(err)
	}
	return d
})

// scaledTimeout is baseTimeout times scale, the value of TimeoutScaleEnv ("" is 1).
func scaledTimeout(scale string) (time.Duration, error) {
	if scale == "" {
		return baseTimeout, nil
	}
	f, err := strconv.ParseFloat(scale, 64)
	if err != nil || !(f > 0) || f > 1000 {
		return 0, fmt.Errorf("testutil: %s=%q: want a factor above 0, up to 1000", TimeoutScaleEnv, scale)
	}
	return time.Duration(f * float64(baseTimeout)), nil
}

// Timeout is how long a test waits for something that should happen before it gives up:
// 60s times VELOFLUX_TEST_TIMEOUT_SCALE (default 1). Use it as the guard of every wait for an
// event, e.g. in a select next to the event's channel.
func Timeout() time.Duration { return timeout() }

// Eventually polls cond until it returns true, and returns how long that took. If cond is still
// false after Timeout, it fails the test with what, the thing that did not happen. Polls start
// at a millisecond apart and slow to 20ms, so a fast condition is seen at once and a slow one
// costs little CPU. Call it from the test's goroutine, as t.Fatal requires.
func Eventually(t testing.TB, what string, cond func() bool) time.Duration {
	t.Helper()
	return EventuallyWithNote(t, what, func() (bool, string) { return cond(), "" })
}

// EventuallyWithNote is Eventually for a cond that also explains itself: on failure the note it
// returned last is part of the message (the state seen instead of the one awaited).
func EventuallyWithNote(t testing.TB, what string, cond func() (ok bool, note string)) time.Duration {
	t.Helper()
	start := time.Now()
	limit := Timeout()
	pause := time.Millisecond
	for {
		ok, note := cond()
		if ok {
			return time.Since(start)
		}
		if waited := time.Since(start); waited > limit {
			if note != "" {
				t.Fatalf("timed out after %v waiting for %s; last seen: %s", waited.Round(time.Millisecond), what, note)
			}
			t.Fatalf("timed out after %v waiting for %s", waited.Round(time.Millisecond), what)
		}
		time.Sleep(pause)
		pause = min(2*pause, 20*time.Millisecond)
	}
}

// Counting waits until count reaches want, failing the test with what when count has not grown
// for Timeout: for a wait on many events (probes, requests) each of which should come within
// the guard, while all of them together may take longer than it on a busy machine. count must
// not decrease; the wait is bounded by want × Timeout. It returns how long the wait took.
func Counting(t testing.TB, what string, want int, count func() (n int, note string)) time.Duration {
	t.Helper()
	start := time.Now()
	best, since := -1, start
	pause := time.Millisecond
	for {
		n, note := count()
		if n >= want {
			return time.Since(start)
		}
		if n > best {
			best, since, pause = n, time.Now(), time.Millisecond
		} else if stalled := time.Since(since); stalled > Timeout() {
			t.Fatalf("waiting for %s: stuck at %d of %d for %v; last seen: %s", what, n, want, stalled.Round(time.Millisecond), note)
		}
		time.Sleep(pause)
		pause = min(2*pause, 20*time.Millisecond)
	}
}

// Receive waits for a value on ch and returns it, failing the test with what after Timeout.
// A closed channel counts as received (the zero value is returned).
func Receive[T any](t testing.TB, ch <-chan T, what string) T {
	t.Helper()
	timer := time.NewTimer(Timeout())
	defer timer.Stop()
	select {
	case v := <-ch:
		return v
	case <-timer.C:
		t.Fatalf("timed out after %v waiting for %s", Timeout(), what)
		var zero T
		return zero
	}
}
