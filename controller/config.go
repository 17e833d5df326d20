// Package controller runs sdnoc's loop: probe samples in, the decision
// engine in the middle, the journal and the BGP speakers out. It owns the
// wiring and the one goroutine that drives the engine; the logic lives in
// decisions, the protocols in the collectors and actuators.
package controller

import (
	"errors"
	"fmt"
	"time"

	"github.com/sdnoc/sdnoc/actuators/cli"
	"github.com/sdnoc/sdnoc/playbooks"
	"github.com/sdnoc/sdnoc/topologies"
)

// Config is what the controller runs.
type Config struct {
	Topology    *topologies.Topology
	JournalPath string        // append-only journal; required unless DryRun
	DryRun      bool          // plan and explain, touch nothing (no BGP, no journal writes)
	Tick        time.Duration // decision step period; default 100ms
	SessionPoll time.Duration // how often BGP session states are read; default 1s
	AppliedSync time.Duration // how often the speakers' adj-RIB-out is read back; default 30s
	FlowPoll    time.Duration // how often the flow rates are handed to the engine; default 1s
	MaxOverride time.Duration // the longest a playbook may hold; default and most 24h
	// Routers are the routers sdnoc may configure over SSH; none by default.
	Routers cli.Config
}

// DefaultConfig returns the periods sdnoc uses; Topology and JournalPath
// must still be set.
func DefaultConfig() Config {
	return Config{Tick: 100 * time.Millisecond, SessionPoll: time.Second, AppliedSync: 30 * time.Second, FlowPoll: time.Second,
		MaxOverride: playbooks.MaxExpiry, Routers: cli.DefaultConfig()}
}

// Validate reports every unusable field.
func (c Config) Validate() error {
	var errs []error
	if c.Topology == nil {
		errs = append(errs, errors.New("topology: none given; pass --config FILE"))
	}
	if c.JournalPath == "" && !c.DryRun {
		errs = append(errs, errors.New("journal: no path; set --journal FILE (it keeps applied state across restarts)"))
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"tick", c.Tick}, {"session_poll", c.SessionPoll}, {"applied_sync", c.AppliedSync}, {"flow_poll", c.FlowPoll}, {"max_override", c.MaxOverride}} {
		if d.v <= 0 {
			errs = append(errs, fmt.Errorf("%s: %v must be positive", d.name, d.v))
		}
	}
	if c.MaxOverride > playbooks.MaxExpiry {
		errs = append(errs, fmt.Errorf("max_override: %v is above the %v that playbooks may hold; lower it", c.MaxOverride, playbooks.MaxExpiry))
	}
	return errors.Join(errs...)
}
