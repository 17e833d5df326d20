package main

import (
	"bytes"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/sdnoc/sdnoc/controller/api"
	"github.com/sdnoc/sdnoc/decisions"
	"github.com/sdnoc/sdnoc/journal"
)

// The status screen: a line per link with its numbers and notes, the
// alerts, and the playbooks (one still prepending).
func TestWriteStatus(t *testing.T) {
	at := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	st := api.Status{Topology: "lab", At: at, Health: "ok",
		Links: []decisions.LinkStatus{
			{Link: "pop1/isp1", PoP: "pop1", State: decisions.Healthy, Utilisation: 21.4, Configured: 4, Published: 4, SessionUp: true, SessionSeen: true,
				Window: decisions.Window{Resolved: 100, LossPct: 0.5, RTTAvg: 1500 * time.Microsecond, Jitter: 80 * time.Microsecond}},
			{Link: "pop1/isp2", PoP: "pop1", State: decisions.Degraded, Withdrawn: true, Utilisation: -1, Configured: 4, SessionSeen: true,
				Window: decisions.Window{Resolved: 100, LossPct: 31.2, RTTAvg: 2 * time.Second}, Overrides: []string{"drain"}},
		},
		Alerts: []decisions.Alert{{Link: "pop1/isp3", Kind: "stranding", Text: "pop1: no healthy link left"}},
		Overrides: []journal.Manual{{Override: decisions.Override{ID: "drain", From: at.Add(30 * time.Second), Expires: at.Add(time.Hour),
			Withdraw: map[string][]netip.Prefix{"pop1/isp2": nil}}, Audit: journal.Audit{Author: "alice", Kind: "drain-pop", Via: "unix uid 0", Reason: "swap"},
			Applied: at, Prepend: 3, PrependLinks: []string{"pop1/isp1", "pop1/isp2"}}},
	}
	var b bytes.Buffer
	writeStatus(&b, st)
	out := b.String()
	for _, want := range []string{
		"sdnoc lab at 2026-12-07 12:00:00 UTC: ok",
		"pop1  isp1  healthy   0.5%   1.5ms  80µs    21%   4/4       up",
		"pop1  isp2  DEGRADED  31.2%  2.00s  0µs     -     0/4       DOWN  withdrawn; playbook drain until 13:00",
		"STRANDING  pop1: no healthy link left",
		"drain  prepending 3 extra copies of the AS on pop1/isp1, pop1/isp2; withdraws at 12:00:30 UTC (in 30s)",
		"drain  drain-pop by alice (unix uid 0), applied 12:00:00, expires 13:00:00 UTC (1h0m0s left): swap",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("status lacks %q:\n%s", want, out)
		}
	}
}
