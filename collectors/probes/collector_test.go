package probes_test

import (
	"math"
	"net"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sdnoc/sdnoc/collectors/probes"
	"github.com/sdnoc/sdnoc/internal/starttest"
	"github.com/sdnoc/sdnoc/lab/loopback"
)

// startRelay starts an impairable relay on 127.0.0.1 in front of target.
func startRelay(t *testing.T, target net.Addr) *loopback.Relay {
	t.Helper()
	r, err := loopback.NewRelay(loopback.RelayConfig{Listen: "127.0.0.1:0", Target: target.String(), Seed: 1}, nil)
	if err != nil {
		t.Fatal(err)
	}
	starttest.Start(t, r)
	return r
}

func config(interval, timeout, window time.Duration, links ...probes.LinkConfig) probes.Config {
	return probes.Config{Interval: interval, Timeout: timeout, Window: window, Links: links}
}

func TestCollectorCleanPath(t *testing.T) {
	t.Parallel()
	r1, _ := startReflector(t, "127.0.0.1:0")
	r2, _ := startReflector(t, "127.0.0.1:0")
	cfg := config(10*time.Millisecond, time.Second, 200*time.Millisecond,
		probes.LinkConfig{ID: "pop1/isp1", Local: "127.0.0.1", Targets: []string{r1.Addr().String(), r2.Addr().String()}})
	_, rec, reg := startCollector(t, cfg)
	ss := rec.waitFor(t, "pop1/isp1", 5*time.Second, "5 samples", atLeast(5))
	checkAccounting(t, ss)
	t.Logf("samples:\n%s", dump(ss))
	var sent [2]int
	for i, s := range ss {
		if !s.Known || s.Source != "probes" || s.Lost != 0 || s.Late != 0 || s.SendErrors != 0 || s.Received == 0 || s.LossPct != 0 {
			t.Errorf("sample %d: %s; want known, no loss, replies", i, sampleString(s))
		}
		// The mean is not bounded by the 95th percentile: one slow reply
		// in 40 lifts it above.
		if s.RTTMin <= 0 || s.RTTMin > s.RTTAvg || s.RTTMin > s.RTTP95 || s.RTTAvg > 50*time.Millisecond || s.RTTP95 > 50*time.Millisecond {
			t.Errorf("sample %d: RTT min/avg/p95 %v/%v/%v; want 0 < min <= avg, p95 < 50ms", i, s.RTTMin, s.RTTAvg, s.RTTP95)
		}
		checkSinceReply(t, i, s)
		if len(s.Targets) != 2 || s.Targets[0].Target != r1.Addr().String() || s.Targets[1].Target != r2.Addr().String() {
			t.Fatalf("sample %d: targets %+v", i, s.Targets)
		}
		// One probe per Interval per target, never more; a loaded
		// machine may send fewer.
		perTarget := int(s.End.Sub(s.Start)/cfg.Interval) + 2
		for j, ts := range s.Targets {
			sent[j] += ts.Sent
			if ts.Sent > perTarget || ts.Lost != 0 || (ts.Received > 0) != (ts.RTTAvg > 0) {
				t.Errorf("sample %d: target %+v; want at most %d sent, none lost", i, ts, perTarget)
			}
		}
	}
	// The targets take turns.
	if d := sent[0] - sent[1]; d < 0 || d > 1 {
		t.Errorf("targets sent %d and %d probes; want turns", sent[0], sent[1])
	}
	if got := metric(t, reg, "loss_ratio", "link", "pop1/isp1"); got != 0 {
		t.Errorf("loss_ratio = %v, want 0", got)
	}
	if got := metric(t, reg, "rtt_seconds", "link", "pop1/isp1"); !(got > 0 && got < 0.05) {
		t.Errorf("rtt_seconds = %v, want 0 < rtt < 50ms", got)
	}
}

// checkSinceReply checks that a window with replies does not look like a
// black hole.
func checkSinceReply(t *testing.T, i int, s probes.Sample) {
	t.Helper()
	if s.Received > 0 && (s.SinceReply <= 0 || s.SinceReply >= time.Second) {
		t.Errorf("sample %d: %d replies, yet SinceReply %v", i, s.Received, s.SinceReply)
	}
}

func TestCollectorLoss(t *testing.T) {
	t.Parallel()
	refl, _ := startReflector(t, "127.0.0.1:0")
	relay := startRelay(t, refl.Addr())
	relay.SetLoss(30)
	cfg := config(5*time.Millisecond, 500*time.Millisecond, 250*time.Millisecond,
		probes.LinkConfig{ID: "lossy", Targets: []string{relay.Addr().String()}})
	_, rec, _ := startCollector(t, cfg)
	const n = 600
	ss := rec.waitFor(t, "lossy", 10*time.Second, "600 resolved probes", func(ss []probes.Sample) bool {
		resolved := 0
		for _, s := range ss {
			resolved += s.Received + s.Lost
		}
		return resolved >= n
	})
	checkAccounting(t, ss)
	var recv, lost int
	for _, s := range ss {
		recv += s.Received
		lost += s.Lost
	}
	// Each probe is lost with p = 0.3, independently; over m probes the
	// measured ratio has σ = sqrt(p(1−p)/m). ±4σ fails a correct
	// collector about once in 16,000 runs (and the relay is seeded).
	m := float64(recv + lost)
	got := float64(lost) / m
	sigma := math.Sqrt(0.3 * 0.7 / m)
	t.Logf("measured loss %.2f%% over %v probes (4σ = %.2f%%)", 100*got, m, 400*sigma)
	if math.Abs(got-0.3) > 4*sigma {
		t.Errorf("measured loss %.1f%% over %v probes; want 30%% ± %.1f%% (4σ)", 100*got, m, 400*sigma)
	}
	if dropped := relay.Stats().Forward.Dropped; uint64(lost) > dropped {
		t.Errorf("collector lost %d probes, the relay dropped only %d", lost, dropped)
	}
}

func TestCollectorBlackhole(t *testing.T) {
	t.Parallel()
	refl, _ := startReflector(t, "127.0.0.1:0")
	relay := startRelay(t, refl.Addr())
	cfg := config(10*time.Millisecond, 200*time.Millisecond, 250*time.Millisecond,
		probes.LinkConfig{ID: "bh", Local: "127.0.0.1", Targets: []string{relay.Addr().String()}})
	_, rec, _ := startCollector(t, cfg)
	before := rec.waitFor(t, "bh", 3*time.Second, "replies", func(ss []probes.Sample) bool {
		return len(ss) >= 2 && ss[len(ss)-1].Received > 0
	})

	relay.SetBlackhole(true)
	dark := time.Now()
	ss := rec.waitFor(t, "bh", 4*time.Second, "SinceReply past 1s", func(ss []probes.Sample) bool {
		return ss[len(ss)-1].SinceReply > time.Second
	})
	checkAccounting(t, ss)
	t.Logf("samples:\n%s", dump(ss))
	// About Timeout/Interval probes wait at once; twice that would mean
	// the sweeps do not run.
	maxOut := 2 * int(cfg.Timeout/cfg.Interval)
	var lost int
	for i, s := range ss[len(before):] {
		if s.Outstanding > maxOut {
			t.Errorf("sample %d: %d outstanding, want <= %d", i, s.Outstanding, maxOut)
		}
		if !s.Start.After(dark) {
			continue
		}
		lost += s.Lost
		if !s.Known || s.Received != 0 || s.Sent == 0 {
			t.Errorf("sample %d in the dark: %s; want known, sent, nothing received", i, sampleString(s))
		}
	}
	if lost == 0 {
		t.Error("no probe lost in the dark")
	}
	last := ss[len(ss)-1]
	if elapsed := time.Since(dark); last.SinceReply > elapsed+cfg.Window {
		t.Errorf("SinceReply %v, but the last reply can be no older than %v", last.SinceReply, elapsed)
	}

	relay.SetBlackhole(false)
	n := len(ss)
	ss = rec.waitFor(t, "bh", 3*time.Second, "replies again", func(ss []probes.Sample) bool {
		return len(ss) > n+1 && ss[len(ss)-1].Received > 0
	})
	checkSinceReply(t, len(ss)-1, ss[len(ss)-1])
}

func TestCollectorDelay(t *testing.T) {
	t.Parallel()
	refl, _ := startReflector(t, "127.0.0.1:0")
	relay := startRelay(t, refl.Addr())
	relay.SetDelay(50 * time.Millisecond)
	cfg := config(10*time.Millisecond, time.Second, 250*time.Millisecond,
		probes.LinkConfig{ID: "slow", Targets: []string{relay.Addr().String()}})
	_, rec, _ := startCollector(t, cfg)
	ss := rec.waitFor(t, "slow", 5*time.Second, "5 samples", atLeast(5))
	checkAccounting(t, ss)
	t.Logf("samples:\n%s", dump(ss))
	var avgs, jitters []time.Duration
	for i, s := range ss[1:] { // the first window holds the first 50ms with no reply
		if !s.Known || s.Lost != 0 || s.Received == 0 {
			t.Errorf("sample %d: %s; want no loss", i+1, sampleString(s))
		}
		// The relay holds each probe at least 50ms.
		if s.RTTMin < 50*time.Millisecond {
			t.Errorf("sample %d: RTT min %v; want 50ms or more", i+1, s.RTTMin)
		}
		avgs = append(avgs, s.RTTAvg)
		jitters = append(jitters, s.Jitter)
	}
	// Loopback and scheduling add little, most of the time: medians keep a
	// busy machine's worst window out of it.
	if m := median(avgs); m > 60*time.Millisecond {
		t.Errorf("median RTT avg %v; want 50ms and a little", m)
	}
	if m := median(jitters); m > 5*time.Millisecond {
		t.Errorf("median jitter %v; a constant delay should give under 5ms", m)
	}
}

func median(ds []time.Duration) time.Duration {
	ds = slices.Clone(ds)
	slices.Sort(ds)
	return ds[len(ds)/2]
}

// A reply after the timeout is late: its probe is lost, and it is not
// received, nor malformed.
func TestCollectorLateReplies(t *testing.T) {
	t.Parallel()
	refl, _ := startReflector(t, "127.0.0.1:0")
	relay := startRelay(t, refl.Addr())
	relay.SetDelay(150 * time.Millisecond)
	cfg := config(10*time.Millisecond, 100*time.Millisecond, 200*time.Millisecond,
		probes.LinkConfig{ID: "late", Targets: []string{relay.Addr().String()}})
	_, rec, reg := startCollector(t, cfg)
	ss := rec.waitFor(t, "late", 5*time.Second, "5 samples", atLeast(5))
	checkAccounting(t, ss)
	t.Logf("samples:\n%s", dump(ss))
	var lost, late int
	for i, s := range ss {
		lost += s.Lost
		late += s.Late
		if s.Received != 0 {
			t.Errorf("sample %d: %s; want nothing in time", i, sampleString(s))
		}
	}
	if late == 0 || late > lost {
		t.Errorf("%d late of %d lost; want 0 < late <= lost", late, lost)
	}
	if got := metric(t, reg, "malformed_total", "link", "late"); got != 0 {
		t.Errorf("malformed_total = %v, want 0", got)
	}
}

// A link whose local address is not on this machine cannot bind: nothing
// is sent, and its samples are unknown, not lossy.
func TestCollectorUnbindableLocal(t *testing.T) {
	t.Parallel()
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_nonlocal_bind"); err == nil && strings.TrimSpace(string(b)) != "0" {
		t.Skip("net.ipv4.ip_nonlocal_bind is set: any address binds")
	}
	refl, reflReg := startReflector(t, "127.0.0.1:0")
	cfg := config(10*time.Millisecond, 100*time.Millisecond, 100*time.Millisecond,
		probes.LinkConfig{ID: "gone", Local: "203.0.113.77", Targets: []string{refl.Addr().String()}})
	_, rec, reg := startCollector(t, cfg) // Start succeeds
	ss := rec.waitFor(t, "gone", 3*time.Second, "3 samples", atLeast(3))
	for i, s := range ss {
		if s.Known || s.Sent != 0 || s.Lost != 0 || s.Received != 0 || s.LossPct != 0 {
			t.Errorf("sample %d: %s; want unknown and empty", i, sampleString(s))
		}
	}
	if got := metric(t, reg, "sent_total", "link", "gone"); got != 0 {
		t.Errorf("sent_total = %v, want 0", got)
	}
	if got := metric(t, reg, "loss_ratio", "link", "gone"); !math.IsNaN(got) {
		t.Errorf("loss_ratio = %v, want NaN", got)
	}
	if got := metric(t, reflReg, "reflector_reflected_total"); got != 0 {
		t.Errorf("the reflector answered %v probes, want none", got)
	}
}

// Probes that cannot be sent are send errors, not losses; a window with
// nothing sent is unknown.
func TestCollectorSendErrors(t *testing.T) {
	t.Parallel()
	refl, _ := startReflector(t, "127.0.0.1:0")
	// An IPv4 socket cannot send to an IPv6 address: Go refuses before
	// any system call, so nothing leaves.
	cfg := config(10*time.Millisecond, 100*time.Millisecond, 100*time.Millisecond,
		probes.LinkConfig{ID: "v6only", Local: "127.0.0.1", Targets: []string{"[::1]:862"}},
		probes.LinkConfig{ID: "mixed", Local: "127.0.0.1", Targets: []string{"[::1]:862", refl.Addr().String()}})
	_, rec, _ := startCollector(t, cfg)
	for _, link := range []string{"v6only", "mixed"} {
		ss := rec.waitFor(t, link, 3*time.Second, "3 samples", atLeast(3))
		checkAccounting(t, ss)
		var sent, errs int
		for i, s := range ss {
			sent += s.Sent
			errs += s.SendErrors
			if s.Lost != 0 || s.Known != (s.Sent > 0) || len(s.Targets) == 2 && s.Targets[0].Sent != 0 {
				t.Errorf("%s sample %d: %s; want no loss, known when sent", link, i, sampleString(s))
			}
		}
		if errs == 0 || (sent > 0) != (link == "mixed") {
			t.Errorf("%s: %d sent, %d send errors; want errors, and sends only to the IPv4 target", link, sent, errs)
		}
	}
}

// Datagrams that are not replies to our probes are counted and dropped,
// and do not disturb the accounting. A fake reflector answers probe 0
// only with impostors, so it must be lost, and probe 1 twice.
func TestCollectorForeignDatagrams(t *testing.T) {
	t.Parallel()
	listen := func() *net.UDPConn {
		c, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.MustParseAddrPort("127.0.0.1:0")))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	conn, foreign := listen(), listen()
	const disturbances = 5
	go func() {
		buf := make([]byte, 2048)
		for {
			n, from, err := conn.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			at := time.Now()
			p, err := probes.ParseSenderPacket(buf[:n])
			if err != nil {
				continue
			}
			reply := probes.ReflectorPacket{
				Seq: p.Seq, Timestamp: probes.NTPTimestamp(time.Now()), ErrorEstimate: 1, ReceiveTimestamp: probes.NTPTimestamp(at),
				SenderSeq: p.Seq, SenderTimestamp: p.Timestamp, SenderErrorEstimate: p.ErrorEstimate, SenderTTL: 64,
			}
			send := func(c *net.UDPConn, r probes.ReflectorPacket) {
				c.WriteToUDPAddrPort(probes.AppendReflectorPacket(nil, r), from)
			}
			switch p.Seq {
			case 0:
				wrongTS, unknown := reply, reply
				wrongTS.SenderTimestamp++
				unknown.SenderSeq += 5000
				send(foreign, reply)                                        // 1: foreign source
				conn.WriteToUDPAddrPort([]byte("not a STAMP packet"), from) // 2: too short
				send(conn, wrongTS)                                         // 3: not the timestamp sent
				send(conn, unknown)                                         // 4: never sent
			case 1:
				send(conn, reply)
				send(conn, reply) // 5: duplicate
			default:
				send(conn, reply)
			}
		}
	}()
	cfg := config(10*time.Millisecond, 500*time.Millisecond, 200*time.Millisecond,
		probes.LinkConfig{ID: "noisy", Local: "127.0.0.1", Targets: []string{conn.LocalAddr().String()}})
	_, rec, reg := startCollector(t, cfg)
	ss := rec.waitFor(t, "noisy", 5*time.Second, "probe 0 lost and 2 more samples", func(ss []probes.Sample) bool {
		for i, s := range ss {
			if s.Lost > 0 {
				return len(ss) >= i+3
			}
		}
		return false
	})
	checkAccounting(t, ss)
	lost := 0
	for i, s := range ss {
		lost += s.Lost
		if !s.Known || s.Late != 0 || s.Received == 0 {
			t.Errorf("sample %d: %s; want replies, none late", i, sampleString(s))
		}
	}
	if lost != 1 {
		t.Errorf("%d probes lost, want 1 (probe 0)", lost)
	}
	if got := metric(t, reg, "malformed_total", "link", "noisy"); got != disturbances {
		t.Errorf("malformed_total = %v, want %d", got, disturbances)
	}
}

func TestNew(t *testing.T) {
	t.Parallel()
	good := config(time.Second, time.Second, time.Second, probes.LinkConfig{ID: "a", Targets: []string{"127.0.0.1:862"}})
	if _, err := probes.New(good, probes.Deps{}); err == nil || !strings.Contains(err.Error(), "OnSample") {
		t.Errorf("New without OnSample: %v; want an error naming OnSample", err)
	}
	if _, err := probes.New(probes.Config{}, probes.Deps{OnSample: func(probes.Sample) {}}); err == nil {
		t.Error("New accepted an empty config")
	}
	c, err := probes.New(good, probes.Deps{OnSample: func(probes.Sample) {}})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Stop(t.Context()); err != nil {
		t.Errorf("Stop before Start: %v", err)
	}
}

// Samples are stamped with Deps.Now, and OnSample calls never overlap.
func TestCollectorStamps(t *testing.T) {
	t.Parallel()
	refl, _ := startReflector(t, "127.0.0.1:0")
	var mu sync.Mutex
	var ticks int
	base := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	now := func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		ticks++
		return base.Add(time.Duration(ticks) * time.Hour)
	}
	rec := &recorder{}
	var inCall atomic.Int32
	onSample := func(s probes.Sample) {
		if inCall.Add(1) != 1 {
			t.Error("OnSample calls overlap")
		}
		time.Sleep(time.Millisecond)
		rec.add(s)
		inCall.Add(-1)
	}
	cfg := config(10*time.Millisecond, 100*time.Millisecond, 50*time.Millisecond,
		probes.LinkConfig{ID: "a", Targets: []string{refl.Addr().String()}},
		probes.LinkConfig{ID: "b", Targets: []string{refl.Addr().String()}})
	c, err := probes.New(cfg, probes.Deps{Now: now, OnSample: onSample})
	if err != nil {
		t.Fatal(err)
	}
	starttest.Start(t, c)
	for _, link := range []string{"a", "b"} {
		ss := rec.waitFor(t, link, 3*time.Second, "3 samples", atLeast(3))
		for i, s := range ss {
			if s.Start.Before(base) || !s.End.After(s.Start) || s.End.Sub(s.Start)%time.Hour != 0 {
				t.Errorf("%s sample %d: %v to %v; want stamps from Deps.Now", link, i, s.Start, s.End)
			}
		}
	}
}

func TestCollectorIPv6(t *testing.T) {
	t.Parallel()
	if c, err := net.ListenPacket("udp6", "[::1]:0"); err != nil {
		t.Skipf("no IPv6 loopback: %v", err)
	} else {
		c.Close()
	}
	refl, _ := startReflector(t, "[::1]:0")
	cfg := config(10*time.Millisecond, time.Second, 100*time.Millisecond,
		probes.LinkConfig{ID: "v6", Local: "::1", Targets: []string{refl.Addr().String()}},
		probes.LinkConfig{ID: "any", Targets: []string{refl.Addr().String()}})
	_, rec, _ := startCollector(t, cfg)
	for _, link := range []string{"v6", "any"} {
		ss := rec.waitFor(t, link, 3*time.Second, "3 samples", atLeast(3))
		checkAccounting(t, ss)
		for i, s := range ss {
			if !s.Known || s.Lost != 0 || s.Received == 0 {
				t.Errorf("%s sample %d: %s; want no loss", link, i, sampleString(s))
			}
		}
	}
}
