package decisions

import (
	"errors"
	"fmt"
	"net/netip"
	"time"
)

// Thresholds decide when a link is bad. The topology supplies them per link;
// the zero value is not usable: start from DefaultThresholds.
type Thresholds struct {
	LossPct    float64       // bad while loss over LossWindow exceeds this (percent)
	LossWindow time.Duration // how far back loss, RTT and jitter are aggregated
	RTT        time.Duration // bad while mean RTT over LossWindow exceeds this; 0 disables
	Jitter     time.Duration // bad while jitter exceeds this; 0 disables
	Enter      time.Duration // bad must hold this long before the link is degraded
	Exit       time.Duration // good must hold this long before a degraded link is healthy
	HoldDown   time.Duration // no healthy/degraded change within this time of the last one
	DownAfter  time.Duration // no reply at all for this long: down, degraded at once
	StaleAfter time.Duration // no sample for this long: unknown
	MinProbes  int           // fewer resolved probes in LossWindow: not enough evidence
}

// DefaultThresholds returns the thresholds sdnoc uses when the topology says
// nothing. They assume three probe targets per link at 100 ms (30 probes/s)
// and were chosen in simulation (noise_test.go): 1 % random loss then
// withdraws a link about once per 60 link-hours (2 in 120), and 5 % loss is
// withdrawn in 11.5 s (median), 14.5 s (p90), 28.5 s (p99). A 10 s window
// detects 1 s sooner but withdraws on noise 4 times as often; at this probe
// rate no window does much better (nor did a CUSUM). With fewer probes,
// lengthen loss_window or expect false withdrawals.
func DefaultThresholds() Thresholds {
	return Thresholds{
		LossPct:    3.5,
		LossWindow: 12 * time.Second,
		RTT:        250 * time.Millisecond,
		Jitter:     50 * time.Millisecond,
		Enter:      3 * time.Second,
		Exit:       30 * time.Second,
		HoldDown:   30 * time.Second,
		DownAfter:  time.Second,
		StaleAfter: 3 * time.Second,
		MinProbes:  20,
	}
}

// Validate reports every unusable field.
func (t Thresholds) Validate() error {
	var errs []error
	if t.LossPct <= 0 || t.LossPct > 100 {
		errs = append(errs, fmt.Errorf("loss_pct: %v is outside (0, 100]", t.LossPct))
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"loss_window", t.LossWindow}, {"enter", t.Enter}, {"exit", t.Exit}, {"down_after", t.DownAfter}, {"stale_after", t.StaleAfter}} {
		if d.v <= 0 {
			errs = append(errs, fmt.Errorf("%s: %v must be positive", d.name, d.v))
		}
	}
	if t.HoldDown < 0 || t.RTT < 0 || t.Jitter < 0 {
		errs = append(errs, errors.New("hold_down, rtt and jitter must not be negative"))
	}
	if t.MinProbes < 1 {
		errs = append(errs, fmt.Errorf("min_probes: %d is below 1", t.MinProbes))
	}
	return errors.Join(errs...)
}

// Limits cap how much the engine may withdraw, network-wide.
type Limits struct {
	MaxWithdrawals   int           // link withdrawals allowed per WithdrawalWindow
	WithdrawalWindow time.Duration // sliding window for MaxWithdrawals
}

// DefaultLimits returns the caps used when the topology says nothing.
func DefaultLimits() Limits { return Limits{MaxWithdrawals: 4, WithdrawalWindow: 10 * time.Minute} }

// Link is one ISP link of a PoP, as the engine sees it.
type Link struct {
	ID  string // "pop/link"
	PoP string
	// ISP names the network at the other end; "" unknown. Traffic that
	// leaves a link tends to come back in through the same ISP's links in
	// other PoPs, which the preview of a playbook uses.
	ISP        string
	Thresholds Thresholds
	Capacity   uint64     // bit/s; 0: unknown, the link is never judged congested
	Congestion Congestion // used when Capacity is set
}

// Prefix is an edge prefix and the links it is configured on.
type Prefix struct {
	Prefix netip.Prefix
	Links  []string // link IDs
}

// Network is everything the engine needs to know about the topology.
type Network struct {
	Links    []Link
	Prefixes []Prefix
	Limits   Limits
}

// Validate checks the network is consistent: unique links and prefixes, and
// prefixes configured only on known links.
func (n Network) Validate() error {
	var errs []error
	seen := make(map[string]bool, len(n.Links))
	for i, l := range n.Links {
		if l.ID == "" || l.PoP == "" {
			errs = append(errs, fmt.Errorf("links[%d]: id and pop are required", i))
		}
		if seen[l.ID] {
			errs = append(errs, fmt.Errorf("links[%d]: duplicate link %q", i, l.ID))
		}
		seen[l.ID] = true
		if err := l.Thresholds.Validate(); err != nil {
			errs = append(errs, fmt.Errorf("links[%d] (%s): thresholds: %w", i, l.ID, err))
		}
		if c := l.Congestion; l.Capacity > 0 && !(c.TargetPct > 0 && c.TargetPct <= 100 && c.ExitPct > 0 && c.ExitPct <= c.TargetPct && c.RestoreHeadroom >= 0) {
			errs = append(errs, fmt.Errorf("links[%d] (%s): congestion: want 0 < exit (%v) <= target (%v) <= 100 and headroom (%v) >= 0",
				i, l.ID, c.ExitPct, c.TargetPct, c.RestoreHeadroom))
		}
	}
	pfx := make(map[netip.Prefix]bool, len(n.Prefixes))
	for i, p := range n.Prefixes {
		if !p.Prefix.IsValid() {
			errs = append(errs, fmt.Errorf("prefixes[%d]: invalid prefix", i))
		}
		if pfx[p.Prefix] {
			errs = append(errs, fmt.Errorf("prefixes[%d]: duplicate prefix %s", i, p.Prefix))
		}
		pfx[p.Prefix] = true
		for _, l := range p.Links {
			if !seen[l] {
				errs = append(errs, fmt.Errorf("prefixes[%d] (%s): unknown link %q", i, p.Prefix, l))
			}
		}
	}
	if n.Limits.MaxWithdrawals < 1 || n.Limits.WithdrawalWindow <= 0 {
		errs = append(errs, fmt.Errorf("limits: max_withdrawals %d and withdrawal_window %v must be positive",
			n.Limits.MaxWithdrawals, n.Limits.WithdrawalWindow))
	}
	return errors.Join(errs...)
}
