// Package snapper supervises the edge proxy (seed 001's self-healing):
// when the proxy crashes again and again, as after a bad configuration
// change, it restarts it on the configuration as it was 10 minutes ago,
// then 1 hour ago, then 24 hours ago, and says which versions it landed on.
package snapper

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// Config is the crash-loop policy.
type Config struct {
	Crashes             int             // crashes within Within that make a crash loop
	Within              time.Duration   //
	Steps               []time.Duration // how far back each step goes
	Backoff, MaxBackoff time.Duration   // restart delay, doubling
	Stable              time.Duration   // a child up this long clears its crash count
	Watch               time.Duration   // after a rollback, how often to look for a new live configuration
}

// DefaultConfig: 3 crashes in 5 minutes; 10 min, 1 h, 24 h back.
func DefaultConfig() Config {
	return Config{Crashes: 3, Within: 5 * time.Minute, Steps: []time.Duration{10 * time.Minute, time.Hour, 24 * time.Hour},
		Backoff: 100 * time.Millisecond, MaxBackoff: 5 * time.Second, Stable: time.Minute, Watch: time.Second}
}

// Validate reports every bad field with its fix.
func (c Config) Validate() error {
	var errs []error
	if c.Crashes < 1 {
		errs = append(errs, fmt.Errorf("crashes: %d must be 1 or more", c.Crashes))
	}
	if c.Within <= 0 {
		errs = append(errs, fmt.Errorf("within: %v must be above zero; e.g. 5m", c.Within))
	}
	if len(c.Steps) == 0 {
		errs = append(errs, errors.New("steps: none; e.g. 10m, 1h, 24h"))
	}
	for i, s := range c.Steps {
		if s <= 0 || (i > 0 && s <= c.Steps[i-1]) {
			errs = append(errs, fmt.Errorf("steps[%d]: %v must be above zero and further back than the step before", i, s))
		}
	}
	if c.Backoff <= 0 || c.MaxBackoff < c.Backoff {
		errs = append(errs, fmt.Errorf("backoff: %v..%v must be above zero and ordered", c.Backoff, c.MaxBackoff))
	}
	if c.Watch <= 0 {
		errs = append(errs, fmt.Errorf("watch: %v must be above zero; e.g. 1s", c.Watch))
	}
	if c.Stable <= 0 {
		errs = append(errs, fmt.Errorf("stable: %v must be above zero; e.g. 1m", c.Stable))
	}
	return errors.Join(errs...)
}

// Process is a running child.
type Process interface {
	Wait() error
	Signal(os.Signal) error
	Pid() int
}

// Deps are the supervisor's collaborators.
type Deps struct {
	Logger     *slog.Logger
	Registerer prometheus.Registerer
	Now        func() time.Time
	// Start launches the proxy on the live configuration (asOf zero) or
	// on the configuration as it was at asOf.
	Start func(ctx context.Context, asOf time.Time) (Process, error)
	// Describe names the configuration versions asOf means.
	Describe func(asOf time.Time) (string, error)
	// Changed reports whether the live configuration changed since t.
	Changed func(since time.Time) bool
}

// Status is where the supervisor stands.
type Status struct {
	Step     int       `json:"step"` // 0: live; n: Steps[n-1] back
	AsOf     time.Time `json:"as_of,omitzero"`
	Landed   string    `json:"landed,omitempty"`
	Restarts int       `json:"restarts"`
	LastExit string    `json:"last_exit,omitempty"`
	ChildPid int       `json:"child_pid"`
}

// Supervisor runs and restarts the proxy.
type Supervisor struct {
	cfg  Config
	deps Deps
	log  *slog.Logger

	restarts prometheus.Counter
	step     prometheus.Gauge
	asOf     prometheus.Gauge

	mu sync.Mutex
	st Status
}

// New checks cfg and deps.
func New(cfg Config, deps Deps) (*Supervisor, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("snapper: %w", err)
	}
	if deps.Start == nil {
		return nil, errors.New("snapper: no Start")
	}
	if deps.Now == nil {
		deps.Now = time.Now
	}
	if deps.Describe == nil {
		deps.Describe = func(t time.Time) (string, error) { return t.Format(time.RFC3339), nil }
	}
	if deps.Changed == nil {
		deps.Changed = func(time.Time) bool { return false }
	}
	s := &Supervisor{cfg: cfg, deps: deps, log: deps.Logger}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	reg := deps.Registerer
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	f := promauto.With(reg)
	s.restarts = f.NewCounter(prometheus.CounterOpts{Name: "sdnoc_edge_snapper_restarts_total", Help: "Proxy restarts after a crash."})
	s.step = f.NewGauge(prometheus.GaugeOpts{Name: "sdnoc_edge_snapper_step", Help: "0 on the live configuration; n when n steps back."})
	s.asOf = f.NewGauge(prometheus.GaugeOpts{Name: "sdnoc_edge_snapper_as_of_timestamp_seconds", Help: "The time the configuration served is from; 0 when live."})
	return s, nil
}

// Status reports where the supervisor stands.
func (s *Supervisor) Status() Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.st
}

// Run keeps the proxy running until ctx ends, then stops it (SIGTERM, and
// SIGKILL after 10 s).
func (s *Supervisor) Run(ctx context.Context) error {
	var crashes []time.Time
	step := 0
	var asOf, stepAt time.Time
	backoff := s.cfg.Backoff
	for {
		started := s.deps.Now()
		p, err := s.deps.Start(ctx, asOf)
		if err != nil {
			s.log.Error("the proxy did not start", "err", err)
		} else {
			s.set(func(st *Status) { st.ChildPid = p.Pid() })
			exited := make(chan error, 1)
			go func() { exited <- p.Wait() }()
			watch := time.NewTicker(s.cfg.Watch)
			fixed := false
		wait:
			for {
				select {
				case <-ctx.Done():
					watch.Stop()
					s.stopChild(p, exited)
					return nil
				case err = <-exited:
					break wait
				case <-watch.C:
					if step > 0 && s.deps.Changed(stepAt) {
						fixed = true
						s.stopChild(p, exited)
						break wait
					}
				}
			}
			watch.Stop()
			if fixed {
				step, asOf, crashes, backoff = 0, time.Time{}, nil, s.cfg.Backoff
				s.land(step, asOf, "the live configuration changed since the rollback: trying it again")
				continue
			}
			if err == nil {
				err = errors.New("exited with status 0 without being asked")
			}
		}
		now := s.deps.Now()
		if now.Sub(started) >= s.cfg.Stable {
			crashes, backoff = nil, s.cfg.Backoff
		}
		crashes = append(recent(crashes, now, s.cfg.Within), now)
		s.restarts.Inc()
		s.set(func(st *Status) { st.Restarts++; st.LastExit = err.Error(); st.ChildPid = 0 })
		s.log.Warn("the proxy crashed", "err", err, "crashes", len(crashes), "within", s.cfg.Within)

		switch {
		case step > 0 && s.deps.Changed(stepAt):
			step, asOf = 0, time.Time{}
			crashes = nil
			s.land(step, asOf, "the live configuration changed since the rollback: trying it again")
		case len(crashes) >= s.cfg.Crashes && step < len(s.cfg.Steps):
			step++
			stepAt = now
			asOf = now.Add(-s.cfg.Steps[step-1])
			crashes, backoff = nil, s.cfg.Backoff
			s.land(step, asOf, "crash loop: rolling the configuration back")
		case len(crashes) >= s.cfg.Crashes:
			s.log.Error("still crashing on the oldest configuration; restarting it", "as_of", asOf)
			backoff = s.cfg.MaxBackoff
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, s.cfg.MaxBackoff)
	}
}

func (s *Supervisor) land(step int, asOf time.Time, why string) {
	desc := "live"
	if !asOf.IsZero() {
		d, err := s.deps.Describe(asOf)
		if err != nil {
			d = "unknown versions: " + err.Error()
		}
		desc = d
		s.asOf.Set(float64(asOf.Unix()))
	} else {
		s.asOf.Set(0)
	}
	s.step.Set(float64(step))
	s.set(func(st *Status) { st.Step, st.AsOf, st.Landed = step, asOf, desc })
	s.log.Warn(why, "step", step, "as_of", asOf, "landed_on", desc)
}

func (s *Supervisor) stopChild(p Process, exited chan error) {
	p.Signal(syscall.SIGTERM)
	select {
	case <-exited:
	case <-time.After(10 * time.Second):
		p.Signal(os.Kill)
		<-exited
	}
	s.set(func(st *Status) { st.ChildPid = 0 })
}

func (s *Supervisor) set(f func(*Status)) {
	s.mu.Lock()
	f(&s.st)
	s.mu.Unlock()
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
