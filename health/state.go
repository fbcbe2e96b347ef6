package health

// state is the up/down decision for one target, kept apart from scheduling so the hysteresis
// rules can be tested without sockets or clocks.
type state struct {
	healthy   bool
	failures  int // consecutive failed probes, 0 after any success
	successes int // consecutive successful probes, 0 after any failure
}

// observe folds one probe result into s and reports whether healthy flipped. fall and rise
// are read at every call so a live SetConfig applies from the next probe on.
func (s *state) observe(ok bool, fall, rise int) (changed bool) {
	if ok {
		s.successes++
		s.failures = 0
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
	return false
}
