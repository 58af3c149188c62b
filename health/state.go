package health

import "fmt"

// state is the flap damping of one target: the server's current state and
// the run of identical results that may change it.
type state struct {
	up        bool
	successes int // consecutive, while the last result was a success
	failures  int // consecutive, while the last result was a failure
}

// observe records one check result and reports whether the state changed:
// down after fall consecutive failures while up, up after rise consecutive
// successes while down. An opposite result breaks a run.
func (s *state) observe(ok bool, rise, fall int) (changed bool) {
	if ok {
		s.failures = 0
		s.successes++
		if !s.up && s.successes >= rise {
			s.up = true
			return true
		}
		return false
	}
	s.successes = 0
	s.failures++
	if s.up && s.failures >= fall {
		s.up = false
		return true
	}
	return false
}

// reason explains a change just made by observe; last is the failure that
// completed a fall.
func (s *state) reason(last error) string {
	if s.up {
		return fmt.Sprintf("%d consecutive checks passed", s.successes)
	}
	return fmt.Sprintf("%d consecutive checks failed, last: %v", s.failures, last)
}
