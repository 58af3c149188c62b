package health

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"syscall"
	"time"

	"github.com/udr-lb/udr/internal/nsrun"
)

// Config configures a Checker. The zero value checks plain targets only.
type Config struct {
	// DR enables dr mode checks.
	DR DRConfig
	// Unknown, when set, is told of every check whose result is unknown
	// (LocalError: the checker could not run it); run counts the unknown
	// results in a row, 1 for the first after a known one. It is called
	// from probe goroutines and must not block for long.
	Unknown func(t Target, err error, run uint64)
	// Weight, when set, is told when a misc_dynamic check changes the
	// weight its server should have: weight 0..253 from the script's
	// exit status, or -1 for the configured weight (status 0). It is
	// called from probe goroutines and must not block for long.
	Weight func(t Target, weight int)
}

// DRConfig is what dr mode needs: the interface the real servers are on,
// the director's addresses the SYN probes come from, and the real
// servers' MACs.
type DRConfig struct {
	// Iface is the interface to send SYN probes on; "" disables dr mode.
	Iface string
	// Source4 and Source6 are the director's own addresses that probes
	// come from and SYN-ACKs return to; an invalid address means the
	// interface's first global address of that family.
	Source4, Source6 netip.Addr
	// NeighborMAC returns a real server's MAC (the director's neighbour
	// table); a dr check fails while it is unknown.
	NeighborMAC func(rip netip.Addr) ([6]byte, bool)
}

// Status is the state of one target's check.
type Status struct {
	Target      Target
	Up          bool
	Transitions uint64    // state changes since the target was first Set
	Checks      uint64    // checks completed, with a known result
	Unknown     uint64    // checks the checker could not run (LocalError): no result
	LastError   string    // the last failure or unknown result, or "" if the last check passed
	Weight      int       // misc_dynamic: the weight the last exit status set; -1: the configured one
	Last        time.Time // when the last check ended; zero before the first
}

// Checker runs the checks of a set of targets.
type Checker struct {
	report  func(Target, bool, string)
	unknown func(Target, error, uint64)
	weight  func(Target, int)
	probe   func(context.Context, Target) error // real probes; fakes in tests
	now     func() time.Time
	ns      nsrun.Namespace
	dr      *drProber // nil without dr mode

	mu      sync.Mutex
	targets map[key]*tracked
	wake    chan struct{} // Set tells Run that schedules changed
}

// tracked is one target and its state.
type tracked struct {
	t       Target
	st      state
	next    time.Time // when its next check starts; zero: at once
	running bool
	status  Status
	unknown uint64 // unknown results in a row
}

// New returns a Checker that reports every transition to report (which
// may be nil). It captures the calling thread's network namespace and,
// when cfg.DR.Iface is set, opens the packet socket of dr mode there: call
// it in the director's namespace. Call Close when done.
func New(cfg Config, report func(t Target, up bool, reason string)) (*Checker, error) {
	if report == nil {
		report = func(Target, bool, string) {}
	}
	c := &Checker{
		report:  report,
		unknown: cfg.Unknown,
		weight:  cfg.Weight,
		now:     time.Now,
		targets: make(map[key]*tracked),
		wake:    make(chan struct{}, 1),
	}
	c.probe = c.probeTarget
	var err error
	if c.ns, err = nsrun.Current(); err != nil {
		return nil, err
	}
	if cfg.DR.Iface != "" {
		if c.dr, err = newDRProber(cfg.DR); err != nil {
			c.ns.Close()
			return nil, err
		}
	}
	return c, nil
}

// Close releases the packet socket and the namespace handle. Call it after
// Run has returned.
func (c *Checker) Close() error {
	var err error
	if c.dr != nil {
		err = c.dr.close()
	}
	c.ns.Close()
	return err
}

// Set replaces the targets. A target that stays (same service and server)
// keeps its state and its transition count, even if its check changed; its
// runs of results restart when its check changed. New targets start in
// their initial state and are checked at once. It fails, changing nothing,
// if a target is invalid or needs dr mode that New did not set up.
func (c *Checker) Set(targets []Target) error {
	next := make(map[key]Target, len(targets))
	var errs []error
	for _, t := range targets {
		t.Check = t.Check.withDefaults()
		if err := t.validate(); err != nil {
			errs = append(errs, err)
			continue
		}
		if t.Check.Mode == ModeDR && c.dr == nil {
			errs = append(errs, fmt.Errorf("check of %s: mode %q needs the checker's DR interface", t, ModeDR))
			continue
		}
		if _, dup := next[t.key()]; dup {
			errs = append(errs, fmt.Errorf("check of %s: given twice", t))
			continue
		}
		next[t.key()] = t
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	c.mu.Lock()
	for k := range c.targets {
		if _, ok := next[k]; !ok {
			delete(c.targets, k)
		}
	}
	for k, t := range next {
		tr := c.targets[k]
		if tr == nil {
			tr = &tracked{st: state{up: !t.Check.InitialDown}, status: Status{Weight: -1}}
			c.targets[k] = tr
		} else if tr.t != t {
			// A probe of the old check may still run: its result is
			// dropped (finish compares targets).
			tr.st.successes, tr.st.failures = 0, 0
			tr.running = false
		}
		tr.t = t
		tr.status.Target = t
	}
	c.mu.Unlock()
	select {
	case c.wake <- struct{}{}:
	default:
	}
	return nil
}

// Status returns the state of every target, in no particular order.
func (c *Checker) Status() []Status {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]Status, 0, len(c.targets))
	for _, tr := range c.targets {
		s := tr.status
		s.Up = tr.st.up
		out = append(out, s)
	}
	return out
}

// Run checks the targets until ctx is done, then waits for the checks in
// progress and returns ctx's error.
func (c *Checker) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	defer wg.Wait()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		now := c.now()
		for _, t := range c.due(now) {
			wg.Add(1)
			go func() {
				defer wg.Done()
				pctx, cancel := context.WithTimeout(ctx, t.Check.Timeout)
				err := c.probe(pctx, t)
				cancel()
				if ctx.Err() == nil {
					c.finish(t, err)
				}
			}()
		}
		timer.Reset(c.untilNext(now))
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-c.wake:
		case <-timer.C:
		}
	}
}

// due marks the targets whose check is due at now as running, schedules
// their next check one Interval later, and returns them.
func (c *Checker) due(now time.Time) []Target {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []Target
	for _, tr := range c.targets {
		if tr.running || now.Before(tr.next) {
			continue
		}
		tr.running = true
		tr.next = now.Add(tr.t.Check.Interval)
		out = append(out, tr.t)
	}
	return out
}

// untilNext returns how long Run may wait for the next due check. Running
// checks are left out: finish wakes Run when one ends.
func (c *Checker) untilNext(now time.Time) time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	wait := time.Hour
	for _, tr := range c.targets {
		if !tr.running {
			wait = min(wait, max(tr.next.Sub(now), 0))
		}
	}
	return wait
}

// finish records the result of a check of t and reports a transition.
func (c *Checker) finish(t Target, err error) {
	c.mu.Lock()
	tr := c.targets[t.key()]
	if tr == nil || tr.t != t {
		c.mu.Unlock() // removed or reconfigured meanwhile
		return
	}
	tr.running = false
	tr.status.Last = c.now()
	if err != nil && LocalError(err) {
		// The checker's own failure says nothing of the server: its
		// state and its run of results stay as they are.
		tr.unknown++
		tr.status.Unknown++
		tr.status.LastError = "unknown: " + err.Error()
		run := tr.unknown
		c.mu.Unlock()
		if c.unknown != nil {
			c.unknown(t, err, run)
		}
		c.wakeRun()
		return
	}
	tr.unknown = 0
	tr.status.Checks++
	weight, weighed := -1, err == nil && t.Check.MiscDynamic
	var w weightResult
	if errors.As(err, &w) {
		weight, weighed, err = int(w), true, nil
	}
	weightChanged := weighed && weight != tr.status.Weight
	if weighed {
		tr.status.Weight = weight
	}
	tr.status.LastError = ""
	if err != nil {
		tr.status.LastError = err.Error()
	}
	changed := tr.st.observe(err == nil, t.Check.Rise, t.Check.Fall)
	if err != nil && tr.st.up && t.Check.RetryInterval > 0 {
		// A failure that has not taken the server down yet: retry
		// sooner (or later) than the interval, counted from now.
		tr.next = c.now().Add(t.Check.RetryInterval)
	}
	var up bool
	var reason string
	if changed {
		tr.status.Transitions++
		up, reason = tr.st.up, tr.st.reason(err)
	}
	c.mu.Unlock()
	if weightChanged && c.weight != nil {
		c.weight(t, weight)
	}
	if changed {
		c.report(t, up, reason)
	}
	c.wakeRun()
}

// wakeRun tells Run that a check ended: one that outlasted its interval is
// due.
func (c *Checker) wakeRun() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// LocalError reports whether err is the checker's own failure to run a
// check rather than the real server's answer or silence: the director is
// out of descriptors (EMFILE, ENFILE), socket buffers (ENOBUFS), kernel
// memory (ENOMEM) or local ports (EADDRNOTAVAIL from connect). Such a
// check has no result: it neither fails nor passes the server.
func LocalError(err error) bool {
	for _, e := range []syscall.Errno{syscall.EMFILE, syscall.ENFILE, syscall.ENOBUFS, syscall.ENOMEM, syscall.EADDRNOTAVAIL} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}
