package bgp

import (
	"net/netip"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/sdnoc/sdnoc/internal/starttest"
	"github.com/sdnoc/sdnoc/lab/loopback"
)

// TestNeighborIdentity runs two PoPs' links in one Speaker: each session
// must open with its own PoP's ASN and router ID. An ISP that expects
// another AS refuses the OPEN, so an established session proves the ASN.
func TestNeighborIdentity(t *testing.T) {
	const otherASN = edgeASN + 100
	isp1, port1 := startISP(t, "isp1", "127.20.11.2", ispASN+1, "127.20.11.1")
	port2 := freePort(t, "127.20.12.2")
	isp2, err := loopback.NewISP(loopback.ISPConfig{
		Name: "isp2", ASN: ispASN + 2, RouterID: "127.20.12.2", Address: "127.20.12.2", Port: port2,
		EdgeASN: otherASN, EdgeAddress: "127.20.12.1",
	}, testLog(t))
	if err != nil {
		t.Fatal(err)
	}
	starttest.Start(t, isp2)
	cfg := labConfig(
		Neighbor{Name: "ams/isp1", Address: "127.20.11.2", Port: port1, PeerASN: ispASN + 1, LocalAddress: "127.20.11.1"},
		Neighbor{Name: "fra/isp2", Address: "127.20.12.2", Port: port2, PeerASN: ispASN + 2, LocalAddress: "127.20.12.1",
			ASN: otherASN, RouterID: "127.20.12.9"},
	)
	s := startSpeaker(t, cfg, nil)
	waitUp(t, s)
	for _, n := range []string{"ams/isp1", "fra/isp2"} {
		if err := s.Announce(t.Context(), n, pfxA); err != nil {
			t.Fatal(err)
		}
	}
	waitRoutes(t, isp1, "isp1", pfxA)
	waitRoutes(t, isp2, "isp2", pfxA)
}

// TestWithdrawAll takes every prefix off every neighbour, as the daemon's
// --withdraw-on-exit does before it stops.
func TestWithdrawAll(t *testing.T) {
	isp1, port1 := startISP(t, "isp1", "127.20.13.2", ispASN+1, "127.20.13.1")
	isp2, port2 := startISP(t, "isp2", "127.20.14.2", ispASN+2, "127.20.14.1")
	s := startSpeaker(t, labConfig(
		Neighbor{Name: "pop1/isp1", Address: "127.20.13.2", Port: port1, PeerASN: ispASN + 1, LocalAddress: "127.20.13.1"},
		Neighbor{Name: "pop1/isp2", Address: "127.20.14.2", Port: port2, PeerASN: ispASN + 2, LocalAddress: "127.20.14.1"},
	), nil)
	waitUp(t, s)
	for _, n := range []string{"pop1/isp1", "pop1/isp2"} {
		for _, p := range []netip.Prefix{pfxA, pfxB} {
			if err := s.Announce(t.Context(), n, p); err != nil {
				t.Fatal(err)
			}
		}
	}
	waitRoutes(t, isp1, "isp1", pfxA, pfxB)
	waitRoutes(t, isp2, "isp2", pfxA, pfxB)
	if err := s.WithdrawAll(t.Context()); err != nil {
		t.Fatal(err)
	}
	waitRoutes(t, isp1, "isp1")
	waitRoutes(t, isp2, "isp2")
	applied, err := s.Applied(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	for n, ps := range applied {
		if len(ps) != 0 {
			t.Errorf("%s still applies %v", n, ps)
		}
	}
}

// TestSessionsCorrectTheGauge: a peer event that arrives out of order can
// leave session_up at 0 on an established session; Sessions, which reads
// the state itself, puts it right.
func TestSessionsCorrectTheGauge(t *testing.T) {
	_, port := startISP(t, "isp1", "127.20.15.2", ispASN+1, "127.20.15.1")
	s := startSpeaker(t, labConfig(Neighbor{Name: "pop1/isp1", Address: "127.20.15.2", Port: port, PeerASN: ispASN + 1, LocalAddress: "127.20.15.1"}), nil)
	waitUp(t, s)
	s.m.sessionUp.WithLabelValues("pop1/isp1").Set(0) // as a late "active" event would
	if _, err := s.Sessions(t.Context()); err != nil {
		t.Fatal(err)
	}
	if got := testutil.ToFloat64(s.m.sessionUp.WithLabelValues("pop1/isp1")); got != 1 {
		t.Fatalf("session_up after Sessions = %v, want 1", got)
	}
}
