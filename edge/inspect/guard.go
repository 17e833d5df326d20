package inspect

import (
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// GuardConfig is the fail-open policy.
type GuardConfig struct {
	Window       time.Duration // failures older than this are forgotten
	SiteFailures int           // failures of one site within Window that switch it off
	GlobalSites  int           // sites switched off within Window that switch inspection off everywhere
	Cooldown     time.Duration // a switched-off site is tried again after this; 0: until Reset
}

// DefaultGuardConfig switches a site off at its first failure, everything
// at the third site within 5 minutes, and tries again after 10 minutes.
func DefaultGuardConfig() GuardConfig {
	return GuardConfig{Window: 5 * time.Minute, SiteFailures: 1, GlobalSites: 3, Cooldown: 10 * time.Minute}
}

// Validate reports every bad field with its fix.
func (c GuardConfig) Validate() error {
	var errs []error
	if c.Window <= 0 {
		errs = append(errs, fmt.Errorf("window: %v must be above zero; e.g. 5m", c.Window))
	}
	if c.SiteFailures < 1 {
		errs = append(errs, fmt.Errorf("site_failures: %d must be 1 or more", c.SiteFailures))
	}
	if c.GlobalSites < 1 {
		errs = append(errs, fmt.Errorf("global_sites: %d must be 1 or more", c.GlobalSites))
	}
	if c.Cooldown < 0 {
		errs = append(errs, fmt.Errorf("cooldown: %v must not be negative; 0 keeps a site off until its config changes", c.Cooldown))
	}
	return errors.Join(errs...)
}

// GuardDeps are the guard's collaborators.
type GuardDeps struct {
	Logger     *slog.Logger
	Registerer prometheus.Registerer
	Now        func() time.Time
}

// Guard runs inspection modules fail-open.
type Guard struct {
	cfg GuardConfig
	log *slog.Logger
	now func() time.Time

	failures *prometheus.CounterVec
	disabled *prometheus.GaugeVec
	global   prometheus.Gauge
	blocked  *prometheus.CounterVec

	// off is read on every request without a lock: true when any site is
	// switched off or inspection is off everywhere.
	off atomic.Bool

	mu       sync.Mutex
	sites    map[string]*siteState
	globalAt time.Time // zero: not global
	globalBy string
}

type siteState struct {
	failures []time.Time
	offSince time.Time // zero: on
	reason   string
}

// NewGuard checks cfg and wires the guard.
func NewGuard(cfg GuardConfig, deps GuardDeps) (*Guard, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("inspection guard: %w", err)
	}
	g := &Guard{cfg: cfg, log: deps.Logger, now: deps.Now, sites: map[string]*siteState{}}
	if g.log == nil {
		g.log = slog.New(slog.DiscardHandler)
	}
	if g.now == nil {
		g.now = time.Now
	}
	reg := deps.Registerer
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	f := promauto.With(reg)
	g.failures = f.NewCounterVec(prometheus.CounterOpts{Name: "sdnoc_edge_inspection_failures_total",
		Help: "Inspection module failures, by site and kind (panic or error); each request was let through."}, []string{"site", "kind"})
	g.disabled = f.NewGaugeVec(prometheus.GaugeOpts{Name: "sdnoc_edge_inspection_disabled",
		Help: "1 while inspection is switched off for the site after failures."}, []string{"site"})
	g.global = f.NewGauge(prometheus.GaugeOpts{Name: "sdnoc_edge_inspection_global_disabled",
		Help: "1 while inspection is switched off everywhere."})
	g.blocked = f.NewCounterVec(prometheus.CounterOpts{Name: "sdnoc_edge_inspection_blocked_total",
		Help: "Requests blocked, by site and rule."}, []string{"site", "rule"})
	return g, nil
}

// Inspect runs in on r for site. It never panics and never fails: a panic
// or an error lets the request through and counts against the site.
func (g *Guard) Inspect(site string, in Inspector, r *Request) (v Verdict) {
	if in == nil || (g.off.Load() && !g.enabled(site)) {
		return Verdict{}
	}
	defer func() {
		if p := recover(); p != nil {
			g.fail(site, "panic", fmt.Sprintf("%v\n%s", p, trimStack(debug.Stack())))
			v = Verdict{}
		}
	}()
	v, err := in.Inspect(r)
	if err != nil {
		g.fail(site, "error", err.Error())
		return Verdict{}
	}
	if v.Block {
		g.blocked.WithLabelValues(site, v.Rule).Inc()
	}
	return v
}

// enabled reports whether site is inspected, bringing it back when its
// cooldown is over.
func (g *Guard) enabled(site string) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	now := g.now()
	if !g.globalAt.IsZero() {
		if g.cfg.Cooldown == 0 || now.Sub(g.globalAt) < g.cfg.Cooldown {
			return false
		}
		g.globalAt = time.Time{}
		g.global.Set(0)
		g.log.Info("inspection back on everywhere after its cooldown")
	}
	st := g.sites[site]
	if st != nil && !st.offSince.IsZero() {
		if g.cfg.Cooldown == 0 || now.Sub(st.offSince) < g.cfg.Cooldown {
			return false
		}
		g.turnOn(site, st, "cooldown over")
	}
	g.updateOff()
	return true
}

func (g *Guard) fail(site, kind, detail string) {
	g.failures.WithLabelValues(site, kind).Inc()
	g.mu.Lock()
	defer g.mu.Unlock()
	now := g.now()
	st := g.sites[site]
	if st == nil {
		st = &siteState{}
		g.sites[site] = st
	}
	st.failures = append(recent(st.failures, now, g.cfg.Window), now)
	if !st.offSince.IsZero() || len(st.failures) < g.cfg.SiteFailures {
		g.log.Warn("inspection failed; request let through", "site", site, "kind", kind, "detail", detail)
		return
	}
	st.offSince, st.reason = now, kind+": "+firstLine(detail)
	g.disabled.WithLabelValues(site).Set(1)
	g.log.Warn("inspection switched off for the site; its traffic flows uninspected", "site", site, "kind", kind, "detail", detail)
	off := 0
	for _, s := range g.sites {
		if !s.offSince.IsZero() && now.Sub(s.offSince) < g.cfg.Window {
			off++
		}
	}
	if off >= g.cfg.GlobalSites && g.globalAt.IsZero() {
		g.globalAt, g.globalBy = now, site
		g.global.Set(1)
		g.log.Error("inspection switched off everywhere: it failed for several sites", "sites", off, "window", g.cfg.Window)
	}
	g.updateOff()
}

func (g *Guard) turnOn(site string, st *siteState, why string) {
	st.offSince, st.reason, st.failures = time.Time{}, "", nil
	g.disabled.WithLabelValues(site).Set(0)
	g.log.Info("inspection back on for the site", "site", site, "why", why)
}

// updateOff recomputes the lock-free flag. Called with g.mu held.
func (g *Guard) updateOff() {
	off := !g.globalAt.IsZero()
	for _, s := range g.sites {
		off = off || !s.offSince.IsZero()
	}
	g.off.Store(off)
}

// Reset turns the site's inspection back on (its configuration changed).
func (g *Guard) Reset(site string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if st := g.sites[site]; st != nil && !st.offSince.IsZero() {
		g.turnOn(site, st, "configuration changed")
	}
	delete(g.sites, site)
	g.updateOff()
}

// ResetAll turns inspection back on everywhere.
func (g *Guard) ResetAll() {
	g.mu.Lock()
	defer g.mu.Unlock()
	for name, st := range g.sites {
		if !st.offSince.IsZero() {
			g.turnOn(name, st, "reset")
		}
	}
	g.sites = map[string]*siteState{}
	g.globalAt = time.Time{}
	g.global.Set(0)
	g.updateOff()
}

// GuardStatus is what the admin API shows.
type GuardStatus struct {
	Global      bool           `json:"global_disabled"`
	GlobalSince time.Time      `json:"global_since,omitzero"`
	Disabled    []DisabledSite `json:"disabled_sites"`
}

// DisabledSite is a site whose inspection is off.
type DisabledSite struct {
	Site   string    `json:"site"`
	Since  time.Time `json:"since"`
	Reason string    `json:"reason"`
}

// Status reports which sites are switched off, and whether all are.
func (g *Guard) Status() GuardStatus {
	g.mu.Lock()
	defer g.mu.Unlock()
	st := GuardStatus{Global: !g.globalAt.IsZero(), GlobalSince: g.globalAt, Disabled: []DisabledSite{}}
	for name, s := range g.sites {
		if !s.offSince.IsZero() {
			st.Disabled = append(st.Disabled, DisabledSite{Site: name, Since: s.offSince, Reason: s.reason})
		}
	}
	sort.Slice(st.Disabled, func(i, j int) bool { return st.Disabled[i].Site < st.Disabled[j].Site })
	return st
}

func recent(ts []time.Time, now time.Time, window time.Duration) []time.Time {
	out := ts[:0]
	for _, t := range ts {
		if now.Sub(t) < window {
			out = append(out, t)
		}
	}
	return out
}

func firstLine(s string) string {
	for i, c := range s {
		if c == '\n' {
			return s[:i]
		}
	}
	return s
}

// trimStack keeps a panic's stack short enough for one log line.
func trimStack(b []byte) string {
	if len(b) > 2048 {
		b = b[:2048]
	}
	return string(b)
}
