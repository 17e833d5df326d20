package controller

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"time"

	"github.com/sdnoc/sdnoc/decisions"
	"github.com/sdnoc/sdnoc/journal"
	"github.com/sdnoc/sdnoc/playbooks"
)

// ErrRefused is returned, wrapped, when a playbook's plan has refusals:
// nothing was applied.
var ErrRefused = errors.New("refused")

// ErrNotRunning is returned, wrapped, by calls that need the loop before
// Start or after Stop.
var ErrNotRunning = errors.New("controller not running")

// Plan is what a playbook does, session by session.
type Plan struct {
	Playbook string          `json:"playbook"`
	Kind     playbooks.Kind  `json:"kind"`
	Expires  time.Time       `json:"expires,omitzero"`
	Sessions []SessionChange `json:"sessions"`
	Release  []string        `json:"release,omitempty"` // restore: the playbooks it ends
	Proxies  []string        `json:"proxies,omitempty"` // edge proxies it drains
	// Prepend extra copies of the AS on PrependLinks for PrependFor
	// before the withdrawals (a gentle drain-pop).
	Prepend      int                   `json:"prepend,omitempty"`
	PrependFor   time.Duration         `json:"prepend_for,omitempty"`
	PrependLinks []string              `json:"prepend_links,omitempty"`
	Load         []decisions.LoadCheck `json:"load,omitempty"`
	Refusals     []string              `json:"refusals,omitempty"`
	Warnings     []string              `json:"warnings,omitempty"`
}

// SessionChange is what changes on one BGP session.
type SessionChange struct {
	Link     string         `json:"link"`
	Neighbor string         `json:"neighbor"`
	PeerASN  uint32         `json:"peer_asn"`
	Announce []netip.Prefix `json:"announce,omitempty"`
	Withdraw []netip.Prefix `json:"withdraw,omitempty"`
}

// do runs f on the loop's goroutine, which owns the engine, and waits.
func (c *Controller) do(ctx context.Context, f func()) error {
	done := make(chan struct{})
	select {
	case c.reqs <- func() { f(); close(done) }:
	case <-c.stopped():
		return ErrNotRunning
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case <-done:
		return nil
	case <-c.stopped():
		return ErrNotRunning
	case <-ctx.Done():
		return ctx.Err()
	}
}

// stopped is closed once the loop has ended; nil (blocks) while running.
func (c *Controller) stopped() <-chan struct{} {
	if c.done == nil {
		closed := make(chan struct{})
		close(closed)
		return closed
	}
	return c.done
}

// PlanPlaybook says what pb would change now, and what it refuses.
func (c *Controller) PlanPlaybook(ctx context.Context, pb *playbooks.Playbook) (Plan, error) {
	var (
		p   Plan
		err error
	)
	if derr := c.do(ctx, func() { p, _, err = c.plan(pb) }); derr != nil {
		return Plan{}, derr
	}
	return p, err
}

// plan runs on the loop.
func (c *Controller) plan(pb *playbooks.Playbook) (Plan, decisions.Override, error) {
	p := Plan{Playbook: pb.Name, Kind: pb.Kind}
	if pb.Kind == playbooks.Restore {
		ids := pb.Release
		if pb.All {
			for _, o := range c.engine.Overrides() {
				ids = append(ids, o.ID)
			}
		}
		pv, err := c.engine.PreviewRelease(ids)
		if err != nil {
			return p, decisions.Override{}, fmt.Errorf("playbook %s: %w", pb.Name, err)
		}
		p.Release = ids
		for _, id := range ids {
			p.Proxies = append(p.Proxies, c.manual[id].Drained...)
		}
		if len(ids) == 0 {
			p.Warnings = append(p.Warnings, "no playbook is active: nothing to release")
		}
		p.Sessions = c.sessions(pv.Changes)
		return p, decisions.Override{}, nil
	}
	if max := c.cfg.MaxOverride; pb.Expiry > max {
		return p, decisions.Override{}, fmt.Errorf("playbook %s: expires: %v is longer than this daemon's cap of %v; shorten it", pb.Name, pb.Expiry, max)
	}
	o, err := pb.Override(c.cfg.Topology, c.deps.Now())
	if err != nil {
		return p, o, err
	}
	p.Expires = o.Expires
	pv, err := c.engine.Preview(o)
	if err != nil {
		return p, o, err
	}
	p.Sessions, p.Load, p.Refusals, p.Warnings = c.sessions(pv.Changes), pv.Load, pv.Refusals, pv.Warnings
	if pb.Kind == playbooks.DrainPoP && pb.Prepend > 0 {
		p.Prepend, p.PrependFor = pb.Prepend, pb.PrependFor
		for _, pop := range c.cfg.Topology.PoPs {
			if pop.Name == pb.PoP {
				for _, l := range pop.Links {
					p.PrependLinks = append(p.PrependLinks, c.cfg.Topology.LinkID(pop.Name, l.Name))
				}
			}
		}
	}
	if pb.Kind == playbooks.DrainPoP && pb.DrainProxies {
		p.Proxies = c.proxiesOf(pb.PoP)
		if len(p.Proxies) == 0 {
			p.Warnings = append(p.Warnings, "drain_proxies: the topology lists no edge proxies in "+pb.PoP)
		}
	}
	return p, o, nil
}

func (c *Controller) sessions(ds []decisions.Delta) []SessionChange {
	out := make([]SessionChange, 0, len(ds))
	for _, d := range ds {
		sc := SessionChange{Link: d.Link, Announce: d.Announce, Withdraw: d.Withdraw}
		for _, pop := range c.cfg.Topology.PoPs {
			for _, l := range pop.Links {
				if c.cfg.Topology.LinkID(pop.Name, l.Name) == d.Link {
					sc.Neighbor, sc.PeerASN = l.Neighbor.String(), l.PeerASN
				}
			}
		}
		out = append(out, sc)
	}
	return out
}

// proxiesOf returns the admin addresses of a PoP's edge proxies.
func (c *Controller) proxiesOf(pop string) []string {
	for _, p := range c.cfg.Topology.PoPs {
		if p.Name == pop {
			return slices.Clone(p.EdgeProxies)
		}
	}
	return nil
}

// ApplyPlaybook plans pb and, unless the plan refuses, makes it so: the
// override is journaled with its audit, handed to the engine and carried
// out at once; a drain-pop then drains the PoP's edge proxies. A refused
// plan is journaled as denied and returned with ErrRefused. A restore
// releases what it names.
func (c *Controller) ApplyPlaybook(ctx context.Context, pb *playbooks.Playbook, via string) (Plan, error) {
	if c.journal == nil {
		return Plan{}, errors.New("dry run: nothing is applied; plan only")
	}
	audit := journal.Audit{Author: pb.Author, Reason: pb.Reason, Via: via, Playbook: pb.Name, Kind: string(pb.Kind), File: pb.File}
	var (
		p   Plan
		err error
	)
	derr := c.do(ctx, func() {
		var o decisions.Override
		p, o, err = c.plan(pb)
		switch {
		case err != nil:
		case len(p.Refusals) > 0:
			err = fmt.Errorf("playbook %s: %w: %s", pb.Name, ErrRefused, p.Refusals[0])
		case pb.Kind == playbooks.Restore:
			for _, id := range p.Release {
				if rerr := c.release(ctx, id, audit); rerr != nil {
					err = errors.Join(err, rerr)
				}
			}
			return
		default:
			m := journal.Manual{Override: o, Audit: audit, Applied: c.deps.Now(), Drained: p.Proxies, Prepend: p.Prepend, PrependLinks: p.PrependLinks}
			if _, jerr := c.journal.Append(journal.Record{Time: c.deps.Now(), Kind: journal.KindOverride, Manual: &m}); jerr != nil {
				err = fmt.Errorf("playbook %s not applied: journal: %w", pb.Name, jerr)
				return
			}
			if aerr := c.engine.AddOverride(o); aerr != nil {
				err = aerr
				c.record(journal.Record{Time: c.deps.Now(), Kind: journal.KindRelease, Target: o.ID, Audit: &journal.Audit{Author: "sdnoc", Reason: "not applied: " + aerr.Error()}})
				return
			}
			c.manual[o.ID] = m
			c.metrics.playbookWrites.WithLabelValues("applied").Inc()
			if perr := c.prepend(ctx, m.PrependLinks, m.Prepend); perr != nil {
				p.Warnings = append(p.Warnings, "prepend: "+perr.Error()+"; the withdrawals still come at "+o.From.Format(time.RFC3339))
			}
			c.log.Warn("playbook applied", "playbook", pb.Name, "kind", pb.Kind, "author", pb.Author, "reason", pb.Reason, "via", via,
				"expires", o.Expires, "sessions", len(p.Sessions))
			c.emit(Event{Time: c.deps.Now(), Kind: "override", Text: fmt.Sprintf("%s applied by %s (%s) until %s: %s", pb.Name, pb.Author, via, o.Expires.Format(time.RFC3339), pb.Reason)})
			c.step(ctx)
			return
		}
		if err != nil {
			c.metrics.playbookWrites.WithLabelValues("denied").Inc()
			c.record(journal.Record{Time: c.deps.Now(), Kind: journal.KindDenied, Audit: &audit, Note: err.Error()})
		}
	})
	if derr != nil {
		return Plan{}, derr
	}
	if err == nil && len(p.Proxies) > 0 && c.deps.Proxies != nil {
		if pb.Kind == playbooks.Restore {
			err = c.deps.Proxies.Undrain(ctx, p.Proxies)
		} else {
			err = c.deps.Proxies.Drain(ctx, p.Proxies)
		}
	}
	return p, err
}

// Release ends the override id now, on a person's word.
func (c *Controller) Release(ctx context.Context, id string, a journal.Audit) error {
	if c.journal == nil {
		return errors.New("dry run: nothing to release")
	}
	var err error
	var drained []string
	if derr := c.do(ctx, func() {
		drained = c.manual[id].Drained
		err = c.release(ctx, id, a)
	}); derr != nil {
		return derr
	}
	if err == nil && len(drained) > 0 && c.deps.Proxies != nil {
		err = c.deps.Proxies.Undrain(ctx, drained)
	}
	return err
}

// release runs on the loop.
func (c *Controller) release(ctx context.Context, id string, a journal.Audit) error {
	if !slices.ContainsFunc(c.engine.Overrides(), func(o decisions.Override) bool { return o.ID == id }) {
		return fmt.Errorf("no active playbook %q (see sdnoc playbook list)", id)
	}
	if _, err := c.journal.Append(journal.Record{Time: c.deps.Now(), Kind: journal.KindRelease, Target: id, Audit: &a}); err != nil {
		return fmt.Errorf("release %s: journal: %w", id, err)
	}
	c.engine.RemoveOverride(id)
	c.metrics.playbookWrites.WithLabelValues("released").Inc()
	if err := c.prepend(ctx, c.manual[id].PrependLinks, 0); err != nil {
		c.log.Error("end the prepend of a released playbook", "playbook", id, "err", err)
	}
	delete(c.manual, id)
	c.log.Warn("playbook released", "playbook", id, "author", a.Author, "reason", a.Reason, "via", a.Via)
	c.emit(Event{Time: c.deps.Now(), Kind: "release", Text: fmt.Sprintf("%s released by %s (%s): %s", id, a.Author, a.Via, a.Reason)})
	c.step(ctx)
	return nil
}

// Overrides returns the active playbooks, oldest first.
func (c *Controller) Overrides() []journal.Manual {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.manualList)
}

// Publications returns what every link should publish and does, as of
// the last step. It lists every prefix of every link, so it is built on
// request, on the loop, not at every step.
func (c *Controller) Publications(ctx context.Context) ([]decisions.Publication, error) {
	var pubs []decisions.Publication
	if err := c.do(ctx, func() { pubs = c.engine.Publications() }); err != nil {
		return nil, err
	}
	return pubs, nil
}

// Records returns journal records after seq, at most limit.
func (c *Controller) Records(after uint64, limit int) ([]journal.Record, error) {
	if c.cfg.JournalPath == "" {
		return nil, nil
	}
	return journal.Records(c.cfg.JournalPath, after, limit)
}

// restoreOverrides hands the journal's active overrides to the engine at
// start: expired ones are journaled as such, ones the topology no longer
// fits are released with the reason.
func (c *Controller) restoreOverrides(ms []journal.Manual) {
	now := c.deps.Now()
	for _, m := range ms {
		if !now.Before(m.Override.Expires) {
			c.record(journal.Record{Time: now, Kind: journal.KindExpire, Target: m.Override.ID})
			c.log.Info("playbook expired while sdnoc was away", "playbook", m.Override.ID)
			if len(m.Drained) > 0 && c.deps.Proxies != nil {
				c.pendingUndrain = append(c.pendingUndrain, m.Drained...)
			}
			continue
		}
		if err := c.engine.AddOverride(m.Override); err != nil {
			c.record(journal.Record{Time: now, Kind: journal.KindRelease, Target: m.Override.ID,
				Audit: &journal.Audit{Author: "sdnoc", Reason: "does not fit the topology any more: " + err.Error()}})
			c.log.Error("playbook from the journal dropped", "playbook", m.Override.ID, "err", err)
			continue
		}
		c.manual[m.Override.ID] = m
		// Before Start: the speaker announces with it from the first UPDATE.
		if err := c.prepend(context.Background(), m.PrependLinks, m.Prepend); err != nil {
			c.log.Error("restore the prepend of a playbook", "playbook", m.Override.ID, "err", err)
		}
		c.log.Info("playbook restored from the journal", "playbook", m.Override.ID, "expires", m.Override.Expires)
	}
}

// expired journals the overrides the engine let go at this step.
func (c *Controller) expired(ctx context.Context, now time.Time, ids []string) {
	for _, id := range ids {
		m := c.manual[id]
		delete(c.manual, id)
		c.metrics.playbookWrites.WithLabelValues("expired").Inc()
		if err := c.prepend(ctx, m.PrependLinks, 0); err != nil {
			c.log.Error("end the prepend of an expired playbook", "playbook", id, "err", err)
		}
		c.record(journal.Record{Time: now, Kind: journal.KindExpire, Target: id})
		c.log.Warn("playbook expired: automation takes over what it covered", "playbook", id, "author", m.Audit.Author)
		c.emit(Event{Time: now, Kind: "expire", Text: id + " expired: automation takes over"})
		if len(m.Drained) > 0 && c.deps.Proxies != nil {
			c.pendingUndrain = append(c.pendingUndrain, m.Drained...)
		}
	}
}

// prepend sets the AS path prepending of links (0 ends it); a dry run
// has no speaker and prepends nothing.
func (c *Controller) prepend(ctx context.Context, links []string, n int) error {
	if c.speaker == nil {
		return nil
	}
	var errs []error
	for _, l := range links {
		if err := c.speaker.SetPrepend(ctx, l, n); err != nil {
			errs = append(errs, err)
		}
	}
	if len(links) > 0 && len(errs) == 0 {
		c.log.Info("as path prepend", "links", links, "extra", n)
	}
	return errors.Join(errs...)
}
