package netlab

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/netip"
	"os/exec"
	"slices"
	"strings"
	"time"

	"github.com/sdnoc/sdnoc/controller/api"
	"github.com/sdnoc/sdnoc/playbooks"
)

// rehearsalBps is the UDP rate sent to each IPv4 prefix a rehearsed
// playbook moves: well under every lab link's capacity, well above the
// probes and BGP that also cross the links.
const rehearsalBps = 4_000_000

// Rehearse returns a scenario that plays pb on the lab through the
// daemon's API, as `sdnoc playbook` does: plan → traffic to the prefixes
// it withdraws → apply → the traffic leaves the links it withdraws from and
// arrives elsewhere (counted on the PoP borders' interfaces) → the edge
// proxies it drains report draining → release → the traffic comes back and
// the proxies serve again. A refused plan fails the scenario with the
// refusals.
func Rehearse(pb *playbooks.Playbook) Scenario {
	return Scenario{Name: "rehearse-" + pb.Name, About: fmt.Sprintf("%s playbook %s: plan, apply, traffic moved, release, traffic back", pb.Kind, pb.Name),
		run: func(ctx context.Context, r *Run) error { return rehearse(ctx, r, pb) }}
}

// rehearseExample rehearses a shipped example playbook.
func rehearseExample(name, about string) Scenario {
	return Scenario{Name: strings.TrimSuffix(name, ".yaml"), About: about, run: func(ctx context.Context, r *Run) error {
		pb, err := playbooks.Example(name)
		if err != nil {
			return err
		}
		return rehearse(ctx, r, pb)
	}}
}

func rehearse(ctx context.Context, r *Run, pb *playbooks.Playbook) error {
	if pb.Kind == playbooks.Restore {
		return fmt.Errorf("%s is a restore: rehearse the playbook it would release; its release is part of the rehearsal", pb.Name)
	}
	cl, err := api.NewClient(r.Lab.APISocket(), "")
	if err != nil {
		return err
	}
	plan, err := cl.Plan(ctx, pb)
	if err != nil {
		return fmt.Errorf("plan: %w", err)
	}
	if len(plan.Refusals) > 0 {
		return fmt.Errorf("the plan refuses %s: %s", pb.Name, strings.Join(plan.Refusals, "; "))
	}
	losing := map[string]bool{}
	var dsts []netip.Addr
	for _, s := range plan.Sessions {
		if len(s.Withdraw) > 0 {
			losing[s.Link] = true
		}
		for _, p := range s.Withdraw {
			if a := p.Masked().Addr().Next(); p.Addr().Is4() && !slices.Contains(dsts, a) {
				dsts = append(dsts, a)
			}
		}
	}
	if len(dsts) == 0 {
		return fmt.Errorf("%s withdraws no IPv4 prefix: nothing for the lab's traffic to show", pb.Name)
	}
	tctx, stop := context.WithCancel(ctx)
	defer stop()
	for _, d := range dsts {
		if err := r.Lab.blast(tctx, d, rehearsalBps); err != nil {
			return err
		}
	}
	want := float64(len(dsts) * rehearsalBps)
	sum := func(rates map[string]float64, pick func(string) bool) float64 {
		var t float64
		for id, v := range rates {
			if pick(id) {
				t += v
			}
		}
		return t
	}
	isLosing := func(id string) bool { return losing[id] }
	anyLink := func(string) bool { return true }
	// An anycast prefix's traffic may arrive at another PoP from the
	// start: what counts is that all of it arrives, and that some of it
	// takes the links the playbook withdraws from.
	var before map[string]float64
	if _, err := waitUntil(ctx, 20*time.Second, "the rehearsal's traffic arrives, some through the links the playbook withdraws from", func() (bool, string) {
		before, err = r.rates(ctx, time.Second)
		if err != nil {
			return false, err.Error()
		}
		in, total := sum(before, isLosing), sum(before, anyLink)
		return total > 0.8*want && in > 0.8*rehearsalBps, fmt.Sprintf("%.1f of %.1f Mbit/s arrive, %.1f on %s", total/1e6, want/1e6, in/1e6,
			strings.Join(slices.Sorted(maps.Keys(losing)), ", "))
	}); err != nil {
		return err
	}
	was := sum(before, isLosing)
	r.line("plan: %d sessions change, %d edge proxies drain", len(plan.Sessions), len(plan.Proxies))
	applied := time.Now()
	if _, err := cl.Apply(ctx, pb); err != nil {
		return fmt.Errorf("apply: %w", err)
	}
	var prepended map[string]float64
	if plan.Prepend > 0 {
		// The ISP of the first prepended link must see the longer path
		// before the withdrawals come.
		_, lk, ok := r.Lab.Plan.Link(plan.PrependLinks[0])
		if !ok {
			return fmt.Errorf("prepend on %s: not a lab link", plan.PrependLinks[0])
		}
		want := plan.Prepend + 1
		took, err := waitUntil(ctx, plan.PrependFor, fmt.Sprintf("%s sees %d copies of the edge's AS from %s", lk.ISP, want, plan.PrependLinks[0]), func() (bool, string) {
			tab, err := r.isp(lk.ISP).Table(ctx)
			if err != nil {
				return false, err.Error()
			}
			n, short := 0, ""
			for p, paths := range tab {
				for _, path := range paths {
					if path.Peer == lk.Local.Addr() {
						n++
						if len(path.ASPath) != want {
							short = fmt.Sprintf("%s has AS path %v", p, path.ASPath)
						}
					}
				}
			}
			return n > 0 && short == "", fmt.Sprintf("%d paths from %s; %s", n, lk.Local.Addr(), short)
		})
		if err != nil {
			return err
		}
		r.figure("apply → prepended path at "+lk.ISP, took)
		if prepended, err = r.rates(ctx, 500*time.Millisecond); err != nil {
			return err
		}
	}
	var during map[string]float64
	if _, err := waitUntil(ctx, 30*time.Second+plan.PrependFor, "the traffic leaves the withdrawn links and arrives elsewhere", func() (bool, string) {
		during, err = r.rates(ctx, 250*time.Millisecond)
		if err != nil {
			return false, err.Error()
		}
		left, total := sum(during, isLosing), sum(during, anyLink)
		return left < 0.05*want && total > 0.8*want, fmt.Sprintf("%.1f Mbit/s still on the withdrawn links, %.1f of %.1f arriving", left/1e6, total/1e6, want/1e6)
	}); err != nil {
		return err
	}
	r.figure("apply → traffic moved (interface counters)", time.Since(applied))
	for _, a := range plan.Proxies {
		if d, err := r.Lab.ProxyDraining(ctx, a); err != nil || !d {
			return fmt.Errorf("edge proxy %s: draining %v (%v) after apply; the playbook drains it", a, d, err)
		}
	}
	released := time.Now()
	if err := cl.Release(ctx, pb.Name, api.Release{Author: "rehearsal", Reason: "rehearsal over"}); err != nil {
		return fmt.Errorf("release: %w", err)
	}
	var after map[string]float64
	if _, err := waitUntil(ctx, 30*time.Second, "the traffic comes back", func() (bool, string) {
		after, err = r.rates(ctx, 250*time.Millisecond)
		if err != nil {
			return false, err.Error()
		}
		back := sum(after, isLosing)
		return back > 0.8*was, fmt.Sprintf("%.1f of the %.1f Mbit/s back on %s", back/1e6, was/1e6, strings.Join(slices.Sorted(maps.Keys(losing)), ", "))
	}); err != nil {
		return err
	}
	r.figure("release → traffic back", time.Since(released))
	for _, a := range plan.Proxies {
		if d, err := r.Lab.ProxyDraining(ctx, a); err != nil || d {
			return fmt.Errorf("edge proxy %s: draining %v (%v) after release; it should serve again", a, d, err)
		}
	}
	for _, id := range slices.Sorted(maps.Keys(before)) {
		if before[id]+during[id]+after[id]+prepended[id] > 0.05*want {
			if prepended != nil {
				r.line("%-10s %6.1f → %6.1f → %6.1f → %6.1f Mbit/s (before → prepended → withdrawn → released)", id,
					before[id]/1e6, prepended[id]/1e6, during[id]/1e6, after[id]/1e6)
				continue
			}
			r.line("%-10s %6.1f → %6.1f → %6.1f Mbit/s (before → applied → released)", id, before[id]/1e6, during[id]/1e6, after[id]/1e6)
		}
	}
	return nil
}

// rates measures, over d, the bit/s each PoP border receives on each of
// its ISP links.
func (r *Run) rates(ctx context.Context, d time.Duration) (map[string]float64, error) {
	read := func() (map[string]uint64, error) {
		out := map[string]uint64{}
		for _, pop := range r.Lab.Plan.PoPs {
			for _, lk := range pop.Links {
				v, err := r.Lab.RxBytes(ctx, lk.ID)
				if err != nil {
					return nil, err
				}
				out[lk.ID] = v
			}
		}
		return out, nil
	}
	a, err := read()
	if err != nil {
		return nil, err
	}
	t0 := time.Now()
	select {
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-time.After(d):
	}
	b, err := read()
	if err != nil {
		return nil, err
	}
	secs := time.Since(t0).Seconds()
	rates := map[string]float64{}
	for id := range b {
		rates[id] = float64(b[id]-a[id]) * 8 / secs
	}
	return rates, nil
}

// ProxyDraining asks the lab's edge proxy at admin (a border's management
// address) whether it drains, from inside its PoP's namespace.
func (l *Lab) ProxyDraining(ctx context.Context, admin string) (bool, error) {
	for _, pop := range l.Plan.PoPs {
		for _, ap := range pop.Proxies {
			if ap.String() != admin {
				continue
			}
			out, err := exec.CommandContext(ctx, "ip", "netns", "exec", l.Plan.NS(pop.Name), l.opts.Sdnoc, "edge", "status", "--admin", admin, "--json").Output()
			if err != nil {
				return false, fmt.Errorf("edge status %s: %w", admin, err)
			}
			var st struct{ Draining bool }
			if err := json.Unmarshal(out, &st); err != nil {
				return false, fmt.Errorf("edge status %s: %w: %s", admin, err, out)
			}
			return st.Draining, nil
		}
	}
	return false, fmt.Errorf("no edge proxy %s in the lab", admin)
}
