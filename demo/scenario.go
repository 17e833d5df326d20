package demo

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"time"

	"github.com/sdnoc/sdnoc/decisions"
)

// poll is how often the ISPs' RIBs are read while waiting.
const poll = 20 * time.Millisecond

func (r *runner) step(s Step, began time.Time) {
	s.ElapsedMS = ms(time.Since(began))
	verdict := "ok"
	if !s.Passed {
		verdict = "FAILED"
	}
	r.line(Line{Kind: "verdict", Text: fmt.Sprintf("%s: %s", s.Name, verdict), Evidence: "expected " + s.Expected + "; observed " + s.Observed})
	r.mu.Lock()
	r.report.Steps = append(r.report.Steps, s)
	r.mu.Unlock()
}

// ribs reads every ISP's RIB.
func (r *runner) ribs(ctx context.Context) ([][]netip.Prefix, error) {
	out := make([][]netip.Prefix, len(r.lab.ISPs))
	for i, x := range r.lab.ISPs {
		rt, err := x.Router.Routes(ctx)
		if err != nil {
			return nil, fmt.Errorf("read %s's RIB: %w", x.Name, err)
		}
		out[i] = rt
	}
	return out, nil
}

func (r *runner) full(rt []netip.Prefix) bool {
	for _, p := range r.prefixes {
		if !slices.Contains(rt, p) {
			return false
		}
	}
	return true
}

func (r *runner) empty(rt []netip.Prefix) bool {
	for _, p := range r.prefixes {
		if slices.Contains(rt, p) {
			return false
		}
	}
	return true
}

// waitFor polls the RIBs until cond holds or timeout passes, and returns
// how long it took.
func (r *runner) waitFor(ctx context.Context, timeout time.Duration, cond func([][]netip.Prefix) bool) (time.Duration, [][]netip.Prefix, bool) {
	began := time.Now()
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for {
		rs, err := r.ribs(ctx)
		if err == nil && cond(rs) {
			return time.Since(began), rs, true
		}
		select {
		case <-ctx.Done():
			return time.Since(began), rs, false
		case <-time.After(poll):
		}
	}
}

func (r *runner) ribSummary(rs [][]netip.Prefix) string {
	s := ""
	for i, x := range r.lab.ISPs {
		if i > 0 {
			s += ", "
		}
		n := 0
		if i < len(rs) {
			for _, p := range r.prefixes {
				if slices.Contains(rs[i], p) {
					n++
				}
			}
		}
		s += fmt.Sprintf("%s %d/%d", x.Name, n, len(r.prefixes))
	}
	return s
}

// scenario runs the scripted steps. Links are named by position: the
// second link loses 30 %, then the first goes dark (and any others but
// the last), then the last loses 30 % and must keep every prefix, then
// everything heals.
func (r *runner) scenario(ctx context.Context) {
	isps := r.lab.ISPs
	n := len(isps)
	th := r.report.Thresholds
	last := isps[n-1]
	settle := 15*time.Second + th.LossWindow

	// 1. Baseline.
	began := time.Now()
	_, rs, ok := r.waitFor(ctx, settle, func(rs [][]netip.Prefix) bool {
		for _, rt := range rs {
			if !r.full(rt) {
				return false
			}
		}
		return true
	})
	r.step(Step{Name: "all healthy", Expected: fmt.Sprintf("all %d prefixes in every ISP's RIB", len(r.prefixes)),
		Observed: r.ribSummary(rs), Passed: ok}, began)
	if !ok {
		return
	}
	// Let the links be judged healthy on real samples before impairing.
	if !r.waitHealthy(ctx, settle) {
		r.step(Step{Name: "links judged healthy", Expected: "every link healthy on its probe samples", Observed: "not all links healthy", Passed: false}, began)
		return
	}

	// 2. The second ISP loses 30 %.
	began = time.Now()
	r.line(Line{Kind: "impair", Link: r.links[1], Text: "30% packet loss on " + isps[1].Name + "'s path"})
	isps[1].SetLoss(30)
	took, rs, ok := r.waitFor(ctx, settle, func(rs [][]netip.Prefix) bool { return r.empty(rs[1]) })
	others := true
	for i := range isps {
		if i != 1 && !r.full(rs[i]) {
			others = false
		}
	}
	r.report.WithdrawLatencyMS = ms(took)
	r.step(Step{Name: isps[1].Name + " loses 30%", Expected: isps[1].Name + "'s RIB loses every prefix; the other ISPs keep them",
		Observed: fmt.Sprintf("%s after %v", r.ribSummary(rs), took.Round(time.Millisecond)), Passed: ok && others}, began)
	if !ok {
		return
	}

	// 3. The first ISP goes dark (and every other but the last).
	began = time.Now()
	dark := []int{0}
	for i := 2; i < n-1; i++ {
		dark = append(dark, i)
	}
	for _, i := range dark {
		r.line(Line{Kind: "impair", Link: r.links[i], Text: isps[i].Name + "'s path black-holed"})
		isps[i].SetBlackhole(true)
	}
	took, rs, ok = r.waitFor(ctx, settle, func(rs [][]netip.Prefix) bool {
		for _, i := range dark {
			if !r.empty(rs[i]) {
				return false
			}
		}
		return true
	})
	r.report.BlackholeWithdrawLatencyMS = ms(took)
	lastFull := ok && r.full(rs[n-1])
	r.step(Step{Name: isps[0].Name + " goes dark", Expected: fmt.Sprintf("%s's RIB loses every prefix; %s keeps them", isps[0].Name, last.Name),
		Observed: fmt.Sprintf("%s after %v", r.ribSummary(rs), took.Round(time.Millisecond)), Passed: ok && lastFull}, began)
	if !ok {
		return
	}

	// 4. The last ISP loses 30 % too: it must keep everything, and sdnoc
	// must say why it refused.
	began = time.Now()
	r.line(Line{Kind: "impair", Link: r.links[n-1], Text: "30% packet loss on " + last.Name + "'s path"})
	last.SetLoss(30)
	hold := th.Enter + th.LossWindow + 2*time.Second
	deadline := time.Now().Add(hold)
	kept := true
	for time.Now().Before(deadline) && kept {
		rs, err := r.ribs(ctx)
		kept = err == nil && r.full(rs[n-1])
		time.Sleep(poll)
	}
	r.mu.Lock()
	refusal := r.report.Refusal
	r.mu.Unlock()
	obs := fmt.Sprintf("%s kept all %d prefixes for %v", last.Name, len(r.prefixes), hold)
	if !kept {
		obs = last.Name + " lost prefixes"
	}
	if refusal == "" {
		obs += "; no never-strand refusal was reported"
	} else {
		obs += "; refusal: " + refusal
	}
	r.step(Step{Name: last.Name + " loses 30% too", Expected: fmt.Sprintf("%s, the last link publishing them, keeps every prefix and sdnoc explains the refusal", last.Name),
		Observed: obs, Passed: kept && refusal != ""}, began)

	// 5. Everything heals.
	began = time.Now()
	r.line(Line{Kind: "heal", Text: "all impairments removed"})
	for _, x := range isps {
		x.SetLoss(0)
		x.SetBlackhole(false)
	}
	took, rs, ok = r.waitFor(ctx, settle+th.Exit+th.HoldDown, func(rs [][]netip.Prefix) bool {
		for _, rt := range rs {
			if !r.full(rt) {
				return false
			}
		}
		return true
	})
	r.report.RestoreLatencyMS = ms(took)
	early := took < th.Exit
	r.step(Step{Name: "links heal", Expected: fmt.Sprintf("every prefix back in every ISP's RIB, no sooner than exit (%v)", th.Exit),
		Observed: fmt.Sprintf("%s after %v", r.ribSummary(rs), took.Round(time.Millisecond)), Passed: ok && !early}, began)
}

// waitHealthy waits until the engine has judged every link healthy on
// real samples, so the scenario starts from healthy links, not unknown.
func (r *runner) waitHealthy(ctx context.Context, timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		st := r.ctl.Status()
		ok := len(st) == len(r.links)
		for _, s := range st {
			ok = ok && s.State == decisions.Healthy
		}
		if ok {
			return true
		}
		time.Sleep(poll)
	}
	return false
}
