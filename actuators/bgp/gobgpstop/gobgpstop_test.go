package gobgpstop_test

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/sdnoc/sdnoc/actuators/bgp"
	"github.com/sdnoc/sdnoc/lab/loopback"
)

// TestStopWhileReceiving stops a speaker while its ISP keeps sending it
// UPDATEs, the moment GoBGP's own StopBgp races its receive loop. Run with
// -race (make test does): the race detector fails the test if Stop still
// races. The ISP must also see the session end.
func TestStopWhileReceiving(t *testing.T) {
	for round := range 3 {
		edge, ispAddr := fmt.Sprintf("127.21.%d.1", round), fmt.Sprintf("127.21.%d.2", round)
		ln, err := net.Listen("tcp", ispAddr+":0")
		if err != nil {
			t.Fatal(err)
		}
		port := ln.Addr().(*net.TCPAddr).Port
		ln.Close()
		isp, err := loopback.NewISP(loopback.ISPConfig{Name: "isp", ASN: 64501, RouterID: ispAddr, Address: ispAddr, Port: port,
			EdgeASN: 65000, EdgeAddress: edge}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := isp.Start(t.Context()); err != nil {
			t.Fatal(err)
		}
		cfg := bgp.DefaultConfig()
		cfg.RouterID, cfg.ASN, cfg.ConnectRetry, cfg.HoldTime, cfg.KeepaliveInterval = edge, 65000, time.Second, 9*time.Second, 3*time.Second
		cfg.Neighbors = []bgp.Neighbor{{Name: "isp", Address: ispAddr, Port: port, PeerASN: 64501, LocalAddress: edge}}
		sp, err := bgp.New(cfg, bgp.Deps{})
		if err != nil {
			t.Fatal(err)
		}
		if err := sp.Start(t.Context()); err != nil {
			t.Fatal(err)
		}
		for up := false; !up; time.Sleep(10 * time.Millisecond) {
			if up, err = isp.Established(t.Context()); err != nil {
				t.Fatal(err)
			}
		}
		// The ISP originates routes as fast as it can while the edge stops.
		ctx, cancel := context.WithCancel(t.Context())
		sent := make(chan int)
		go func() {
			n := 0
			for ctx.Err() == nil {
				p := netip.PrefixFrom(netip.AddrFrom4([4]byte{100, 64, byte(n >> 8), byte(n)}), 32)
				if isp.Originate(ctx, p) == nil {
					n++
				}
			}
			sent <- n
		}()
		time.Sleep(50 * time.Millisecond)
		stopCtx, stopCancel := context.WithTimeout(t.Context(), 10*time.Second)
		err = sp.Stop(stopCtx)
		stopCancel()
		if err != nil {
			t.Fatalf("round %d: Stop: %v", round, err)
		}
		for up := true; up; time.Sleep(10 * time.Millisecond) {
			if up, err = isp.Established(t.Context()); err != nil {
				t.Fatal(err)
			}
		}
		cancel()
		if n := <-sent; n == 0 {
			t.Fatalf("round %d: the ISP sent nothing while the edge stopped; the test proved nothing", round)
		}
		if err := isp.Stop(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
}
