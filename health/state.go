package health

import "time"

// state is the up/down decision for one target, kept apart from scheduling so the hysteresis
// rules can be tested without sockets or clocks.
type state struct {
	healthy   bool
	failures  int // consecutive failed probes, 0 after any success
	successes int // consecutive successful probes, 0 after any failure
	// downFailures counts the failed probes of a down target after the one that took it
	// down; 0 after any success. It drives the backoff of nextDelay.
	downFailures int
}

// observe folds one probe result into s and reports whether healthy flipped. fall and rise
// are read at every call so a live SetConfig applies from the next probe on.
func (s *state) observe(ok bool, fall, rise int) (changed bool) {
	if ok {
		s.successes++
		s.failures = 0
		s.downFailures = 0
		if !s.healthy && s.successes >= rise {
			s.healthy = true
			return true
		}
		return false
	}
	s.failures++
	s.successes = 0
	if s.healthy && s.failures >= fall {
		s.healthy = false
		return true
	}
	if !s.healthy {
		s.downFailures++
	}
	return false
}

// nextDelay is the time from the end of a probe to the start of the next one, given the
// target's downFailures after that probe. Up, or down but answering: the interval plus up to
// a tenth of it, so targets that happen to line up drift apart again. Down and failing: the
// interval doubled per failed probe after the one that took it down, capped at maxInterval,
// minus up to a tenth, so the cap is never exceeded and dead targets backing off together do
// not stay in step. jitter(d) returns a random duration in [0, d).
func nextDelay(interval, maxInterval time.Duration, downFailures int, jitter func(time.Duration) time.Duration) time.Duration {
	if downFailures <= 0 {
		return interval + jitter(interval/10)
	}
	base := backoff(interval, maxInterval, downFailures)
	return base - jitter(base/10)
}

// backoff is interval × 2^n capped at limit, without overflowing for any n.
func backoff(interval, limit time.Duration, n int) time.Duration {
	d := interval
	for range n {
		if d >= limit/2 {
			return max(limit, interval)
		}
		d *= 2
	}
	return min(d, max(limit, interval))
}
