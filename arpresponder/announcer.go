package arpresponder

import "time"

// Announcement timing.
const (
	// DefaultAnnounceInterval is the period of the steady announcements that
	// keep switch forwarding tables and neighbour caches pointing at the
	// VIP MAC (keepalived's vrrp_garp_master_refresh does the same job).
	DefaultAnnounceInterval = 10 * time.Second

	// AnnounceBurst announcements, AnnounceBurstGap apart, are sent on
	// start and after every Reset, so that one lost frame does not leave
	// neighbours stale. RFC 4861 7.2.6 allows up to MAX_NEIGHBOR_ADVERTISEMENT
	// (3) unsolicited advertisements at least RetransTimer (1 s) apart; RFC
	// 5227 2.3 asks for at least ANNOUNCE_NUM (2) ARP Announcements; arping
	// -U -c 3 sends 3 one second apart.
	AnnounceBurst    = 3
	AnnounceBurstGap = time.Second

	// DefendInterval is RFC 5227 2.4's DEFEND_INTERVAL: a host defends an
	// address against a conflicting packet at most once in this time.
	DefendInterval = 10 * time.Second
)

// An Announcer decides when gratuitous ARPs and unsolicited Neighbor
// Advertisements are due: a burst of AnnounceBurst, AnnounceBurstGap apart,
// when created and after every Reset (a change of VIPs or of the VIP MAC),
// then one every interval. Each time Due reports true, the caller announces
// every VIP (GratuitousARP, UnsolicitedNA). Time is always an argument, so
// tests drive it with a fake clock. An Announcer is not safe for concurrent
// use; one control goroutine owns it.
type Announcer struct {
	interval   time.Duration
	burstLeft  int       // announcements left in the current burst
	next       time.Time // when the next announcement is due; zero: now
	lastDefend time.Time // when Defend last allowed a defence; zero: never
}

// NewAnnouncer returns an Announcer that starts with a burst, due at once,
// and then announces every interval; an interval <= 0 means
// DefaultAnnounceInterval.
func NewAnnouncer(interval time.Duration) *Announcer {
	if interval <= 0 {
		interval = DefaultAnnounceInterval
	}
	return &Announcer{interval: interval, burstLeft: AnnounceBurst}
}

// Reset starts a new burst, its first announcement due at now. Call it
// whenever the VIP set or the VIP MAC changes.
func (a *Announcer) Reset(now time.Time) {
	a.burstLeft = AnnounceBurst
	a.next = now
}

// Due reports whether an announcement is due at now and, if so, counts it
// as sent and schedules the next one from now: the next of the burst
// AnnounceBurstGap later, or the next periodic one interval later.
// Scheduling from now rather than from the missed deadline means a caller
// that was late sends one announcement, not a catch-up flood.
func (a *Announcer) Due(now time.Time) bool {
	if !a.next.IsZero() && now.Before(a.next) {
		return false
	}
	if a.burstLeft > 1 {
		a.burstLeft--
		a.next = now.Add(AnnounceBurstGap)
	} else {
		a.burstLeft = 0
		a.next = now.Add(a.interval)
	}
	return true
}

// Next returns when the next announcement is due, for arming a timer; the
// zero time means now.
func (a *Announcer) Next() time.Time { return a.next }

// Defend reports whether a conflict seen at now (ReasonConflict) may be
// answered at once with an announcement of the VIP, and if so records it:
// at most one defence per DefendInterval, as RFC 5227 2.4 (c) prescribes for
// a host that defends its address indefinitely (udr never gives up a
// configured VIP), so that two hosts claiming one address do not flood the
// link.
func (a *Announcer) Defend(now time.Time) bool {
	if !a.lastDefend.IsZero() && now.Sub(a.lastDefend) < DefendInterval {
		return false
	}
	a.lastDefend = now
	return true
}
