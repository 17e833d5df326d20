package bgp

import (
	"context"
	"net/netip"
	"testing"
	"time"
)

// BenchmarkAnnounce10k measures the time from the first of 10,000 Announce
// calls to the moment all 10,000 IPv4 /24s are in a GoBGP ISP's RIB
// (ms/10k), and the time of the calls alone (calls-ms/10k). Each iteration
// then withdraws them all, untimed.
func BenchmarkAnnounce10k(b *testing.B) {
	const (
		edge = "127.20.6.1"
		n    = 10000
	)
	isp, port := startISP(b, "isp1", "127.20.6.2", ispASN+1, edge)
	s := startSpeaker(b, labConfig(Neighbor{Name: "isp1", Address: "127.20.6.2", Port: port, PeerASN: ispASN + 1, LocalAddress: edge}), nil)
	waitUp(b, s)
	ps := make([]netip.Prefix, n)
	for i := range ps {
		// 100.64.0.0/24 .. 100.103.15.0/24, as in LAB.md §4
		ps[i] = netip.PrefixFrom(netip.AddrFrom4([4]byte{100, byte(64 + i/256), byte(i % 256), 0}), 24)
	}
	ctx := b.Context()
	wait := func(want int) time.Duration {
		wctx, cancel := context.WithTimeout(ctx, time.Minute)
		defer cancel()
		_, d, err := isp.WaitRoutes(wctx, func(rs []netip.Prefix) bool { return len(rs) == want }, 2*time.Millisecond)
		if err != nil {
			b.Fatal(err)
		}
		return d
	}
	var total, calls time.Duration
	for b.Loop() {
		start := time.Now()
		for _, p := range ps {
			if err := s.Announce(ctx, "isp1", p); err != nil {
				b.Fatal(err)
			}
		}
		calls += time.Since(start)
		wait(n)
		total += time.Since(start)

		b.StopTimer()
		for _, p := range ps {
			if err := s.Withdraw(ctx, "isp1", p); err != nil {
				b.Fatal(err)
			}
		}
		wait(0)
		b.StartTimer()
	}
	b.ReportMetric(float64(total.Milliseconds())/float64(b.N), "ms/10k")
	b.ReportMetric(float64(calls.Milliseconds())/float64(b.N), "calls-ms/10k")
	b.ReportMetric(float64(n*b.N)/total.Seconds(), "prefixes/s")
}
