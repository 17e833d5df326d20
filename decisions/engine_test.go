package decisions

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"
)

var (
	pfxA = netip.MustParsePrefix("198.51.100.0/24")
	pfxB = netip.MustParsePrefix("203.0.113.0/24")
	pfxC = netip.MustParsePrefix("2001:db8:100::/48")
)

// fastThresholds are short enough for readable tests but keep the shape of
// the defaults.
func fastThresholds() Thresholds {
	t := DefaultThresholds()
	t.LossWindow = 3 * time.Second
	t.Enter = time.Second
	t.Exit = 3 * time.Second
	t.HoldDown = 5 * time.Second
	return t
}

// onePoP is pop1 with three links and three prefixes on all of them.
func onePoP(t *testing.T, th Thresholds, lim Limits) *Engine {
	t.Helper()
	return mustEngine(t, th, lim, Snapshot{})
}

func mustEngine(t *testing.T, th Thresholds, lim Limits, snap Snapshot) *Engine {
	t.Helper()
	ids := []string{"pop1/isp1", "pop1/isp2", "pop1/isp3"}
	nw := Network{Limits: lim}
	for _, id := range ids {
		nw.Links = append(nw.Links, Link{ID: id, PoP: "pop1", Thresholds: th})
	}
	for _, p := range []netip.Prefix{pfxA, pfxB, pfxC} {
		nw.Prefixes = append(nw.Prefixes, Prefix{Prefix: p, Links: ids})
	}
	e, err := New(nw, snap)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func intentsFor(ds []Decision, action Action, link string) []Intent {
	var out []Intent
	for _, d := range ds {
		for _, in := range d.Intents {
			if in.Action == action && in.Link == link {
				out = append(out, in)
			}
		}
	}
	return out
}

func TestBaselineAnnouncesEverything(t *testing.T) {
	e := onePoP(t, fastThresholds(), DefaultLimits())
	s := newSim(e, 1, "pop1/isp1", "pop1/isp2", "pop1/isp3")
	ds := s.run(3 * time.Second)
	for _, id := range []string{"pop1/isp1", "pop1/isp2", "pop1/isp3"} {
		ins := intentsFor(ds, Announce, id)
		if len(ins) != 1 || len(ins[0].Prefixes) != 3 || ins[0].Rule != RulePublish {
			t.Fatalf("%s: announce intents = %+v; want one with 3 prefixes, rule publish", id, ins)
		}
		if got := s.published(id); len(got) != 3 {
			t.Fatalf("%s publishes %v", id, got)
		}
	}
	for _, st := range e.Status() {
		if st.State != Healthy {
			t.Errorf("%s is %s, want healthy", st.Link, st.State)
		}
	}
}

func TestDegradeWithdrawsThenRestores(t *testing.T) {
	th := fastThresholds()
	e := onePoP(t, th, DefaultLimits())
	s := newSim(e, 2, "pop1/isp1", "pop1/isp2", "pop1/isp3")
	s.run(5 * time.Second)
	s.link("pop1/isp2").loss = 0.3
	start := s.now
	ds := s.run(6 * time.Second)
	wd := intentsFor(ds, Withdraw, "pop1/isp2")
	if len(wd) != 1 || len(wd[0].Prefixes) != 3 || wd[0].Rule != RuleDegraded {
		t.Fatalf("withdraw intents on isp2 = %+v; want one for all 3 prefixes", wd)
	}
	if wd[0].Evidence.Window.LossPct <= th.LossPct || wd[0].Evidence.Thresholds != th || !strings.Contains(wd[0].Reason, "loss") {
		t.Errorf("evidence does not explain the withdrawal: %+v", wd[0])
	}
	var at time.Time
	for _, d := range ds {
		if len(d.Changes) > 0 {
			at = d.At
		}
	}
	if took := at.Sub(start); took < th.Enter || took > th.Enter+th.LossWindow {
		t.Errorf("withdrawn %v after loss began; want between enter (%v) and enter+window", took, th.Enter)
	}
	for _, id := range []string{"pop1/isp1", "pop1/isp3"} {
		if len(intentsFor(ds, Withdraw, id)) != 0 {
			t.Errorf("healthy %s got a withdrawal", id)
		}
	}
	if got := s.published("pop1/isp2"); len(got) != 0 {
		t.Fatalf("isp2 still publishes %v", got)
	}
	// Heal: nothing comes back before the bad samples leave the window
	// and health has held for exit.
	s.link("pop1/isp2").loss = 0
	healed := s.now
	ds = s.run(th.Exit)
	if len(intentsFor(ds, Announce, "pop1/isp2")) != 0 {
		t.Fatalf("restored before exit (%v) had passed", th.Exit)
	}
	ds = s.run(th.LossWindow + th.HoldDown)
	an := intentsFor(ds, Announce, "pop1/isp2")
	if len(an) != 1 || len(an[0].Prefixes) != 3 {
		t.Fatalf("announce intents after healing = %+v", an)
	}
	var back time.Time
	for _, d := range ds {
		for _, c := range d.Changes {
			if !c.Withdrawn {
				back = d.At
			}
		}
	}
	if back.Sub(healed) < th.Exit {
		t.Errorf("restored %v after healing, before exit %v", back.Sub(healed), th.Exit)
	}
}

func TestShortBurstIsIgnored(t *testing.T) {
	th := fastThresholds()
	th.Enter = 3 * time.Second
	e := onePoP(t, th, DefaultLimits())
	s := newSim(e, 3, "pop1/isp1", "pop1/isp2", "pop1/isp3")
	s.run(5 * time.Second)
	s.link("pop1/isp1").loss = 0.5
	s.run(time.Second) // bad for about a second: shorter than enter
	s.link("pop1/isp1").loss = 0
	ds := s.run(20 * time.Second)
	if n := countWithdrawals(s.decisions); n != 0 {
		t.Fatalf("a 1 s burst caused %d withdrawals: %+v", n, ds)
	}
}

func TestHoldDownDelaysSecondWithdrawal(t *testing.T) {
	th := fastThresholds()
	th.HoldDown = 20 * time.Second
	th.Exit = 2 * time.Second
	e := onePoP(t, th, DefaultLimits())
	s := newSim(e, 4, "pop1/isp1", "pop1/isp2", "pop1/isp3")
	s.run(5 * time.Second)
	l := s.link("pop1/isp1")
	l.loss = 0.4
	s.run(5 * time.Second)
	l.loss = 0
	s.run(30 * time.Second) // withdrawn then restored (hold-down passed)
	if n := countWithdrawals(s.decisions); n != 1 {
		t.Fatalf("first cycle: %d withdrawals, want 1", n)
	}
	var restored time.Time
	for _, d := range s.decisions {
		for _, c := range d.Changes {
			if !c.Withdrawn {
				restored = d.At
			}
		}
	}
	if restored.IsZero() {
		t.Fatal("never restored")
	}
	l.loss = 0.4
	s.run(restored.Add(th.HoldDown).Sub(s.now) - time.Second)
	if n := countWithdrawals(s.decisions); n != 1 {
		t.Fatalf("withdrawn again %v after restore, inside hold-down %v", s.now.Sub(restored), th.HoldDown)
	}
	s.run(5 * time.Second)
	if n := countWithdrawals(s.decisions); n != 2 {
		t.Fatalf("after hold-down: %d withdrawals, want 2", n)
	}
}

func TestBlackholeSkipsEnter(t *testing.T) {
	th := fastThresholds()
	th.Enter = 10 * time.Second
	e := onePoP(t, th, DefaultLimits())
	s := newSim(e, 5, "pop1/isp1", "pop1/isp2", "pop1/isp3")
	s.run(5 * time.Second)
	s.link("pop1/isp1").dark = true
	start := s.now
	s.run(3 * time.Second)
	var at time.Time
	for _, d := range s.decisions {
		for _, c := range d.Changes {
			if c.Link == "pop1/isp1" && c.Withdrawn {
				at = d.At
			}
		}
	}
	if at.IsZero() || at.Sub(start) > th.DownAfter+s.window {
		t.Fatalf("dark link withdrawn at %v after start (zero: never); want within down_after+window", at.Sub(start))
	}
}

func TestCapLimitsWithdrawals(t *testing.T) {
	th := fastThresholds()
	lim := Limits{MaxWithdrawals: 1, WithdrawalWindow: time.Minute}
	e := onePoP(t, th, lim)
	s := newSim(e, 6, "pop1/isp1", "pop1/isp2", "pop1/isp3")
	s.run(5 * time.Second)
	s.link("pop1/isp1").loss = 0.5
	s.link("pop1/isp2").loss = 0.5
	s.run(10 * time.Second)
	if n := countWithdrawals(s.decisions); n != 1 {
		t.Fatalf("%d withdrawals with max_withdrawals 1", n)
	}
	var caps []Refusal
	for _, d := range s.decisions {
		for _, r := range d.Refusals {
			if r.Rule == "cap" {
				caps = append(caps, r)
			}
		}
	}
	if len(caps) != 1 || !strings.Contains(caps[0].Reason, "cap reached") {
		t.Fatalf("cap refusals = %+v; want exactly one, reported once", caps)
	}
	// Once the window has slid past the first withdrawal, the second link
	// goes too.
	s.run(time.Minute)
	if n := countWithdrawals(s.decisions); n != 2 {
		t.Fatalf("after the cap window: %d withdrawals, want 2", n)
	}
}

func TestUnknownNeverWithdraws(t *testing.T) {
	th := fastThresholds()
	e := onePoP(t, th, DefaultLimits())
	s := newSim(e, 7, "pop1/isp1", "pop1/isp2", "pop1/isp3")
	s.run(5 * time.Second)
	// isp1 can no longer send probes; isp2 stops reporting at all.
	s.link("pop1/isp1").unsendable = true
	s.links = slices.DeleteFunc(s.links, func(l *simLink) bool { return l.id == "pop1/isp2" })
	ds := s.run(time.Minute)
	if n := countWithdrawals(ds); n != 0 {
		t.Fatalf("unknown links caused %d withdrawals", n)
	}
	for _, id := range []string{"pop1/isp1", "pop1/isp2"} {
		if len(intentsFor(ds, Withdraw, id)) != 0 {
			t.Errorf("%s withdrawn while unknown", id)
		}
	}
	last := e.Step(s.now)
	kinds := map[string]string{}
	for _, a := range last.Alerts {
		kinds[a.Link] = a.Kind + ": " + a.Text
	}
	if !strings.Contains(kinds["pop1/isp1"], "cannot be sent") || !strings.Contains(kinds["pop1/isp2"], "stale") {
		t.Fatalf("alerts = %v; want unknown alerts naming the cause", kinds)
	}
	for _, st := range e.Status() {
		if st.Link != "pop1/isp3" && st.State != Unknown {
			t.Errorf("%s is %s, want unknown", st.Link, st.State)
		}
	}
}

func TestUnknownKeepsWithdrawnLinkWithdrawn(t *testing.T) {
	// Fail static works both ways: a withdrawn link whose data goes
	// missing is not restored either.
	th := fastThresholds()
	e := onePoP(t, th, DefaultLimits())
	s := newSim(e, 8, "pop1/isp1", "pop1/isp2", "pop1/isp3")
	s.run(3 * time.Second)
	s.link("pop1/isp1").loss = 0.5
	s.run(5 * time.Second)
	s.link("pop1/isp1").unsendable = true
	ds := s.run(time.Minute)
	if len(intentsFor(ds, Announce, "pop1/isp1")) != 0 {
		t.Fatal("withdrawn link restored while its state was unknown")
	}
}

func TestNeverStrandKeepsLastLink(t *testing.T) {
	th := fastThresholds()
	e := onePoP(t, th, DefaultLimits())
	s := newSim(e, 9, "pop1/isp1", "pop1/isp2", "pop1/isp3")
	s.run(5 * time.Second)
	s.link("pop1/isp2").loss = 0.3
	s.run(6 * time.Second)
	s.link("pop1/isp1").dark = true
	s.run(4 * time.Second)
	if got := s.published("pop1/isp1"); len(got) != 0 {
		t.Fatalf("dark isp1 still publishes %v", got)
	}
	s.link("pop1/isp3").loss = 0.3
	ds := s.run(10 * time.Second)
	if got := s.published("pop1/isp3"); len(got) != 3 {
		t.Fatalf("isp3, the last link, publishes %v; want all 3 prefixes", got)
	}
	if len(intentsFor(ds, Withdraw, "pop1/isp3")) != 0 {
		t.Fatalf("a withdrawal from the last link was emitted: %+v", intentsFor(ds, Withdraw, "pop1/isp3"))
	}
	var refusals []Refusal
	for _, d := range ds {
		for _, r := range d.Refusals {
			if r.Rule == "never-strand" {
				refusals = append(refusals, r)
			}
		}
	}
	if len(refusals) != 1 || refusals[0].KeptOn != "pop1/isp3" || refusals[0].Prefixes != 3 ||
		!strings.Contains(refusals[0].Reason, "strand") {
		t.Fatalf("never-strand refusals = %+v; want one, explained, kept on isp3", refusals)
	}
	snap := e.Snapshot()
	if !snap.Withdrawn["pop1/isp3"] || len(snap.Keepers["pop1/isp3"]) != 3 {
		t.Fatalf("snapshot = %+v; want isp3 withdrawn but keeping 3 prefixes", snap)
	}
	// Heal everything: every link carries everything again.
	for _, l := range s.links {
		l.loss, l.dark = 0, false
	}
	s.run(time.Minute)
	for _, id := range []string{"pop1/isp1", "pop1/isp2", "pop1/isp3"} {
		if got := s.published(id); len(got) != 3 {
			t.Errorf("after healing %s publishes %v", id, got)
		}
	}
}

func TestAllBadAtOnceKeepsLeastBad(t *testing.T) {
	th := fastThresholds()
	e := onePoP(t, th, DefaultLimits())
	s := newSim(e, 10, "pop1/isp1", "pop1/isp2", "pop1/isp3")
	s.run(5 * time.Second)
	s.link("pop1/isp1").loss = 0.6
	s.link("pop1/isp2").loss = 0.2
	s.link("pop1/isp3").dark = true
	s.run(10 * time.Second)
	if got := s.published("pop1/isp2"); len(got) != 3 {
		t.Fatalf("least bad isp2 publishes %v", got)
	}
	for _, id := range []string{"pop1/isp1", "pop1/isp3"} {
		if got := s.published(id); len(got) != 0 {
			t.Errorf("%s publishes %v", id, got)
		}
	}
}

func TestSessionDownCountsAsNotCarrying(t *testing.T) {
	th := fastThresholds()
	e := onePoP(t, th, DefaultLimits())
	s := newSim(e, 11, "pop1/isp1", "pop1/isp2", "pop1/isp3")
	s.run(5 * time.Second)
	for _, id := range []string{"pop1/isp2", "pop1/isp3"} {
		if err := e.SetSession(id, false); err != nil {
			t.Fatal(err)
		}
	}
	s.link("pop1/isp1").loss = 0.5
	s.run(10 * time.Second)
	if got := s.published("pop1/isp1"); len(got) != 3 {
		t.Fatalf("isp1 is the only link with a session but publishes %v", got)
	}
}

func TestUnconfirmedIntentIsRetried(t *testing.T) {
	e := onePoP(t, fastThresholds(), DefaultLimits())
	s := newSim(e, 12, "pop1/isp1", "pop1/isp2", "pop1/isp3")
	s.confirm = false
	ds := s.run(2 * time.Second)
	if n := len(intentsFor(ds, Announce, "pop1/isp1")); n < 3 {
		t.Fatalf("an intent the actuator never confirmed was emitted %d times; want it every step", n)
	}
	if err := e.SetApplied("pop1/isp1", []netip.Prefix{pfxA, pfxB, pfxC}); err != nil {
		t.Fatal(err)
	}
	if d := e.Step(s.now); len(intentsFor([]Decision{d}, Announce, "pop1/isp1")) != 0 {
		t.Fatal("still announcing after the actuator reported the prefixes applied")
	}
}

func TestSnapshotRestoresWithdrawnLinks(t *testing.T) {
	th := fastThresholds()
	snap := Snapshot{Withdrawn: map[string]bool{"pop1/isp2": true}}
	e := mustEngine(t, th, DefaultLimits(), snap)
	// The first step, before any sample, already knows isp2 is withdrawn:
	// the restart announces nothing there (invariant 7).
	d := e.Step(t0)
	if len(intentsFor([]Decision{d}, Announce, "pop1/isp2")) != 0 {
		t.Fatal("restored withdrawn link was announced at start")
	}
	if len(intentsFor([]Decision{d}, Announce, "pop1/isp1")) != 1 {
		t.Fatal("healthy link not announced at start")
	}
	// Good data restores it only after exit.
	s := newSim(e, 13, "pop1/isp1", "pop1/isp2", "pop1/isp3")
	ds := s.run(th.Exit - time.Second)
	if len(intentsFor(ds, Announce, "pop1/isp2")) != 0 {
		t.Fatal("restored before exit")
	}
	ds = s.run(3 * time.Second)
	if len(intentsFor(ds, Announce, "pop1/isp2")) != 1 {
		t.Fatal("not restored after exit")
	}
}

func TestSnapshotKeepsKeeper(t *testing.T) {
	th := fastThresholds()
	snap := Snapshot{
		Withdrawn: map[string]bool{"pop1/isp1": true, "pop1/isp2": true, "pop1/isp3": true},
		Keepers:   map[string][]netip.Prefix{"pop1/isp3": {pfxA, pfxB, pfxC}},
	}
	e := mustEngine(t, th, DefaultLimits(), snap)
	d := e.Step(t0)
	an := intentsFor([]Decision{d}, Announce, "pop1/isp3")
	if len(an) != 1 || len(d.Intents) != 1 || an[0].Rule != RuleLastLink {
		t.Fatalf("intents at restart = %+v; want only isp3 announcing what it kept", d.Intents)
	}
}

func TestNetworkValidate(t *testing.T) {
	th := DefaultThresholds()
	bad := th
	bad.LossPct = 0
	tests := map[string]struct {
		nw   Network
		want string
	}{
		"duplicate link": {Network{Limits: DefaultLimits(), Links: []Link{{ID: "a/1", PoP: "a", Thresholds: th}, {ID: "a/1", PoP: "a", Thresholds: th}}}, "duplicate link"},
		"unknown link":   {Network{Limits: DefaultLimits(), Links: []Link{{ID: "a/1", PoP: "a", Thresholds: th}}, Prefixes: []Prefix{{Prefix: pfxA, Links: []string{"a/2"}}}}, `unknown link "a/2"`},
		"bad threshold":  {Network{Limits: DefaultLimits(), Links: []Link{{ID: "a/1", PoP: "a", Thresholds: bad}}}, "loss_pct"},
		"no limits":      {Network{Links: []Link{{ID: "a/1", PoP: "a", Thresholds: th}}}, "max_withdrawals"},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := New(tt.nw, Snapshot{})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("New() error = %v; want it to mention %q", err, tt.want)
			}
		})
	}
}

func ExampleEngine_Step() {
	th := DefaultThresholds()
	nw := Network{Limits: DefaultLimits(), Links: []Link{{ID: "ams/isp1", PoP: "ams", Thresholds: th}}}
	nw.Prefixes = []Prefix{{Prefix: netip.MustParsePrefix("198.51.100.0/24"), Links: []string{"ams/isp1"}}}
	e, _ := New(nw, Snapshot{})
	d := e.Step(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	for _, in := range d.Intents {
		fmt.Println(in.Action, in.Link, in.Prefixes, in.Rule)
	}
	// Output: announce ams/isp1 [198.51.100.0/24] publish
}

func TestRecoveringKeeperIsNotFlapped(t *testing.T) {
	// isp3 keeps the prefixes while all links are bad; when everything
	// heals, another link is restored first. isp3, already measuring
	// good, must not withdraw and re-announce in between.
	th := fastThresholds()
	e := onePoP(t, th, DefaultLimits())
	s := newSim(e, 14, "pop1/isp1", "pop1/isp2", "pop1/isp3")
	s.run(5 * time.Second)
	s.link("pop1/isp2").loss = 0.3
	s.run(6 * time.Second)
	s.link("pop1/isp1").dark = true
	s.run(4 * time.Second)
	s.link("pop1/isp3").loss = 0.3
	s.run(6 * time.Second)
	if got := s.published("pop1/isp3"); len(got) != 3 {
		t.Fatalf("keeper isp3 publishes %v", got)
	}
	// isp2 heals a second before the others, so it is restored while
	// isp3 already measures good but still waits for exit.
	s.link("pop1/isp2").loss = 0
	ds := s.run(time.Second)
	s.link("pop1/isp1").dark = false
	s.link("pop1/isp3").loss = 0
	ds = append(ds, s.run(time.Minute)...)
	var order []string
	for _, d := range ds {
		for _, c := range d.Changes {
			order = append(order, c.Link)
		}
	}
	if len(order) == 0 || order[0] == "pop1/isp3" {
		t.Fatalf("restore order %v: the scenario needs another link back before the keeper", order)
	}
	if w := intentsFor(ds, Withdraw, "pop1/isp3"); len(w) != 0 {
		t.Fatalf("recovering keeper isp3 was withdrawn: %+v", w)
	}
	for _, id := range []string{"pop1/isp1", "pop1/isp2", "pop1/isp3"} {
		if got := s.published(id); len(got) != 3 {
			t.Errorf("%s publishes %v after healing", id, got)
		}
	}
}

func TestNoUnknownAlertBeforeFirstSamplesAreDue(t *testing.T) {
	th := fastThresholds()
	e := onePoP(t, th, DefaultLimits())
	if d := e.Step(t0); len(d.Alerts) != 0 {
		t.Fatalf("alerts at the first step: %+v", d.Alerts)
	}
	// A first sample with too few probes to judge is still the start.
	if err := e.Observe(Sample{Link: "pop1/isp1", End: t0.Add(500 * time.Millisecond), Known: true, Sent: 5, Received: 5}); err != nil {
		t.Fatal(err)
	}
	if d := e.Step(t0.Add(time.Second)); len(d.Alerts) != 0 {
		t.Fatalf("alerts while the first window fills: %+v", d.Alerts)
	}
	d := e.Step(t0.Add(th.StaleAfter + time.Millisecond))
	if len(d.Alerts) != 3 || d.Alerts[0].Kind != "unknown" {
		t.Fatalf("alerts once samples are overdue = %+v; want one unknown alert per link", d.Alerts)
	}
}

func TestSessionsDownAtStartRaiseNoStrandingAlert(t *testing.T) {
	e := onePoP(t, fastThresholds(), DefaultLimits())
	for _, id := range []string{"pop1/isp1", "pop1/isp2", "pop1/isp3"} {
		if err := e.SetSession(id, false); err != nil {
			t.Fatal(err)
		}
	}
	d := e.Step(t0)
	for _, a := range d.Alerts {
		if a.Kind == "stranding" {
			t.Fatalf("stranding alert with no link withdrawn: %s", a.Text)
		}
	}
}
