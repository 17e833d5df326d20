package netlab

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/sdnoc/sdnoc/decisions"
	"github.com/sdnoc/sdnoc/lab/frr"
)

// Scenario is one rehearsal on the lab: it runs sdnoc's daemon, impairs
// the network and judges by what the ISPs' routers hold and where the
// traffic arrives, not by sdnoc's own view.
type Scenario struct {
	Name, About string
	run         func(ctx context.Context, r *Run) error
}

// Result is what a scenario measured.
type Result struct {
	Scenario string        `json:"scenario"`
	Passed   bool          `json:"passed"`
	Figures  []Figure      `json:"figures"`
	Lines    []string      `json:"lines,omitempty"` // what it saw, for people
	Failure  string        `json:"failure,omitempty"`
	Took     time.Duration `json:"took"`
}

// Figure is one measured figure.
type Figure struct {
	Name  string        `json:"name"`
	Value time.Duration `json:"value"`
}

// Run is a scenario being played.
type Run struct {
	Lab    *Lab
	Daemon *Daemon
	res    *Result
	stops  []func()
}

// Scenarios returns every scenario, in the order the suite plays them.
func Scenarios() []Scenario {
	return []Scenario{
		{"isp-loss", "10% loss on pop1/isp2 → isp2's router loses pop1's prefixes, the traffic arrives through isp1; back after healing", ispLoss},
		{"isp-down", "isp2's upstream cut (its sessions with the PoPs stay up) → withdrawn at isp2 within 2 s; back when it returns", ispDown},
		{"congestion", "traffic above pop1/isp2's capacity → the fewest prefixes move to isp1, isp2 falls under target, nothing stranded", congestion},
		{"last-link", "pop1's isp2 and isp1 degrade → withdrawn, isp3 keeps every prefix; isp3 degrades too → it still keeps them", lastLink},
		{"noise", "1% loss on every link for 5 minutes → not one withdrawal", noise},
		{"controller-restart", "kill -9 sdnoc while pop1/isp2 is withdrawn, restart → the ISPs keep the routes, nothing flaps, isp2 stays withdrawn", controllerRestart},
		rehearseExample("drain-pop1.yaml", "playbook drain-pop1 → pop1's traffic arrives at pop2, pop1's edge proxy drains; released → back"),
		rehearseExample("drain-pop1-gently.yaml", "playbook drain-pop1-gently → isp2 sees pop1's paths prepended, then they are withdrawn; released → back"),
		rehearseExample("disable-isp2-pop1.yaml", "playbook disable-isp2-pop1 → pop1's traffic leaves isp2; released → back"),
		rehearseExample("shift-pop1-range.yaml", "playbook shift-pop1-range → 203.0.113.0/25 arrives at pop2; released → back"),
	}
}

// Play runs the scenario on l: a fresh journal, sdnoc's daemon started
// and stopped, every impairment removed at the end, pass or fail.
func Play(ctx context.Context, l *Lab, sc Scenario) *Result {
	res := &Result{Scenario: sc.Name}
	began := time.Now()
	r := &Run{Lab: l, res: res}
	_ = os.Remove(filepath.Join(l.opts.Dir, "journal.jsonl"))
	err := func() error {
		d, err := l.StartDaemon(ctx)
		if err != nil {
			return err
		}
		r.Daemon = d
		if err := r.ready(ctx); err != nil {
			return err
		}
		return sc.run(ctx, r)
	}()
	for _, stop := range slices.Backward(r.stops) {
		stop()
	}
	if r.Daemon != nil {
		_ = r.Daemon.Stop(syscall.SIGTERM)
	}
	r.heal(context.WithoutCancel(ctx))
	res.Took = time.Since(began)
	if err != nil {
		res.Failure = err.Error()
		return res
	}
	res.Passed = true
	return res
}

// heal removes every impairment, restoring each link's capacity.
func (r *Run) heal(ctx context.Context) {
	for _, pop := range r.Lab.Plan.PoPs {
		for _, lk := range pop.Links {
			_ = r.Lab.SetLoss(ctx, lk.ID, 0)
			_ = r.Lab.Cut(ctx, lk.ID, false)
			_ = r.Lab.SetCapacity(ctx, lk.ID, r.Lab.capacity(lk.ID))
		}
	}
	for _, isp := range r.Lab.Plan.ISPs {
		_ = r.Lab.CutUpstream(ctx, isp.Name, false)
	}
}

func (r *Run) line(format string, a ...any) {
	r.res.Lines = append(r.res.Lines, fmt.Sprintf(format, a...))
}

func (r *Run) figure(name string, d time.Duration) {
	r.res.Figures = append(r.res.Figures, Figure{name, d.Round(time.Millisecond)})
}

// isp returns an ISP's router.
func (r *Run) isp(name string) *frr.Router {
	for _, isp := range r.Lab.Plan.ISPs {
		if isp.Name == name {
			return frr.Attach(frr.Config{Name: isp.Name, Dir: filepath.Join(r.Lab.opts.Dir, "frr", isp.Name)})
		}
	}
	return nil
}

// published returns the prefixes that the ISP of link id has learnt from
// sdnoc over that link.
func (r *Run) published(ctx context.Context, id string) ([]netip.Prefix, error) {
	_, lk, ok := r.Lab.Plan.Link(id)
	if !ok {
		return nil, fmt.Errorf("no link %s", id)
	}
	tab, err := r.isp(lk.ISP).Table(ctx)
	if err != nil {
		return nil, err
	}
	return frr.From(tab, lk.Local.Addr()), nil
}

// configured returns the prefixes the topology publishes on link id.
func (r *Run) configured(id string) []netip.Prefix {
	var out []netip.Prefix
	for _, p := range r.Lab.Plan.Topology.Prefixes {
		if slices.Contains(p.Publish, id) {
			out = append(out, p.Prefix)
		}
	}
	return out
}

// waitUntil polls cond every 100 ms until it holds, and returns how long
// that took; the error says what was last seen. cond must hold on two
// polls in a row: a router's table read once mid-update (a CI run saw
// isp2 lack a prefix for one read that sdnoc never withdrew) is not a
// state; the time returned is that of the first.
func waitUntil(ctx context.Context, timeout time.Duration, what string, cond func() (bool, string)) (time.Duration, error) {
	began := time.Now()
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	last := ""
	var first time.Duration
	held := false
	for {
		ok, seen := cond()
		switch {
		case ok && held:
			return first, nil
		case ok:
			first, held = time.Since(began), true
		default:
			held = false
		}
		last = seen
		select {
		case <-ctx.Done():
			return time.Since(began), fmt.Errorf("%s: not within %v; last seen: %s", what, timeout, last)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// holds reports whether link id's ISP holds exactly want from sdnoc.
func (r *Run) holds(ctx context.Context, id string, want []netip.Prefix) (bool, string) {
	got, err := r.published(ctx, id)
	if err != nil {
		return false, err.Error()
	}
	return sameSet(got, want), fmt.Sprintf("%s holds %v", id, got)
}

// configuredAll returns, per link, the prefixes the topology publishes
// on it.
func (r *Run) configuredAll() map[string][]netip.Prefix {
	want := map[string][]netip.Prefix{}
	for _, pop := range r.Lab.Plan.PoPs {
		for _, lk := range pop.Links {
			want[lk.ID] = r.configured(lk.ID)
		}
	}
	return want
}

// mismatches returns, for each link of want whose ISP does not hold
// exactly want[link] from sdnoc, what it holds; every ISP's table is read
// once.
func (r *Run) mismatches(ctx context.Context, want map[string][]netip.Prefix) []string {
	tables := map[string]map[netip.Prefix][]frr.Path{}
	var out []string
	for _, id := range slices.Sorted(maps.Keys(want)) {
		_, lk, ok := r.Lab.Plan.Link(id)
		if !ok {
			out = append(out, "no link "+id)
			continue
		}
		tab, read := tables[lk.ISP]
		if !read {
			var err error
			if tab, err = r.isp(lk.ISP).Table(ctx); err != nil {
				out = append(out, err.Error())
				continue
			}
			tables[lk.ISP] = tab
		}
		if got := frr.From(tab, lk.Local.Addr()); !sameSet(got, want[id]) {
			out = append(out, fmt.Sprintf("%s holds %v", id, got))
		}
	}
	return out
}

func sameSet(a, b []netip.Prefix) bool {
	if len(a) != len(b) {
		return false
	}
	for _, p := range a {
		if !slices.Contains(b, p) {
			return false
		}
	}
	return true
}

// ready waits until every link is healthy in sdnoc's eyes and every ISP
// holds its configured prefixes, learnt from this daemon: a route an ISP
// still keeps stale from the previous scenario's daemon (graceful restart)
// does not count. A CI run started controller-restart on such routes; when
// the new session came up, FRR dropped them for a moment and the
// scenario's watch counted that as a flap.
func (r *Run) ready(ctx context.Context) error {
	_, err := waitUntil(ctx, 60*time.Second, "lab ready (every link healthy, every ISP holding its prefixes)", func() (bool, string) {
		st, err := r.Daemon.Status(ctx)
		if err != nil {
			return false, err.Error()
		}
		for _, s := range st {
			if s.State != decisions.Healthy {
				return false, fmt.Sprintf("%s is %s: %s", s.Link, s.State, s.Reason)
			}
		}
		if m := r.mismatches(ctx, r.configuredAll()); len(m) > 0 {
			return false, m[0]
		}
		if s := r.stale(ctx); s != "" {
			return false, s
		}
		return true, ""
	})
	return err
}

// stale names a route some ISP keeps from sdnoc only for graceful restart,
// or returns "".
func (r *Run) stale(ctx context.Context) string {
	tables := map[string]map[netip.Prefix][]frr.Path{}
	for _, pop := range r.Lab.Plan.PoPs {
		for _, lk := range pop.Links {
			tab, read := tables[lk.ISP]
			if !read {
				var err error
				if tab, err = r.isp(lk.ISP).Table(ctx); err != nil {
					return err.Error()
				}
				tables[lk.ISP] = tab
			}
			for p, paths := range tab {
				for _, path := range paths {
					if path.Peer == lk.Local.Addr() && path.Stale {
						return fmt.Sprintf("%s: %s is kept stale (graceful restart), not yet refreshed by this daemon", lk.ID, p)
					}
				}
			}
		}
	}
	return ""
}

// traffic sends UDP at bps from the internet to dst for the rest of the
// scenario (iperf3).
func (r *Run) traffic(dst netip.Addr, bps uint64) error {
	name := "iperf3-client-" + dst.String()
	pid, err := r.Lab.daemon(name, r.Lab.Plan.NS("internet"), "iperf3", "-c", dst.String(), "-u",
		"-b", fmt.Sprint(bps), "-t", "3600", "-l", "1200")
	if err != nil {
		return err
	}
	r.stops = append(r.stops, func() { _ = syscall.Kill(pid, syscall.SIGTERM) })
	return nil
}

// rate measures, over d, the bit/s the PoP's border receives on link id.
func (r *Run) rate(ctx context.Context, id string, d time.Duration) (float64, error) {
	a, err := r.Lab.RxBytes(ctx, id)
	if err != nil {
		return 0, err
	}
	t0 := time.Now()
	select {
	case <-ctx.Done():
		return 0, ctx.Err()
	case <-time.After(d):
	}
	b, err := r.Lab.RxBytes(ctx, id)
	if err != nil {
		return 0, err
	}
	return float64(b-a) * 8 / time.Since(t0).Seconds(), nil
}

func ispLoss(ctx context.Context, r *Run) error {
	const bad, other = "pop1/isp2", "pop1/isp1"
	const bps = 8_000_000
	if err := r.traffic(netip.MustParseAddr("203.0.113.1"), bps); err != nil {
		return err
	}
	if _, err := waitUntil(ctx, 15*time.Second, "traffic through isp2 first", func() (bool, string) {
		v, err := r.rate(ctx, bad, time.Second)
		return err == nil && v > 0.8*bps, fmt.Sprintf("%.1f Mbit/s on %s", v/1e6, bad)
	}); err != nil {
		return err
	}
	began := time.Now()
	if err := r.Lab.SetLoss(ctx, bad, 10); err != nil {
		return err
	}
	took, err := waitUntil(ctx, 40*time.Second, "isp2 loses pop1's prefixes", func() (bool, string) { return r.holds(ctx, bad, nil) })
	if err != nil {
		return err
	}
	r.figure("10% loss → withdrawn at isp2", took)
	if _, err := waitUntil(ctx, 20*time.Second, "traffic arrives through isp1", func() (bool, string) {
		v, err := r.rate(ctx, other, time.Second)
		return err == nil && v > 0.8*bps, fmt.Sprintf("%.1f Mbit/s on %s", v/1e6, other)
	}); err != nil {
		return err
	}
	r.figure("10% loss → traffic through isp1", time.Since(began))
	if v, err := r.rate(ctx, bad, 2*time.Second); err != nil || v > 0.05*bps {
		return fmt.Errorf("%.1f Mbit/s still arrive through isp2 after the withdrawal (%v)", v/1e6, err)
	}
	if err := r.Lab.SetLoss(ctx, bad, 0); err != nil {
		return err
	}
	took, err = waitUntil(ctx, 90*time.Second, "isp2 gets pop1's prefixes back", func() (bool, string) { return r.holds(ctx, bad, r.configured(bad)) })
	if err != nil {
		return err
	}
	r.figure("healed → announced again at isp2", took)
	return nil
}

// ispDown: isp2 loses its upstream (its link to the internet is cut)
// while its BGP sessions with the PoPs stay up, the failure BGP alone
// does not show and sdnoc exists for: its probes through isp2 go dark,
// and both PoPs' prefixes must leave isp2's table within 2 s. (Cutting a
// PoP-ISP link instead takes the session down with it: the ISP then
// drops the routes itself, which would measure FRR, not sdnoc.)
func ispDown(ctx context.Context, r *Run) error {
	links := []string{"pop1/isp2", "pop2/isp2"}
	// One read of isp2's table a poll for both links, so that the poll
	// adds as little as it can to the time measured.
	gone := func() (bool, string) {
		tab, err := r.isp("isp2").Table(ctx)
		if err != nil {
			return false, err.Error()
		}
		var seen []string
		ok := true
		for _, id := range links {
			_, lk, _ := r.Lab.Plan.Link(id)
			got := frr.From(tab, lk.Local.Addr())
			ok = ok && len(got) == 0
			seen = append(seen, fmt.Sprintf("%s holds %v", id, got))
		}
		return ok, strings.Join(seen, "; ")
	}
	if err := r.Lab.CutUpstream(ctx, "isp2", true); err != nil {
		return err
	}
	took, err := waitUntil(ctx, 10*time.Second, "isp2 loses both PoPs' prefixes", gone)
	if err != nil {
		return err
	}
	r.figure("isp2 upstream cut → withdrawn at isp2 (both PoPs)", took)
	if took > 2*time.Second {
		return fmt.Errorf("withdrawn at isp2 after %v; want within 2 s", took)
	}
	if err := r.Lab.CutUpstream(ctx, "isp2", false); err != nil {
		return err
	}
	took, err = waitUntil(ctx, 90*time.Second, "isp2 gets both PoPs' prefixes back", func() (bool, string) {
		var seen []string
		ok := true
		for _, id := range links {
			h, s := r.holds(ctx, id, r.configured(id))
			ok = ok && h
			seen = append(seen, s)
		}
		return ok, strings.Join(seen, "; ")
	})
	if err != nil {
		return err
	}
	r.figure("upstream back → announced again at isp2", took)
	return nil
}

func lastLink(ctx context.Context, r *Run) error {
	links := []string{"pop1/isp2", "pop1/isp1"}
	last := "pop1/isp3"
	began := time.Now()
	for _, id := range links {
		if err := r.Lab.SetLoss(ctx, id, 30); err != nil {
			return err
		}
	}
	lost := ""
	check := func() {
		if ok, seen := r.holds(ctx, last, r.configured(last)); !ok && lost == "" {
			lost = seen
		}
	}
	took, err := waitUntil(ctx, 40*time.Second, "isp2 and isp1 lose pop1's prefixes", func() (bool, string) {
		check()
		a, sa := r.holds(ctx, links[0], nil)
		b, sb := r.holds(ctx, links[1], nil)
		return a && b, sa + "; " + sb
	})
	if err != nil {
		return err
	}
	r.figure("30% loss on two links → both withdrawn", took)
	if lost != "" {
		return fmt.Errorf("the last link lost prefixes meanwhile: %s", lost)
	}
	if err := r.Lab.SetLoss(ctx, last, 30); err != nil {
		return err
	}
	// Long enough for sdnoc to judge isp3 degraded and refuse.
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) && lost == "" {
		check()
		time.Sleep(200 * time.Millisecond)
	}
	if lost != "" {
		return fmt.Errorf("the last link lost prefixes when it degraded too: %s", lost)
	}
	st, err := r.Daemon.Status(ctx)
	if err != nil {
		return err
	}
	for _, s := range st {
		if s.Link == last && s.State != decisions.Degraded {
			return fmt.Errorf("%s is %s after 30 s of 30%% loss; the scenario wants it degraded and kept", last, s.State)
		}
	}
	r.figure("scenario", time.Since(began))
	return nil
}

func noise(ctx context.Context, r *Run) error {
	const d = 5 * time.Minute
	for _, pop := range r.Lab.Plan.PoPs {
		for _, lk := range pop.Links {
			if err := r.Lab.SetLoss(ctx, lk.ID, 1); err != nil {
				return err
			}
		}
	}
	deadline := time.Now().Add(d)
	want := r.configuredAll()
	for time.Now().Before(deadline) {
		if m := r.mismatches(ctx, want); len(m) > 0 {
			return fmt.Errorf("a withdrawal under 1%% loss: %s", m[0])
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Second):
		}
	}
	r.figure("1% loss on 6 links, no withdrawal for", d)
	return nil
}

// controllerRestart: with pop1/isp2 withdrawn, sdnoc is killed and
// started again. Graceful restart keeps the routes at the ISPs while it
// is away, the journal keeps isp2 withdrawn, and nothing flaps.
func controllerRestart(ctx context.Context, r *Run) error {
	const bad = "pop1/isp2"
	if err := r.Lab.SetLoss(ctx, bad, 10); err != nil {
		return err
	}
	if _, err := waitUntil(ctx, 40*time.Second, "isp2 loses pop1's prefixes", func() (bool, string) { return r.holds(ctx, bad, nil) }); err != nil {
		return err
	}
	// Watch every link's ISP from now on: each must hold the same set
	// throughout (isp2 none, the others all).
	want := r.configuredAll()
	want[bad] = nil
	var flaps []string
	watch := func() { flaps = append(flaps, r.mismatches(ctx, want)...) }
	watch()
	if len(flaps) > 0 {
		return fmt.Errorf("before the restart: %s", strings.Join(flaps, "; "))
	}
	if err := r.Daemon.Stop(syscall.SIGKILL); err != nil {
		return err
	}
	killed := time.Now()
	// Away for a while: longer than the hold time, so only graceful
	// restart keeps the routes.
	for time.Since(killed) < 12*time.Second {
		watch()
		time.Sleep(200 * time.Millisecond)
	}
	d, err := r.Lab.StartDaemon(ctx)
	if err != nil {
		return err
	}
	r.Daemon = d
	restarted := time.Now()
	for time.Since(restarted) < 20*time.Second {
		watch()
		time.Sleep(200 * time.Millisecond)
	}
	if len(flaps) > 0 {
		return fmt.Errorf("%d flaps while sdnoc restarted, e.g. %s", len(flaps), flaps[0])
	}
	st, err := d.Status(ctx)
	if err != nil {
		return err
	}
	for _, s := range st {
		if s.Link == bad && !s.Withdrawn {
			return errors.New("after the restart sdnoc no longer has pop1/isp2 withdrawn")
		}
	}
	r.figure("sdnoc away (kill -9), routes kept by graceful restart", restarted.Sub(killed))
	return nil
}

// congestion: traffic to two of pop1's prefixes through isp2 exceeds the
// link's capacity; sdnoc moves the fewest prefixes away, to isp1.
func congestion(ctx context.Context, r *Run) error {
	const id = "pop1/isp2"
	capacity := float64(r.Lab.capacity(id))
	big, small := netip.MustParseAddr("203.0.113.1"), netip.MustParseAddr("203.0.113.65")
	// 60% + 45% of the capacity offered: over it, and moving the larger
	// prefix alone brings the link back under the 90% target.
	if err := r.traffic(big, uint64(0.6*capacity)); err != nil {
		return err
	}
	began := time.Now()
	if err := r.traffic(small, uint64(0.45*capacity)); err != nil {
		return err
	}
	bigPfx, smallPfx := netip.MustParsePrefix("203.0.113.0/26"), netip.MustParsePrefix("203.0.113.64/26")
	var stranded []string
	took, err := waitUntil(ctx, 60*time.Second, "isp2 loses the larger prefix", func() (bool, string) {
		got, err := r.published(ctx, id)
		if err != nil {
			return false, err.Error()
		}
		for _, p := range []netip.Prefix{bigPfx, smallPfx} {
			in := slices.Contains(got, p)
			for _, other := range []string{"pop1/isp1", "pop1/isp3"} {
				o, _ := r.published(ctx, other)
				in = in || slices.Contains(o, p)
			}
			if !in {
				stranded = append(stranded, p.String())
			}
		}
		return !slices.Contains(got, bigPfx), fmt.Sprintf("isp2 holds %v", got)
	})
	if err != nil {
		return err
	}
	r.figure("over capacity → larger prefix gone from isp2", took)
	// Settle, then judge: the fewest moved (only the larger prefix), the
	// link under target, nothing stranded.
	time.Sleep(8 * time.Second)
	got, err := r.published(ctx, id)
	if err != nil {
		return err
	}
	if slices.Contains(got, bigPfx) || !slices.Contains(got, smallPfx) {
		return fmt.Errorf("isp2 holds %v; want %s moved and %s kept (the fewest prefixes)", got, bigPfx, smallPfx)
	}
	if len(stranded) > 0 {
		return fmt.Errorf("stranded meanwhile: %v", stranded)
	}
	v, err := r.rate(ctx, id, 3*time.Second)
	if err != nil {
		return err
	}
	if v > 0.9*capacity {
		return fmt.Errorf("isp2 still carries %.1f Mbit/s of %.0f after the move", v/1e6, capacity/1e6)
	}
	w, err := r.rate(ctx, "pop1/isp1", 3*time.Second)
	if err != nil {
		return err
	}
	if w < 0.5*capacity {
		return fmt.Errorf("isp1 carries only %.1f Mbit/s: the moved traffic did not arrive there", w/1e6)
	}
	r.figure("over capacity → settled under target", time.Since(began))
	return nil
}

// ResultsTable formats results as the Markdown table lab/RESULTS.md
// keeps.
func ResultsTable(results []*Result) string {
	var b strings.Builder
	b.WriteString("| scenario | result | measured | took |\n| --- | --- | --- | --- |\n")
	for _, r := range results {
		verdict := "pass"
		if !r.Passed {
			verdict = "FAIL: " + strings.ReplaceAll(r.Failure, "|", "/")
		}
		figs := make([]string, len(r.Figures))
		for i, f := range r.Figures {
			figs[i] = fmt.Sprintf("%s: %v", f.Name, f.Value)
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %v |\n", r.Scenario, verdict, strings.Join(figs, "<br>"), r.Took.Round(time.Second))
	}
	return b.String()
}
