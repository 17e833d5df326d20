package topologies

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/sdnoc/sdnoc/decisions"
)

// Thresholds say when a link is bad and how fast sdnoc may react to it.
// They apply to every link; a link may override any of them.
type Thresholds struct {
	// LossPct is the probe loss, in percent over LossWindow, above which a
	// link is bad. In (0, 100].
	LossPct float64
	// LossWindow is the window over which loss, mean RTT and jitter are
	// measured. At least Probes.Window.
	LossWindow time.Duration
	// RTT is the mean round-trip time above which a link is bad; 0 disables.
	RTT time.Duration
	// Jitter is the jitter above which a link is bad; 0 disables.
	Jitter time.Duration
	// Enter is how long a link must stay bad before it is degraded.
	Enter time.Duration
	// Exit is how long a degraded link must stay good before it is healthy.
	Exit time.Duration
	// HoldDown is the time after a state change during which the link's
	// state does not change again.
	HoldDown time.Duration
	// DownAfter is how long no reply at all (while probes are being sent)
	// makes a link down, which degrades it at once.
	DownAfter time.Duration
	// StaleAfter is how long without any sample makes a link's state
	// unknown. Unknown never withdraws.
	StaleAfter time.Duration
	// MinProbes is the number of resolved probes in LossWindow below which
	// there is not enough evidence to change a link's state.
	MinProbes int
	// MaxWithdrawals caps the link withdrawals across the whole network
	// within WithdrawalWindow.
	MaxWithdrawals int
	// WithdrawalWindow is the sliding window of MaxWithdrawals.
	WithdrawalWindow time.Duration
	// CongestionPct is the ingress utilisation, in percent of capacity,
	// above which a link is congested; CongestionExitPct the level it must
	// stay under to be clear again; RestoreHeadroomPct the margin a moved
	// prefix's rate needs before it returns.
	CongestionPct, CongestionExitPct, RestoreHeadroomPct float64
}

// DefaultThresholds returns the thresholds used for keys a topology leaves
// out: the decision engine's own defaults (see decisions.DefaultThresholds
// for how they were chosen; they assume three probe targets per link).
func DefaultThresholds() Thresholds {
	d, l, c := decisions.DefaultThresholds(), decisions.DefaultLimits(), decisions.DefaultCongestion()
	return Thresholds{
		LossPct:            d.LossPct,
		LossWindow:         d.LossWindow,
		RTT:                d.RTT,
		Jitter:             d.Jitter,
		Enter:              d.Enter,
		Exit:               d.Exit,
		HoldDown:           d.HoldDown,
		DownAfter:          d.DownAfter,
		StaleAfter:         d.StaleAfter,
		MinProbes:          d.MinProbes,
		MaxWithdrawals:     l.MaxWithdrawals,
		WithdrawalWindow:   l.WithdrawalWindow,
		CongestionPct:      c.TargetPct,
		CongestionExitPct:  c.ExitPct,
		RestoreHeadroomPct: c.RestoreHeadroom,
	}
}

// Probes say how the active probes are paced.
type Probes struct {
	// Interval is the time between two probes to one target.
	Interval time.Duration
	// Timeout is how long a probe waits for its reply before it counts as lost.
	Timeout time.Duration
	// Window is the period over which probe results are summarised into one
	// sample.
	Window time.Duration
}

// DefaultProbes returns the probe settings used for keys a topology leaves out.
func DefaultProbes() Probes {
	return Probes{
		Interval: 100 * time.Millisecond,
		Timeout:  500 * time.Millisecond,
		Window:   500 * time.Millisecond,
	}
}

// BGP holds the session timers of every speaker.
type BGP struct {
	// HoldTime is proposed in the OPEN message: 0 (no keepalives) or at
	// least 3s, whole seconds (RFC 4271 section 4.2).
	HoldTime time.Duration
	// Keepalive is the time between KEEPALIVE messages, below HoldTime
	// (RFC 4271 section 10 suggests a third of it).
	Keepalive time.Duration
	// ConnectRetry is the time between attempts to open a session.
	ConnectRetry time.Duration
	// GracefulRestart is the restart time advertised to the peers, for which
	// they keep our routes while sdnoc restarts; 0 disables graceful restart
	// (RFC 4724 section 3: at most 4095s).
	GracefulRestart time.Duration
}

// DefaultBGP returns the BGP timers used for keys a topology leaves out.
func DefaultBGP() BGP {
	return BGP{
		HoldTime:        90 * time.Second,
		Keepalive:       30 * time.Second,
		ConnectRetry:    5 * time.Second,
		GracefulRestart: 120 * time.Second,
	}
}

// field names one scalar key of a section and where its value lives, so
// that decoding, environment overrides, merging and messages share one list.
type field[T any] struct {
	key string
	at  func(*T) any // a *float64, *int or *time.Duration inside T
}

var thresholdFields = []field[Thresholds]{
	{"loss_pct", func(t *Thresholds) any { return &t.LossPct }},
	{"loss_window", func(t *Thresholds) any { return &t.LossWindow }},
	{"rtt", func(t *Thresholds) any { return &t.RTT }},
	{"jitter", func(t *Thresholds) any { return &t.Jitter }},
	{"enter", func(t *Thresholds) any { return &t.Enter }},
	{"exit", func(t *Thresholds) any { return &t.Exit }},
	{"hold_down", func(t *Thresholds) any { return &t.HoldDown }},
	{"down_after", func(t *Thresholds) any { return &t.DownAfter }},
	{"stale_after", func(t *Thresholds) any { return &t.StaleAfter }},
	{"min_probes", func(t *Thresholds) any { return &t.MinProbes }},
	{"max_withdrawals", func(t *Thresholds) any { return &t.MaxWithdrawals }},
	{"withdrawal_window", func(t *Thresholds) any { return &t.WithdrawalWindow }},
	{"congestion_pct", func(t *Thresholds) any { return &t.CongestionPct }},
	{"congestion_exit_pct", func(t *Thresholds) any { return &t.CongestionExitPct }},
	{"restore_headroom_pct", func(t *Thresholds) any { return &t.RestoreHeadroomPct }},
}

var probeFields = []field[Probes]{
	{"interval", func(p *Probes) any { return &p.Interval }},
	{"timeout", func(p *Probes) any { return &p.Timeout }},
	{"window", func(p *Probes) any { return &p.Window }},
}

var bgpFields = []field[BGP]{
	{"hold_time", func(b *BGP) any { return &b.HoldTime }},
	{"keepalive", func(b *BGP) any { return &b.Keepalive }},
	{"connect_retry", func(b *BGP) any { return &b.ConnectRetry }},
	{"graceful_restart", func(b *BGP) any { return &b.GracefulRestart }},
}

func fieldKeys[T any](fs []field[T]) []string {
	keys := make([]string, len(fs))
	for i, f := range fs {
		keys[i] = f.key
	}
	return keys
}

// fieldValue returns the value of key in v as a comparable value, formatted
// for messages.
func fieldValue[T any](fs []field[T], v T, key string) string {
	for _, f := range fs {
		if f.key == key {
			return show(f.at(&v))
		}
	}
	return ""
}

// show formats the value behind p the way a topology file writes it.
func show(p any) string {
	switch p := p.(type) {
	case *float64:
		return strconv.FormatFloat(*p, 'g', -1, 64)
	case *int:
		return strconv.Itoa(*p)
	case *time.Duration:
		return showDuration(*p)
	case *string:
		return strconv.Quote(*p)
	}
	return fmt.Sprint(p)
}

// showDuration drops the zero units Duration.String adds: 10m, not 10m0s.
func showDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// setField parses s into the value behind p and returns the problem, with
// its fix but without the "or delete the key" part, or "" if s is good.
func setField(p any, s string) string {
	switch p := p.(type) {
	case *float64:
		f, err := strconv.ParseFloat(s, 64)
		if err != nil {
			if g, err := strconv.ParseFloat(strings.TrimSpace(strings.TrimSuffix(s, "%")), 64); err == nil {
				return fmt.Sprintf("%q is not a number; write %s without the %% sign", s, strconv.FormatFloat(g, 'g', -1, 64))
			}
			return fmt.Sprintf("%q is not a number; write a number such as 3", s)
		}
		*p = f
	case *int:
		n, err := strconv.Atoi(s)
		if err != nil {
			return fmt.Sprintf("%q is not a whole number; write a number such as 20", s)
		}
		*p = n
	case *string:
		*p = s
	case *time.Duration:
		d, err := time.ParseDuration(s)
		if err != nil {
			return fmt.Sprintf("%q is not a duration; write a Go duration such as 10s, 250ms or 10m", s)
		}
		*p = d
	}
	return ""
}

// problem is a bad value in a section: key is where to report it, involves
// lists every key the check reads (for a link, the problem is reported only
// if the link changed one of them), msg says what is wrong and how to fix it.
type problem struct {
	key      string
	involves []string
	msg      string
}

// check returns the problems of th, given the probe settings it works with.
func (th Thresholds) check(pr Probes) []problem {
	var ps []problem
	bad := func(key string, involves []string, format string, args ...any) {
		ps = append(ps, problem{key, append([]string{key}, involves...), fmt.Sprintf(format, args...)})
	}
	if !(th.LossPct > 0 && th.LossPct <= 100) {
		bad("loss_pct", nil, "%s is out of range; write a percentage above 0 and at most 100", show(&th.LossPct))
	}
	if th.LossWindow < pr.Window {
		bad("loss_window", nil, "%s is shorter than probes.window (%s); write at least %s",
			showDuration(th.LossWindow), showDuration(pr.Window), showDuration(pr.Window))
	}
	for _, f := range []struct {
		key string
		d   time.Duration
	}{{"rtt", th.RTT}, {"jitter", th.Jitter}, {"hold_down", th.HoldDown}} {
		if f.d < 0 {
			bad(f.key, nil, "%s is negative; write 0 or more", showDuration(f.d))
		}
	}
	for _, f := range []struct {
		key string
		d   time.Duration
	}{{"enter", th.Enter}, {"exit", th.Exit}, {"withdrawal_window", th.WithdrawalWindow}} {
		if f.d <= 0 {
			bad(f.key, nil, "%s is not above 0; write a duration above 0", showDuration(f.d))
		}
	}
	if th.DownAfter <= pr.Interval {
		// Between two probes there is no reply by design: a shorter
		// down_after would call every link down between its probes.
		bad("down_after", nil, "%s is not longer than probes.interval (%s); write a longer duration",
			showDuration(th.DownAfter), showDuration(pr.Interval))
	}
	if th.StaleAfter <= pr.Window {
		// Samples arrive once a window; a shorter stale_after would make
		// every link unknown between two samples.
		bad("stale_after", nil, "%s is not longer than probes.window (%s); write a longer duration",
			showDuration(th.StaleAfter), showDuration(pr.Window))
	}
	if th.MinProbes < 1 {
		bad("min_probes", nil, "%d is below 1; write 1 or more", th.MinProbes)
	} else if pr.Interval > 0 && th.LossWindow > 0 {
		if most := int64(th.LossWindow / pr.Interval); int64(th.MinProbes) > most {
			// The link could never gather enough evidence to change state.
			bad("min_probes", []string{"loss_window"},
				"%d can never be reached: loss_window (%s) holds at most %d probes at probes.interval (%s); write %d or less, or lengthen loss_window",
				th.MinProbes, showDuration(th.LossWindow), most, showDuration(pr.Interval), most)
		}
	}
	if th.MaxWithdrawals < 1 {
		bad("max_withdrawals", nil, "%d is below 1; write 1 or more", th.MaxWithdrawals)
	}
	if !(th.CongestionPct > 0 && th.CongestionPct <= 100) {
		bad("congestion_pct", nil, "%s is out of range; write a percentage above 0 and at most 100", show(&th.CongestionPct))
	} else if !(th.CongestionExitPct > 0 && th.CongestionExitPct <= th.CongestionPct) {
		// Exit above the target would call a link clear while it is still
		// over its target.
		bad("congestion_exit_pct", []string{"congestion_pct"}, "%s is not above 0 and at most congestion_pct (%s); write a lower level, such as %s",
			show(&th.CongestionExitPct), show(&th.CongestionPct), strconv.FormatFloat(th.CongestionPct-10, 'g', -1, 64))
	}
	if th.RestoreHeadroomPct < 0 {
		bad("restore_headroom_pct", nil, "%s is negative; write 0 or more", show(&th.RestoreHeadroomPct))
	}
	return ps
}

// check returns the problems of p.
func (p Probes) check() []problem {
	var ps []problem
	bad := func(key, format string, args ...any) {
		ps = append(ps, problem{key, []string{key}, fmt.Sprintf(format, args...)})
	}
	if p.Interval < time.Millisecond {
		bad("interval", "%s is below 1ms, which would flood the links; write 1ms or more", showDuration(p.Interval))
	}
	if p.Timeout <= 0 {
		bad("timeout", "%s is not above 0; write a duration above 0", showDuration(p.Timeout))
	}
	if p.Window < p.Interval {
		bad("window", "%s is shorter than interval (%s), so a window could hold no probe; write at least %s",
			showDuration(p.Window), showDuration(p.Interval), showDuration(p.Interval))
	}
	return ps
}

// maxGracefulRestart is the largest restart time the 12-bit Restart Time
// field can carry (RFC 4724 section 3).
const maxGracefulRestart = 4095 * time.Second

// check returns the problems of b.
func (b BGP) check() []problem {
	var ps []problem
	bad := func(key, format string, args ...any) {
		ps = append(ps, problem{key, []string{key}, fmt.Sprintf(format, args...)})
	}
	whole := func(key string, d time.Duration) bool {
		if d%time.Second != 0 {
			bad(key, "%s is not a whole number of seconds, which is all BGP carries; write e.g. %s",
				showDuration(d), showDuration(d.Round(time.Second)))
			return false
		}
		return true
	}
	if whole("hold_time", b.HoldTime) {
		switch {
		case b.HoldTime < 0 || (b.HoldTime > 0 && b.HoldTime < 3*time.Second):
			bad("hold_time", "%s is not allowed; write 0 (no keepalives) or at least 3s (RFC 4271 section 4.2)", showDuration(b.HoldTime))
		case b.HoldTime > 65535*time.Second:
			bad("hold_time", "%s does not fit the 16-bit OPEN field; write at most 65535s", showDuration(b.HoldTime))
		}
	}
	if whole("keepalive", b.Keepalive) {
		switch {
		case b.Keepalive < 0:
			bad("keepalive", "%s is negative; write a duration above 0", showDuration(b.Keepalive))
		case b.HoldTime > 0 && (b.Keepalive == 0 || b.Keepalive >= b.HoldTime):
			bad("keepalive", "%s is not between 0 and hold_time (%s); write a third of hold_time, %s",
				showDuration(b.Keepalive), showDuration(b.HoldTime), showDuration((b.HoldTime / 3).Truncate(time.Second)))
		}
	}
	if b.ConnectRetry <= 0 {
		bad("connect_retry", "%s is not above 0; write a duration above 0", showDuration(b.ConnectRetry))
	}
	if whole("graceful_restart", b.GracefulRestart) && (b.GracefulRestart < 0 || b.GracefulRestart > maxGracefulRestart) {
		bad("graceful_restart", "%s is out of range; write 0 to disable graceful restart, or up to 4095s (RFC 4724 section 3)",
			showDuration(b.GracefulRestart))
	}
	return ps
}
