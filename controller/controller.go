package controller

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sdnoc/sdnoc/actuators/bgp"
	"github.com/sdnoc/sdnoc/actuators/cli"
	"github.com/sdnoc/sdnoc/collectors/flow"
	"github.com/sdnoc/sdnoc/collectors/probes"
	"github.com/sdnoc/sdnoc/collectors/telemetry"
	"github.com/sdnoc/sdnoc/decisions"
	"github.com/sdnoc/sdnoc/journal"
)

// Deps are what the controller needs from its host.
type Deps struct {
	Log *slog.Logger          // nil: discard
	Reg prometheus.Registerer // nil: metrics are created but not exported
	Now func() time.Time      // nil: time.Now
	// OnEvent, if set, receives every event (transition, intent, refusal,
	// alert) from the controller's goroutine; it must return quickly.
	OnEvent func(Event)
	// Proxies drains and undrains edge proxies for drain-pop playbooks;
	// nil: playbooks drain no proxy.
	Proxies Proxies
}

// Proxies drains edge proxies, given their admin addresses.
type Proxies interface {
	Drain(ctx context.Context, addrs []string) error
	Undrain(ctx context.Context, addrs []string) error
}

// Event is something the controller did or saw, for timelines and logs.
type Event struct {
	Time     time.Time      `json:"time"`
	Kind     string         `json:"kind"` // transition, change, intent, applied, failed, refusal, alert
	Link     string         `json:"link,omitempty"`
	Action   string         `json:"action,omitempty"`
	Rule     string         `json:"rule,omitempty"`
	Prefixes []netip.Prefix `json:"prefixes,omitempty"`
	Text     string         `json:"text"`
}

// Controller runs the loop. Build it with New, then Start and Stop.
type Controller struct {
	cfg     Config
	deps    Deps
	log     *slog.Logger
	metrics metrics
	probes  *probes.Collector
	speaker *bgp.Speaker  // nil in a dry run
	routers *cli.Actuator // nil without routers
	samples chan probes.Sample
	// The load collectors; nil when no router reports flows or gNMI.
	flows        *flow.Collector
	flowLinks    []flowLink
	flowsStarted time.Time
	telemetry    *telemetry.Collector
	loads        chan telemetry.Sample

	mu         sync.Mutex // guards status, manualList, alertList and lastStep
	engine     *decisions.Engine
	status     []decisions.LinkStatus
	manualList []journal.Manual
	alertList  []decisions.Alert
	lastStep   time.Time
	// reqs carries the API's calls to the loop, which owns the engine.
	reqs chan func()
	// manual are the active playbooks by name; loop goroutine only.
	manual map[string]journal.Manual
	// pendingUndrain are proxies whose playbook ended; loop only.
	pendingUndrain []string
	journal        *journal.Journal
	alerts         map[string]string // link|kind -> text, to log changes only
	retryAt        map[string]time.Time
	seenUp         map[string]bool // links whose session has been up since start
	started        time.Time
	cancel         context.CancelFunc
	done           chan struct{}
}

// New checks cfg and wires the parts. It opens no socket and no file.
func New(cfg Config, deps Deps) (*Controller, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("controller config: %w", err)
	}
	if deps.Log == nil {
		deps.Log = slog.New(slog.DiscardHandler)
	}
	if deps.Reg == nil {
		deps.Reg = prometheus.NewRegistry()
	}
	if deps.Now == nil {
		deps.Now = time.Now
	}
	c := &Controller{
		cfg: cfg, deps: deps, log: deps.Log,
		metrics: newMetrics(prometheus.WrapRegistererWithPrefix("sdnoc_controller_", deps.Reg)),
		samples: make(chan probes.Sample, 4096),
		loads:   make(chan telemetry.Sample, 4096),
		alerts:  map[string]string{},
		retryAt: map[string]time.Time{},
		seenUp:  map[string]bool{},
		reqs:    make(chan func()),
		manual:  map[string]journal.Manual{},
	}
	// Validate the network now so a bad topology fails before Start.
	if _, err := decisions.New(network(cfg.Topology), decisions.Snapshot{}); err != nil {
		return nil, err
	}
	pc, err := probes.New(probeConfig(cfg.Topology), probes.Deps{
		Log: deps.Log.With("component", "probes"), Now: deps.Now,
		Reg:      prometheus.WrapRegistererWithPrefix("sdnoc_collectors_probes_", deps.Reg),
		OnSample: c.onSample,
	})
	if err != nil {
		return nil, fmt.Errorf("probes: %w", err)
	}
	c.probes = pc
	if fc, links, ok := flowConfig(cfg.Topology); ok {
		f, err := flow.New(fc, flow.Deps{Log: deps.Log.With("component", "flow"), Now: deps.Now,
			Reg: prometheus.WrapRegistererWithPrefix("sdnoc_collectors_flow_", deps.Reg)})
		if err != nil {
			return nil, fmt.Errorf("flow collector: %w", err)
		}
		c.flows, c.flowLinks = f, links
	}
	if tc, ok := telemetryConfig(cfg.Topology); ok {
		tl, err := telemetry.New(tc, telemetry.Deps{Log: deps.Log.With("component", "telemetry"), Now: deps.Now,
			Reg:      prometheus.WrapRegistererWithPrefix("sdnoc_collectors_telemetry_", deps.Reg),
			OnSample: c.onLoad})
		if err != nil {
			return nil, fmt.Errorf("telemetry collector: %w", err)
		}
		c.telemetry = tl
	}
	if len(cfg.Routers.Routers) > 0 {
		ra, err := cli.New(cfg.Routers, cli.Deps{Log: deps.Log.With("component", "cli"), OnStep: c.onRouterStep})
		if err != nil {
			return nil, err
		}
		c.routers = ra
	}
	if !cfg.DryRun {
		sp, err := bgp.New(speakerConfig(cfg.Topology), bgp.Deps{Log: deps.Log.With("component", "bgp"),
			Reg: prometheus.WrapRegistererWithPrefix("sdnoc_actuators_bgp_", deps.Reg)})
		if err != nil {
			return nil, fmt.Errorf("bgp speaker: %w", err)
		}
		c.speaker = sp
	}
	return c, nil
}

// onSample hands a sample to the loop without blocking the collector.
func (c *Controller) onSample(s probes.Sample) {
	select {
	case c.samples <- s:
	default:
		c.metrics.samplesDropped.Inc()
	}
}

// Start restores the journal, makes the first decision, then starts the
// speaker and the probes, in that order. Nothing is decided before the
// journal is read (invariant 7), and the first decision's announcements are
// in the speaker's RIB before any session comes up: after a restart the
// ISPs, which kept our routes through graceful restart, get exactly what
// was published before, and no End-of-RIB flushes what is about to be
// re-announced.
func (c *Controller) Start(ctx context.Context) error {
	var snap journal.State
	if c.cfg.DryRun {
		s, err := readSnapshot(c.cfg.JournalPath)
		if err != nil {
			return err
		}
		snap = s
	} else {
		j, s, err := journal.Open(c.cfg.JournalPath)
		if err != nil {
			return err
		}
		c.journal, snap = j, s
		note := fmt.Sprintf("start: %d links withdrawn, %d keeping prefixes, %d with prefixes moved off", len(s.Withdrawn), len(s.Keepers), len(s.Moved))
		if _, err := j.Append(journal.Record{Time: c.deps.Now(), Kind: journal.KindStart, Note: note}); err != nil {
			j.Close()
			return err
		}
		c.log.Info("journal restored", "path", c.cfg.JournalPath, "withdrawn", len(s.Withdrawn), "keepers", len(s.Keepers))
	}
	e, err := decisions.New(network(c.cfg.Topology), snap.Snapshot)
	if err != nil {
		return err
	}
	c.engine = e
	c.restoreOverrides(snap.Overrides)
	c.started = time.Now()
	run, cancel := context.WithCancel(context.WithoutCancel(ctx))
	c.cancel = cancel
	c.step(run)
	fail := func(err error) error {
		cancel()
		if c.journal != nil {
			c.journal.Close()
		}
		return err
	}
	if c.speaker != nil {
		if err := c.speaker.Start(ctx); err != nil {
			return fail(fmt.Errorf("bgp speaker: %w", err))
		}
	}
	if err := c.probes.Start(ctx); err != nil {
		if c.speaker != nil {
			_ = c.speaker.Stop(context.WithoutCancel(ctx))
		}
		return fail(fmt.Errorf("probes: %w", err))
	}
	if err := c.startLoad(ctx); err != nil {
		_ = c.probes.Stop(context.WithoutCancel(ctx))
		if c.speaker != nil {
			_ = c.speaker.Stop(context.WithoutCancel(ctx))
		}
		return fail(err)
	}
	c.done = make(chan struct{})
	go c.loop(run)
	return nil
}

// readSnapshot replays a journal without writing to it, for dry runs.
func readSnapshot(path string) (journal.State, error) {
	if path == "" {
		return journal.State{}, nil
	}
	return journal.Read(path)
}

// Stop stops the probes, the loop and the speaker, and closes the
// journal. Stopping the speaker ends its sessions with a NOTIFICATION, so
// the ISPs drop the edge's routes at once: use Halt for a restart.
func (c *Controller) Stop(ctx context.Context) error {
	err := c.Halt(ctx)
	if c.speaker != nil {
		err = errors.Join(err, c.speaker.Stop(ctx))
	}
	return err
}

// Halt stops the probes and the loop and closes the journal, but leaves
// the BGP sessions up: the process is expected to exit right after, so
// the sessions die without a NOTIFICATION and the ISPs keep the edge's
// routes for the graceful restart time while sdnoc restarts (invariant 7).
func (c *Controller) Halt(ctx context.Context) error {
	var errs []error
	if err := c.probes.Stop(ctx); err != nil {
		errs = append(errs, fmt.Errorf("probes: %w", err))
	}
	if c.flows != nil {
		if err := c.flows.Stop(ctx); err != nil {
			errs = append(errs, fmt.Errorf("flows: %w", err))
		}
	}
	if c.telemetry != nil {
		if err := c.telemetry.Stop(ctx); err != nil {
			errs = append(errs, fmt.Errorf("telemetry: %w", err))
		}
	}
	if c.cancel != nil {
		c.cancel()
		if c.done != nil {
			select {
			case <-c.done:
			case <-ctx.Done():
				errs = append(errs, ctx.Err())
			}
		}
	}
	if c.journal != nil {
		if err := c.journal.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// WithdrawAll withdraws every prefix from every ISP and journals it: for
// a controller that leaves the network, before Stop.
func (c *Controller) WithdrawAll(ctx context.Context) error {
	if c.speaker == nil {
		return nil
	}
	c.record(journal.Record{Time: c.deps.Now(), Kind: journal.KindStop, Note: "withdraw-all on exit: every prefix withdrawn from every ISP"})
	return c.speaker.WithdrawAll(ctx)
}

func (c *Controller) loop(ctx context.Context) {
	defer close(c.done)
	tick := time.NewTicker(c.cfg.Tick)
	defer tick.Stop()
	sessions := time.NewTicker(c.cfg.SessionPoll)
	defer sessions.Stop()
	resync := time.NewTicker(c.cfg.AppliedSync)
	defer resync.Stop()
	flows := time.NewTicker(c.cfg.FlowPoll)
	defer flows.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case s := <-c.samples:
			c.observe(s)
		case s := <-c.loads:
			c.observeLoad(s)
		case <-flows.C:
			c.readFlows(c.deps.Now())
		case <-tick.C:
			c.step(ctx)
		case <-sessions.C:
			c.pollSessions(ctx)
		case <-resync.C:
			c.syncApplied(ctx)
		case f := <-c.reqs:
			f()
		}
	}
}

func (c *Controller) observe(s probes.Sample) {
	err := c.engine.Observe(decisions.Sample{
		Link: s.Link, Source: s.Source, End: s.End, Known: s.Known, Sent: s.Sent,
		Received: s.Received, Lost: s.Lost, RTTAvg: s.RTTAvg, Jitter: s.Jitter, SinceReply: s.SinceReply,
	})
	if err != nil {
		c.log.Warn("sample dropped", "link", s.Link, "err", err)
	}
}

func (c *Controller) pollSessions(ctx context.Context) {
	if c.speaker == nil {
		return
	}
	ss, err := c.speaker.Sessions(ctx)
	if err != nil {
		c.log.Warn("read bgp sessions", "err", err)
		return
	}
	for link, s := range ss {
		if s.Up {
			c.seenUp[link] = true
		}
		// A session still connecting after start is not a link that cannot
		// carry prefixes: count it down only once it has been up, or when it
		// has not come up within a hold time.
		if !s.Up && !c.seenUp[link] && time.Since(c.started) < c.cfg.Topology.BGP.HoldTime {
			continue
		}
		if err := c.engine.SetSession(link, s.Up); err != nil {
			c.log.Warn("session of unknown link", "link", link, "err", err)
		}
	}
}

// syncApplied corrects the engine's view of what is applied from the
// speaker's own adj-RIB-out, so drift (a failed call, say) is seen.
func (c *Controller) syncApplied(ctx context.Context) {
	if c.speaker == nil {
		return
	}
	applied, err := c.speaker.Applied(ctx)
	if err != nil {
		c.log.Warn("read applied state", "err", err)
		return
	}
	for link, pfx := range applied {
		if err := c.engine.SetApplied(link, pfx); err != nil {
			c.log.Warn("applied state of unknown link", "link", link, "err", err)
		}
	}
}

// step runs one decision and carries it out: journal first, then act.
func (c *Controller) step(ctx context.Context) {
	now := c.deps.Now()
	start := time.Now()
	d := c.engine.Step(now)
	c.metrics.stepSeconds.Observe(time.Since(start).Seconds())
	c.expired(ctx, now, d.Expired)
	for _, tr := range d.Transitions {
		c.log.Info("link state", "link", tr.Link, "from", tr.From, "to", tr.To, "reason", tr.Reason)
		c.emit(Event{Time: now, Kind: "transition", Link: tr.Link, Text: fmt.Sprintf("%s → %s: %s", tr.From, tr.To, tr.Reason)})
	}
	for _, ch := range d.Changes {
		verb := "restored"
		if ch.Withdrawn {
			verb = "withdrawn"
		}
		c.log.Warn("link "+verb, "link", ch.Link, "reason", ch.Reason)
		c.record(journal.Record{Time: now, Kind: journal.KindChange, Change: &ch})
		c.emit(Event{Time: now, Kind: "change", Link: ch.Link, Text: verb + ": " + ch.Reason})
	}
	if d.Keepers != nil {
		c.record(journal.Record{Time: now, Kind: journal.KindKeepers, Keepers: d.Keepers})
	}
	for _, ch := range d.Congestion {
		state := "clear"
		if ch.Congested {
			state = "congested"
		}
		c.log.Warn("link "+state, "link", ch.Link, "reason", ch.Reason)
		c.emit(Event{Time: now, Kind: "congestion", Link: ch.Link, Text: state + ": " + ch.Reason})
	}
	for _, m := range d.Moves {
		c.log.Info("move", "link", m.Link, "prefix", m.Prefix, "back", m.Back, "rate_bps", m.RateBps, "reason", m.Reason)
		c.emit(Event{Time: now, Kind: "move", Link: m.Link, Prefixes: []netip.Prefix{m.Prefix}, Text: m.Reason})
	}
	if d.Moved != nil {
		c.record(journal.Record{Time: now, Kind: journal.KindMoves, Moved: d.Moved, Moves: d.Moves})
	}
	for _, r := range d.Refusals {
		c.metrics.refusals.WithLabelValues(r.Rule).Inc()
		c.log.Warn("refused", "link", r.Link, "rule", r.Rule, "reason", r.Reason)
		c.record(journal.Record{Time: now, Kind: journal.KindRefusal, Refusal: &r})
		c.emit(Event{Time: now, Kind: "refusal", Link: r.Link, Rule: r.Rule, Text: r.Reason})
	}
	c.logAlerts(now, d.Alerts)
	alerts := slices.Clone(d.Alerts)
	for _, in := range d.Intents {
		c.apply(ctx, now, in)
	}
	st := c.engine.Status()
	c.metrics.update(st)
	manual := make([]journal.Manual, 0, len(c.manual))
	for _, o := range c.engine.Overrides() {
		manual = append(manual, c.manual[o.ID])
	}
	c.metrics.overrides.Set(float64(len(manual)))
	c.mu.Lock()
	c.status, c.manualList, c.alertList = st, manual, alerts
	c.lastStep = time.Now()
	c.mu.Unlock()
	if len(c.pendingUndrain) > 0 && c.deps.Proxies != nil {
		addrs := c.pendingUndrain
		c.pendingUndrain = nil
		// Off the loop: a proxy that does not answer must not stall decisions.
		uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		go func() {
			defer cancel()
			if err := c.deps.Proxies.Undrain(uctx, addrs); err != nil {
				c.log.Error("undrain edge proxies after a playbook ended", "proxies", addrs, "err", err)
			}
		}()
	}
}

// Health reports an error when the decision loop has not stepped for ten
// ticks (at least two seconds): a stalled loop decides nothing, whatever
// the network does, and that is what /healthz is for.
func (c *Controller) Health() error {
	c.mu.Lock()
	last := c.lastStep
	c.mu.Unlock()
	limit := max(10*c.cfg.Tick, 2*time.Second)
	switch {
	case last.IsZero():
		return errors.New("not started")
	case time.Since(last) > limit:
		return fmt.Errorf("decision loop stalled: last step %v ago", time.Since(last).Round(time.Millisecond))
	}
	return nil
}

// record journals rec unless this is a dry run.
func (c *Controller) record(rec journal.Record) uint64 {
	if c.journal == nil {
		return 0
	}
	seq, err := c.journal.Append(rec)
	if err != nil {
		c.metrics.journalErrors.Inc()
		c.log.Error("journal write failed", "kind", rec.Kind, "err", err)
	}
	return seq
}

// apply journals an intent, carries it out on the link's speaker and
// confirms it to the engine. A failed intent is journaled as failed and
// tried again after a pause; the engine re-emits it until it is confirmed.
func (c *Controller) apply(ctx context.Context, now time.Time, in decisions.Intent) {
	ev := Event{Time: now, Kind: "intent", Link: in.Link, Action: string(in.Action), Rule: in.Rule, Prefixes: in.Prefixes, Text: in.Reason}
	if c.cfg.DryRun {
		ev.Text = "dry run, not applied: " + in.Reason
		c.log.Info("would "+string(in.Action), "link", in.Link, "prefixes", len(in.Prefixes), "which", prefixSample(in.Prefixes),
			"rule", in.Rule, "reason", in.Reason)
		c.emit(ev)
		_ = c.engine.Confirm(in)
		return
	}
	if t, ok := c.retryAt[in.Link]; ok && now.Before(t) {
		return
	}
	seq, err := c.journal.Append(journal.Record{Time: now, Kind: journal.KindIntent, Intent: &in})
	if err != nil {
		// Journal first or not at all (invariant 6).
		c.metrics.journalErrors.Inc()
		c.log.Error("intent not applied: journal write failed", "link", in.Link, "err", err)
		c.retryAt[in.Link] = now.Add(time.Second)
		return
	}
	c.emit(ev)
	c.log.Info(string(in.Action), "link", in.Link, "prefixes", len(in.Prefixes), "which", prefixSample(in.Prefixes),
		"rule", in.Rule, "reason", in.Reason)
	done := in
	done.Prefixes = nil
	var errs []error
	for _, p := range in.Prefixes {
		var err error
		if in.Action == decisions.Announce {
			err = c.speaker.Announce(ctx, in.Link, p)
		} else {
			err = c.speaker.Withdraw(ctx, in.Link, p)
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		done.Prefixes = append(done.Prefixes, p)
	}
	if err := c.engine.Confirm(done); err != nil {
		c.log.Error("confirm intent", "link", in.Link, "err", err)
	}
	c.metrics.intents.WithLabelValues(string(in.Action), in.Rule).Add(float64(len(done.Prefixes)))
	if err := errors.Join(errs...); err != nil {
		c.metrics.intentFailures.Inc()
		c.retryAt[in.Link] = now.Add(time.Second)
		c.record(journal.Record{Time: c.deps.Now(), Kind: journal.KindFailed, Ref: seq, Error: err.Error()})
		c.log.Error(string(in.Action)+" failed", "link", in.Link, "failed", len(errs), "err", err)
		c.emit(Event{Time: c.deps.Now(), Kind: "failed", Link: in.Link, Action: string(in.Action), Text: err.Error()})
		return
	}
	delete(c.retryAt, in.Link)
	c.record(journal.Record{Time: c.deps.Now(), Kind: journal.KindApplied, Ref: seq})
	c.emit(Event{Time: c.deps.Now(), Kind: "applied", Link: in.Link, Action: string(in.Action), Rule: in.Rule, Prefixes: in.Prefixes,
		Text: fmt.Sprintf("%s %d prefixes on %s", in.Action, len(in.Prefixes), in.Link)})
}

// logAlerts logs alerts when they appear, change kind or clear.
func (c *Controller) logAlerts(now time.Time, alerts []decisions.Alert) {
	seen := map[string]bool{}
	for _, a := range alerts {
		key := a.Link + "|" + a.Kind
		seen[key] = true
		if _, ok := c.alerts[key]; ok {
			continue
		}
		c.alerts[key] = a.Text
		c.log.Warn("alert", "link", a.Link, "kind", a.Kind, "text", a.Text)
		c.emit(Event{Time: now, Kind: "alert", Link: a.Link, Rule: a.Kind, Text: a.Text})
	}
	for key := range c.alerts {
		if !seen[key] {
			delete(c.alerts, key)
		}
	}
	c.metrics.alerts.Set(float64(len(c.alerts)))
}

func (c *Controller) emit(e Event) {
	if c.deps.OnEvent != nil {
		c.deps.OnEvent(e)
	}
}

// Alerts returns the alerts of the last step: links unknown, kept against
// never-strand, over the withdrawal cap, congested without a plan.
func (c *Controller) Alerts() []decisions.Alert {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.alertList)
}

// Status returns the links as of the last step.
func (c *Controller) Status() []decisions.LinkStatus {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.status)
}

// prefixSample names the first prefixes of an intent for a log line, so a
// person sees which ranges move without a line of twenty thousand.
func prefixSample(ps []netip.Prefix) string {
	const show = 8
	var b strings.Builder
	for i, p := range ps {
		if i == show {
			fmt.Fprintf(&b, " and %d more", len(ps)-show)
			break
		}
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(p.String())
	}
	return b.String()
}
