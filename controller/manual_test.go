package controller_test

import (
	"context"
	"errors"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sdnoc/sdnoc/controller"
	"github.com/sdnoc/sdnoc/journal"
	"github.com/sdnoc/sdnoc/playbooks"
)

func disableISP2(expiry time.Duration) *playbooks.Playbook {
	return &playbooks.Playbook{Name: "isp2-out", Kind: playbooks.DisableISP, ISP: "isp2", PoP: "pop1",
		Reason: "isp2 maintenance", Author: "alice", Expiry: expiry}
}

// A playbook on real GoBGP peers: planned, applied (the ISP's own RIB
// empties and stays empty though the link is healthy), kept across a
// restart, refused when it conflicts, released (routes back), audited.
func TestPlaybookOnRealPeers(t *testing.T) {
	h := newHarness(t, 78)
	c := h.start()
	t.Cleanup(func() { c.Stop(context.Background()) })
	for i := range 3 {
		h.wait(i, 20*time.Second, "start", all)
	}
	ctx := t.Context()
	p, err := c.PlanPlaybook(ctx, disableISP2(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Sessions) != 1 || p.Sessions[0].Link != "pop1/isp2" || len(p.Sessions[0].Withdraw) != 3 ||
		p.Sessions[0].Neighbor != h.lab.ISPs[1].Neighbor.Addr().String() || len(p.Refusals) != 0 {
		t.Fatalf("plan = %+v", p)
	}
	if n := len(c.Overrides()); n != 0 {
		t.Fatalf("plan applied something: %d overrides", n)
	}
	applied := time.Now()
	if _, err := c.ApplyPlaybook(ctx, disableISP2(time.Hour), "test"); err != nil {
		t.Fatal(err)
	}
	took := h.wait(1, 10*time.Second, "after apply", func(rs []netip.Prefix) bool { return len(rs) == 0 })
	t.Logf("apply → isp2's RIB empty: %v (%v since the call)", took, time.Since(applied).Round(time.Millisecond))
	// Automation sees a healthy link and must leave it alone.
	time.Sleep(3 * time.Second)
	h.wait(1, time.Second, "under the override", func(rs []netip.Prefix) bool { return len(rs) == 0 })
	h.wait(0, time.Second, "isp1 untouched", all)
	pubs, err := c.Publications(ctx)
	if err != nil || len(pubs) != 3 || pubs[1].Link != "pop1/isp2" || len(pubs[1].Desired)+len(pubs[1].Applied) != 0 || len(pubs[0].Applied) != 3 {
		t.Fatalf("publications under the override = %+v, %v", pubs, err)
	}

	// Taking the other two links out too would strand the prefixes.
	strand := &playbooks.Playbook{Name: "rest-out", Kind: playbooks.DisableISP, ISP: "isp1", PoP: "pop1", Reason: "r", Author: "bob", Expiry: time.Hour}
	if _, err := c.ApplyPlaybook(ctx, strand, "test"); err != nil {
		t.Fatalf("isp1 out while isp3 carries: %v", err)
	}
	strand3 := &playbooks.Playbook{Name: "isp3-out", Kind: playbooks.DisableISP, ISP: "isp3", PoP: "pop1", Reason: "r", Author: "bob", Expiry: time.Hour}
	if _, err := c.ApplyPlaybook(ctx, strand3, "test"); !errors.Is(err, controller.ErrRefused) || !strings.Contains(err.Error(), "published nowhere") {
		t.Fatalf("last link out: err = %v; want refused, published nowhere", err)
	}
	h.wait(2, time.Second, "isp3 keeps them", all)
	// Same pairs again: a conflict.
	dup := disableISP2(time.Hour)
	dup.Name = "isp2-again"
	if _, err := c.ApplyPlaybook(ctx, dup, "test"); err == nil || !strings.Contains(err.Error(), "isp2-out already pins") {
		t.Fatalf("conflicting playbook: err = %v", err)
	}
	if err := c.Release(ctx, "rest-out", journal.Audit{Author: "bob", Reason: "done", Via: "test"}); err != nil {
		t.Fatal(err)
	}
	h.wait(0, 10*time.Second, "isp1 back", all)

	// A restart keeps the override: once the new controller's sessions
	// are up, isp1 has everything again and isp2 nothing.
	if err := c.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	// Quiet ISPs before a second speaker starts in this process: GoBGP's
	// StartBgp writes globals the ISPs read while routes flow (see
	// bgp.Speaker.Start).
	for i := range 3 {
		h.wait(i, 20*time.Second, "after stop", func(rs []netip.Prefix) bool { return len(rs) == 0 })
	}
	c2 := h.start()
	t.Cleanup(func() { c2.Stop(context.Background()) })
	if ov := c2.Overrides(); len(ov) != 1 || ov[0].Override.ID != "isp2-out" || ov[0].Audit.Author != "alice" {
		t.Fatalf("after restart: overrides %+v", ov)
	}
	h.wait(0, 20*time.Second, "isp1 after restart", all)
	time.Sleep(2 * time.Second)
	h.wait(1, time.Second, "isp2 after restart", func(rs []netip.Prefix) bool { return len(rs) == 0 })

	rp := &playbooks.Playbook{Name: "back", Kind: playbooks.Restore, All: true, Reason: "over", Author: "alice"}
	if p, err = c2.PlanPlaybook(ctx, rp); err != nil || !slices.Equal(p.Release, []string{"isp2-out"}) || len(p.Sessions) != 1 || len(p.Sessions[0].Announce) != 3 {
		t.Fatalf("restore plan = %+v, %v", p, err)
	}
	if _, err := c2.ApplyPlaybook(ctx, rp, "test"); err != nil {
		t.Fatal(err)
	}
	h.wait(1, 10*time.Second, "after restore", all)

	recs, err := c2.Records(0, 0)
	if err != nil {
		t.Fatal(err)
	}
	var kinds []string
	for _, r := range recs {
		switch r.Kind {
		case journal.KindOverride:
			kinds = append(kinds, "override:"+r.Manual.Override.ID+":"+r.Manual.Audit.Author)
		case journal.KindRelease:
			kinds = append(kinds, "release:"+r.Target+":"+r.Audit.Author)
		case journal.KindDenied:
			kinds = append(kinds, "denied:"+r.Audit.Playbook)
		}
	}
	want := []string{"override:isp2-out:alice", "override:rest-out:bob", "denied:isp3-out", "denied:isp2-again", "release:rest-out:bob", "release:isp2-out:alice"}
	if !slices.Equal(kinds, want) {
		t.Fatalf("journal audit = %v\nwant %v", kinds, want)
	}
}

// An override that expires hands control back to automation and journals
// it; draining the only PoP is refused.
func TestPlaybookExpires(t *testing.T) {
	h := newHarness(t, 79)
	c := h.start()
	t.Cleanup(func() { c.Stop(context.Background()) })
	for i := range 3 {
		h.wait(i, 20*time.Second, "start", all)
	}
	pb := &playbooks.Playbook{Name: "drain", Kind: playbooks.DrainPoP, PoP: "pop1", DrainProxies: true, Reason: "r", Author: "a", Expiry: 4 * time.Second}
	// pop1 is the only PoP: draining it is refused (nowhere to go).
	if _, err := c.ApplyPlaybook(t.Context(), pb, "test"); err == nil || !strings.Contains(err.Error(), "only PoP") {
		t.Fatalf("drain of the only PoP: err = %v", err)
	}
	pb = disableISP2(4 * time.Second)
	if _, err := c.ApplyPlaybook(t.Context(), pb, "test"); err != nil {
		t.Fatal(err)
	}
	h.wait(1, 10*time.Second, "applied", func(rs []netip.Prefix) bool { return len(rs) == 0 })
	h.wait(1, 15*time.Second, "expired", all)
	if n := len(c.Overrides()); n != 0 {
		t.Fatalf("%d overrides after expiry", n)
	}
	recs, _ := c.Records(0, 0)
	if !slices.ContainsFunc(recs, func(r journal.Record) bool { return r.Kind == journal.KindExpire && r.Target == "isp2-out" }) {
		t.Fatal("no expire record in the journal")
	}
}
