package bgp

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	api "github.com/osrg/gobgp/v3/api"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/sdnoc/sdnoc/internal/starttest"
	"github.com/sdnoc/sdnoc/lab/loopback"
)

// Addresses: each test uses its own 127.20.N.0/24 so that leftovers of one
// test cannot meet the next. Prefixes are the documentation ranges.
const (
	edgeASN = 65000
	ispASN  = 64500 // + index
)

var (
	pfxA  = netip.MustParsePrefix("198.51.100.0/24")
	pfxB  = netip.MustParsePrefix("203.0.113.0/24")
	pfxV6 = netip.MustParsePrefix("2001:db8:100::/48")
)

// testLog writes at debug level when -v is given, else discards.
func testLog(t testing.TB) *slog.Logger {
	if !testing.Verbose() {
		return nil
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug})).With("test", t.Name())
}

// freePort returns a TCP port that was free on addr a moment ago.
func freePort(t testing.TB, addr string) int {
	t.Helper()
	l, err := net.Listen("tcp", net.JoinHostPort(addr, "0"))
	if err != nil {
		t.Fatalf("find a free port on %s: %v", addr, err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// startISP starts an ISP router on addr that expects the edge from edgeAddr,
// and stops it when the test ends.
func startISP(t testing.TB, name, addr string, asn uint32, edgeAddr string) (*loopback.ISP, int) {
	t.Helper()
	port := freePort(t, addr)
	id := addr
	if netip.MustParseAddr(addr).Is6() {
		id = "127.20.9.9" // router IDs are IPv4
	}
	isp, err := loopback.NewISP(loopback.ISPConfig{
		Name: name, ASN: asn, RouterID: id, Address: addr, Port: port,
		EdgeASN: edgeASN, EdgeAddress: edgeAddr,
	}, testLog(t))
	if err != nil {
		t.Fatal(err)
	}
	starttest.Start(t, isp)
	return isp, port
}

func labConfig(neighbors ...Neighbor) Config {
	c := DefaultConfig()
	c.RouterID = "127.20.0.1"
	c.ASN = edgeASN
	c.HoldTime, c.KeepaliveInterval, c.ConnectRetry = 9*time.Second, 3*time.Second, time.Second
	c.Neighbors = neighbors
	return c
}

// startSpeaker starts a Speaker and stops it when the test ends.
func startSpeaker(t testing.TB, cfg Config, reg prometheus.Registerer) *Speaker {
	t.Helper()
	s, err := New(cfg, Deps{Log: testLog(t), Reg: reg})
	if err != nil {
		t.Fatal(err)
	}
	starttest.Start(t, s)
	return s
}

// waitUp waits until every session of s is established.
func waitUp(t testing.TB, s *Speaker) map[string]Session {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 15*time.Second)
	defer cancel()
	for {
		ss, err := s.Sessions(ctx)
		if err != nil {
			t.Fatalf("sessions: %v", err)
		}
		up := true
		for _, x := range ss {
			up = up && x.Up
		}
		if up {
			return ss
		}
		select {
		case <-ctx.Done():
			t.Fatalf("sessions not all established: %+v", ss)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// waitRoutes waits until isp's routes are exactly want.
func waitRoutes(t testing.TB, isp *loopback.ISP, name string, want ...netip.Prefix) {
	t.Helper()
	slices.SortFunc(want, netip.Prefix.Compare)
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if got, _, err := isp.WaitRoutes(ctx, func(rs []netip.Prefix) bool { return slices.Equal(rs, want) }, 5*time.Millisecond); err != nil {
		t.Fatalf("%s routes = %v, want %v: %v", name, got, want, err)
	}
}

func routes(t testing.TB, isp *loopback.ISP) []netip.Prefix {
	t.Helper()
	rs, err := isp.Routes(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return rs
}

func TestSpeakerPerNeighbor(t *testing.T) {
	const edge = "127.20.0.1"
	ctx := t.Context()
	var (
		isps  []*loopback.ISP
		own   []netip.Prefix // each ISP's own route
		ns    []Neighbor
		names = []string{"pop1/isp1", "pop1/isp2", "pop1/isp3"}
	)
	for i, name := range names {
		addr := fmt.Sprintf("127.20.0.%d", i+2)
		isp, port := startISP(t, name, addr, ispASN+uint32(i+1), edge)
		p := netip.MustParsePrefix(fmt.Sprintf("198.18.%d.0/24", i+1))
		if err := isp.Originate(ctx, p); err != nil {
			t.Fatal(err)
		}
		isps, own = append(isps, isp), append(own, p)
		ns = append(ns, Neighbor{Name: name, Address: addr, Port: port, PeerASN: ispASN + uint32(i+1), LocalAddress: edge})
	}
	reg := prometheus.NewPedanticRegistry()
	s := startSpeaker(t, labConfig(ns...), reg)
	ss := waitUp(t, s)
	for _, name := range names {
		if got := testutil.ToFloat64(s.m.sessionUp.WithLabelValues(name)); got != 1 {
			t.Errorf("session_up{%s} = %v, want 1", name, got)
		}
		if !ss[name].GracefulRestart || ss[name].State != "established" || ss[name].Since.IsZero() {
			t.Errorf("session %s = %+v, want established with graceful restart and a start time", name, ss[name])
		}
	}

	all := []netip.Prefix{pfxA, pfxB, pfxV6}
	for _, name := range names {
		for _, p := range all {
			if err := s.Announce(ctx, name, p); err != nil {
				t.Fatal(err)
			}
		}
	}
	for i, isp := range isps {
		waitRoutes(t, isp, names[i], all...) // the IPv6 prefix rides the IPv4 session, next hop ::ffff:127.20.0.1
	}

	// Withdraw from isp2 only.
	if err := s.Withdraw(ctx, names[1], pfxB); err != nil {
		t.Fatal(err)
	}
	waitRoutes(t, isps[1], names[1], pfxA, pfxV6)
	for _, i := range []int{0, 2} {
		if got := routes(t, isps[i]); !slices.Equal(got, sorted(all)) {
			t.Errorf("%s routes = %v after withdrawing from isp2, want %v", names[i], got, sorted(all))
		}
	}

	// Applied agrees with each ISP's own RIB.
	applied, err := s.Applied(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for i, name := range names {
		if got := routes(t, isps[i]); !slices.Equal(applied[name], got) {
			t.Errorf("Applied()[%s] = %v, ISP has %v", name, applied[name], got)
		}
	}
	if want := []netip.Prefix{pfxA, pfxV6}; !slices.Equal(applied[names[1]], want) {
		t.Errorf("Applied()[isp2] = %v, want %v", applied[names[1]], want)
	}

	// Idempotent: repeats change nothing and are not counted.
	if err := s.Announce(ctx, names[0], pfxA); err != nil {
		t.Fatal(err)
	}
	if err := s.Withdraw(ctx, names[1], pfxB); err != nil {
		t.Fatal(err)
	}
	if got := testutil.ToFloat64(s.m.announces.WithLabelValues(names[0])); got != 3 {
		t.Errorf("announces_total{isp1} = %v, want 3", got)
	}

	// Re-announce to isp2.
	if err := s.Announce(ctx, names[1], pfxB); err != nil {
		t.Fatal(err)
	}
	waitRoutes(t, isps[1], names[1], all...)
	if a, w := testutil.ToFloat64(s.m.announces.WithLabelValues(names[1])), testutil.ToFloat64(s.m.withdraws.WithLabelValues(names[1])); a != 4 || w != 1 {
		t.Errorf("isp2 announces, withdraws = %v, %v; want 4, 1", a, w)
	}

	// Unknown neighbour.
	for _, f := range []func(context.Context, string, netip.Prefix) error{s.Announce, s.Withdraw} {
		err := f(ctx, "pop9/isp9", pfxA)
		if !errors.Is(err, ErrUnknownNeighbor) || !strings.Contains(err.Error(), "pop9/isp9") || !strings.Contains(err.Error(), pfxA.String()) {
			t.Errorf("unknown neighbour: err = %v, want ErrUnknownNeighbor naming neighbour and prefix", err)
		}
	}
	if err := s.Announce(ctx, names[0], netip.Prefix{}); err == nil {
		t.Error("Announce(invalid prefix) = nil, want an error")
	}

	// Only locally originated routes leave the edge: each ISP sent its own
	// route to the edge (Received), and none reached another ISP.
	ss, err = s.Sessions(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for i, isp := range isps {
		for j, p := range own {
			if slices.Contains(routes(t, isp), p) {
				t.Errorf("%s learned %s, the route of %s, through the edge", names[i], p, names[j])
			}
		}
		if x := ss[names[i]]; x.Received != 1 || x.Advertised != 3 || !x.Up {
			t.Errorf("session %s = %+v, want up, 1 received (rejected on import), 3 advertised", names[i], x)
		}
		if slices.Contains(applied[names[i]], own[i]) {
			t.Errorf("Applied()[%s] holds the ISP's own %s", names[i], own[i])
		}
	}
	if got := testutil.ToFloat64(s.m.errors.WithLabelValues(names[0])); got != 0 {
		t.Errorf("errors_total{isp1} = %v, want 0", got)
	}

	// Stop ends the sessions with a NOTIFICATION: the ISPs drop our routes.
	if err := s.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	for i, isp := range isps {
		waitRoutes(t, isp, names[i])
	}
	if err := s.Announce(ctx, names[0], pfxA); !errors.Is(err, ErrNotRunning) {
		t.Errorf("Announce after Stop: err = %v, want ErrNotRunning", err)
	}
	if _, err := s.Applied(ctx); !errors.Is(err, ErrNotRunning) {
		t.Errorf("Applied after Stop: err = %v, want ErrNotRunning", err)
	}
	if got := testutil.ToFloat64(s.m.sessionUp.WithLabelValues(names[0])); got != 0 {
		t.Errorf("session_up{isp1} after Stop = %v, want 0", got)
	}
	if n, err := testutil.GatherAndCount(reg, "session_up", "announces_total", "withdraws_total", "errors_total"); err != nil || n != 12 {
		t.Errorf("registered series = %d, %v; want 12 (4 metrics x 3 neighbours)", n, err)
	}
}

func sorted(ps []netip.Prefix) []netip.Prefix {
	ps = slices.Clone(ps)
	slices.SortFunc(ps, netip.Prefix.Compare)
	return ps
}

// TestIPv6Session runs the session over ::1 and carries both families.
// The IPv4 next hop is not a loopback address: GoBGP accepts a loopback
// NEXT_HOP only on an IPv4 loopback session (pkg/server/fsm.go, allowLoopback)
// and treats the UPDATE as a withdrawal otherwise.
func TestIPv6Session(t *testing.T) {
	ctx := t.Context()
	isp, port := startISP(t, "isp6", "::1", ispASN+6, "::1")
	s := startSpeaker(t, labConfig(Neighbor{
		Name: "pop1/isp6", Address: "::1", Port: port, PeerASN: ispASN + 6,
		LocalAddress: "::1", NextHopV4: "198.18.0.1",
	}), nil)
	waitUp(t, s)
	for _, p := range []netip.Prefix{pfxA, pfxV6} {
		if err := s.Announce(ctx, "pop1/isp6", p); err != nil {
			t.Fatal(err)
		}
	}
	waitRoutes(t, isp, "isp6", pfxA, pfxV6)
}

// TestAnnounceBeforeStart checks that prefixes announced before Start are
// the ones the ISP first learns, and that Applied needs a running speaker.
func TestAnnounceBeforeStart(t *testing.T) {
	const edge = "127.20.2.1"
	ctx := t.Context()
	isp, port := startISP(t, "isp1", "127.20.2.2", ispASN+1, edge)
	cfg := labConfig(Neighbor{Name: "isp1", Address: "127.20.2.2", Port: port, PeerASN: ispASN + 1, LocalAddress: edge})
	s, err := New(cfg, Deps{Log: testLog(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Stop(context.Background()) })
	if _, err := s.Applied(ctx); !errors.Is(err, ErrNotRunning) {
		t.Errorf("Applied before Start: err = %v, want ErrNotRunning", err)
	}
	for _, p := range []netip.Prefix{pfxA, pfxB, pfxV6} {
		if err := s.Announce(ctx, "isp1", p); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Withdraw(ctx, "isp1", pfxB); err != nil {
		t.Fatal(err)
	}
	if err := s.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := s.Start(ctx); err == nil {
		t.Error("second Start = nil, want an error")
	}
	waitRoutes(t, isp, "isp1", pfxA, pfxV6)
	applied, err := s.Applied(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if want := sorted([]netip.Prefix{pfxA, pfxV6}); !slices.Equal(applied["isp1"], want) {
		t.Errorf("Applied()[isp1] = %v, want %v", applied["isp1"], want)
	}

	// A path GoBGP refuses is an error naming neighbour and prefix, counted,
	// and not remembered as announced.
	l := s.links["isp1"]
	l.mu.Lock()
	l.n.NextHopV4 = "not-an-address"
	l.mu.Unlock()
	err = s.Announce(ctx, "isp1", pfxB)
	if err == nil || !strings.Contains(err.Error(), "isp1") || !strings.Contains(err.Error(), pfxB.String()) {
		t.Errorf("Announce with a bad next hop: err = %v, want an error naming isp1 and %v", err, pfxB)
	}
	if got := testutil.ToFloat64(s.m.errors.WithLabelValues("isp1")); got != 1 {
		t.Errorf("errors_total{isp1} = %v, want 1", got)
	}
	l.mu.Lock()
	_, ok := l.prefixes[pfxB]
	l.mu.Unlock()
	if ok {
		t.Error("refused prefix recorded as announced")
	}
}

func TestStartFailsOnBusyPort(t *testing.T) {
	const local = "127.20.3.1"
	l, err := net.Listen("tcp", net.JoinHostPort(local, "0"))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	busy := int32(l.Addr().(*net.TCPAddr).Port)
	s, err := New(labConfig(Neighbor{Name: "isp1", Address: "127.20.3.2", PeerASN: ispASN + 1, LocalAddress: local, ListenPort: busy}), Deps{})
	if err != nil {
		t.Fatal(err)
	}
	err = s.Start(t.Context())
	if err == nil || !strings.Contains(err.Error(), "isp1") {
		t.Fatalf("Start on a busy port: err = %v, want an error naming the link", err)
	}
	if err := s.Announce(t.Context(), "isp1", pfxA); !errors.Is(err, ErrNotRunning) {
		t.Errorf("Announce after a failed Start: err = %v, want ErrNotRunning", err)
	}
	if err := s.Stop(t.Context()); err != nil {
		t.Errorf("Stop after a failed Start = %v", err)
	}
}

// relay forwards TCP from its own address to target, dialing from src, and
// can cut every connection at once without a FIN handshake: what the ISP
// sees when the edge's process is killed.
type relay struct {
	ln    net.Listener
	mu    sync.Mutex
	conns []*net.TCPConn
	wg    sync.WaitGroup
}

func startRelay(t testing.TB, addr, src, target string) (*relay, int) {
	t.Helper()
	ln, err := net.Listen("tcp", net.JoinHostPort(addr, "0"))
	if err != nil {
		t.Fatal(err)
	}
	r := &relay{ln: ln}
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
	r.wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			up, err := d.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			r.mu.Lock()
			r.conns = append(r.conns, c.(*net.TCPConn), up.(*net.TCPConn))
			r.mu.Unlock()
			r.wg.Go(func() { io.Copy(up, c); up.Close() })
			r.wg.Go(func() { io.Copy(c, up); c.Close() })
		}
	})
	t.Cleanup(r.kill)
	return r, ln.Addr().(*net.TCPAddr).Port
}

// kill closes the listener and resets every connection.
func (r *relay) kill() {
	r.ln.Close()
	r.mu.Lock()
	for _, c := range r.conns {
		c.SetLinger(0) // RST, as a dead host's kernel would send
		c.Close()
	}
	r.conns = nil
	r.mu.Unlock()
	r.wg.Wait()
}

// TestGracefulRestart kills the edge's session without a NOTIFICATION and
// restarts the speaker: the ISP keeps the routes throughout, and drops at
// the new speaker's End-of-RIB the one it did not re-announce.
func TestGracefulRestart(t *testing.T) {
	const (
		edge    = "127.20.4.1"
		ispAddr = "127.20.4.2"
		name    = "pop1/isp1"
	)
	ctx := t.Context()
	isp, ispPort := startISP(t, "isp1", ispAddr, ispASN+1, edge)
	r, relayPort := startRelay(t, "127.20.4.3", edge, net.JoinHostPort(ispAddr, fmt.Sprint(ispPort)))

	cfg := labConfig(Neighbor{Name: name, Address: "127.20.4.3", Port: relayPort, PeerASN: ispASN + 1, LocalAddress: edge})
	cfg.GracefulRestartTime = 30 * time.Second
	a := startSpeaker(t, cfg, nil)
	if ss := waitUp(t, a); !ss[name].GracefulRestart {
		t.Fatalf("graceful restart not negotiated: %+v", ss[name])
	}
	for _, p := range []netip.Prefix{pfxA, pfxB} {
		if err := a.Announce(ctx, name, p); err != nil {
			t.Fatal(err)
		}
	}
	waitRoutes(t, isp, "isp1", pfxA, pfxB)

	r.kill()
	deadline := time.Now().Add(10 * time.Second)
	for up := true; up; {
		var err error
		if up, err = isp.Established(ctx); err != nil {
			t.Fatal(err)
		}
		if time.Now().After(deadline) {
			t.Fatal("ISP session still established after the relay died")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if got, want := routes(t, isp), sorted([]netip.Prefix{pfxA, pfxB}); !slices.Equal(got, want) {
		t.Fatalf("ISP routes after the edge died = %v, want %v kept as stale", got, want)
	}
	if err := a.Stop(ctx); err != nil { // no session left: nothing reaches the ISP
		t.Fatal(err)
	}

	// The restarted speaker re-announces pfxA before its session is up.
	cfg.Neighbors[0].Address, cfg.Neighbors[0].Port = ispAddr, ispPort
	b, err := New(cfg, Deps{Log: testLog(t)})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Announce(ctx, name, pfxA); err != nil {
		t.Fatal(err)
	}
	// The ISP keeps both routes while nothing talks to it.
	for range 5 {
		if got, want := routes(t, isp), sorted([]netip.Prefix{pfxA, pfxB}); !slices.Equal(got, want) {
			t.Fatalf("ISP routes while the edge is down = %v, want %v", got, want)
		}
		time.Sleep(100 * time.Millisecond)
	}

	// The ISP's RIB is not read again until its session is up: in GoBGP
	// v3.37.0, ListPath reads the source PeerInfo of each path unlocked
	// (pkg/server/grpc_server.go, toPathAPI), and the stale paths share that
	// PeerInfo with the FSM, which rewrites it on the new OPEN
	// (pkg/server/fsm.go, opensent): a data race. The Established check goes
	// through GoBGP's management goroutine, which orders it after the OPEN.
	start := time.Now()
	if err := b.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Stop(context.Background()) })
	for up := false; !up; time.Sleep(5 * time.Millisecond) {
		var err error
		if up, err = isp.Established(ctx); err != nil {
			t.Fatal(err)
		}
		if time.Since(start) > 20*time.Second {
			t.Fatal("restarted speaker not established")
		}
	}
	established := time.Since(start)
	// From then on, pfxA must be in every sample until the ISP holds it alone.
	var missing []time.Duration
	var samples int
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if _, _, err := isp.WaitRoutes(wctx, func(rs []netip.Prefix) bool {
		samples++
		if !slices.Contains(rs, pfxA) {
			missing = append(missing, time.Since(start))
		}
		return slices.Equal(rs, []netip.Prefix{pfxA})
	}, time.Millisecond); err != nil {
		t.Fatalf("stale pfxB not flushed by the restarted speaker's End-of-RIB: %v", err)
	}
	if len(missing) > 0 {
		t.Errorf("pfxA missing from the ISP's RIB in %d of %d samples (first at %v)", len(missing), samples, missing[0])
	}
	t.Logf("restart: session up after %v, ISP holds the re-announced set only after %v (%d samples)",
		established.Round(time.Millisecond), time.Since(start).Round(time.Millisecond), samples)
}

// gobgpGoroutines counts the live goroutines running GoBGP code, apart
// from BgpServer.Serve, which never returns.
func gobgpGoroutines() (n int, stacks []string) {
	buf := make([]byte, 1<<22)
	buf = buf[:runtime.Stack(buf, true)]
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, "osrg/gobgp") && !strings.Contains(g, "server.(*BgpServer).Serve(") {
			n++
			stacks = append(stacks, g)
		}
	}
	return n, stacks
}

// TestStopCleansUp checks that after Stop only GoBGP's Serve loops remain.
func TestStopCleansUp(t *testing.T) {
	const edge = "127.20.5.1"
	ctx := t.Context()
	var ns []Neighbor
	var isps []*loopback.ISP
	for i := range 2 {
		addr := fmt.Sprintf("127.20.5.%d", i+2)
		port := freePort(t, addr)
		isp, err := loopback.NewISP(loopback.ISPConfig{Name: addr, ASN: ispASN + 1, RouterID: addr, Address: addr, Port: port, EdgeASN: edgeASN, EdgeAddress: edge}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := isp.Start(ctx); err != nil {
			t.Fatal(err)
		}
		isps = append(isps, isp)
		ns = append(ns, Neighbor{Name: addr, Address: addr, Port: port, PeerASN: ispASN + 1, LocalAddress: edge})
	}
	s, err := New(labConfig(ns...), Deps{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(ctx); err != nil {
		t.Fatal(err)
	}
	waitUp(t, s)
	if err := s.Announce(ctx, ns[0].Name, pfxA); err != nil {
		t.Fatal(err)
	}
	if err := s.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if err := s.Stop(ctx); err != nil {
		t.Errorf("second Stop = %v", err)
	}
	for _, isp := range isps {
		if err := isp.Stop(ctx); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		n, stacks := gobgpGoroutines()
		if n == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d GoBGP goroutines besides Serve remain after Stop:\n%s", n, strings.Join(stacks, "\n\n"))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestConcurrentUse announces and withdraws from several goroutines while
// others read Applied and Sessions; run it with -race.
func TestConcurrentUse(t *testing.T) {
	const edge = "127.20.7.1"
	ctx := t.Context()
	isp, port := startISP(t, "isp1", "127.20.7.2", ispASN+1, edge)
	s := startSpeaker(t, labConfig(Neighbor{Name: "isp1", Address: "127.20.7.2", Port: port, PeerASN: ispASN + 1, LocalAddress: edge}), nil)
	waitUp(t, s)
	var want []netip.Prefix
	var wg sync.WaitGroup
	for w := range 4 {
		for i := range 50 {
			p := netip.PrefixFrom(netip.AddrFrom4([4]byte{100, 64, byte(w*50 + i), 0}), 24)
			if i%2 == 0 {
				want = append(want, p)
			}
		}
		wg.Go(func() {
			for i := range 50 {
				p := netip.PrefixFrom(netip.AddrFrom4([4]byte{100, 64, byte(w*50 + i), 0}), 24)
				if err := s.Announce(ctx, "isp1", p); err != nil {
					t.Error(err)
				}
				if i%2 == 1 {
					if err := s.Withdraw(ctx, "isp1", p); err != nil {
						t.Error(err)
					}
				}
			}
		})
	}
	wg.Go(func() {
		for range 20 {
			if _, err := s.Applied(ctx); err != nil {
				t.Error(err)
			}
			if _, err := s.Sessions(ctx); err != nil {
				t.Error(err)
			}
		}
	})
	wg.Wait()
	waitRoutes(t, isp, "isp1", want...)
	applied, err := s.Applied(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(applied["isp1"], sorted(want)) {
		t.Errorf("Applied() = %d prefixes, want %d", len(applied["isp1"]), len(want))
	}
}

// TestImportRejectsISPTable has the ISP send a table of its own: the
// session stays up, the routes are counted as received (GoBGP keeps them
// in its Adj-RIB-In) but reach neither the RIB nor Applied.
func TestImportRejectsISPTable(t *testing.T) {
	const (
		edge = "127.20.9.1"
		n    = 5000
	)
	ctx := t.Context()
	isp, port := startISP(t, "isp1", "127.20.9.2", ispASN+1, edge)
	for i := range n {
		if err := isp.Originate(ctx, netip.PrefixFrom(netip.AddrFrom4([4]byte{100, byte(64 + i/256), byte(i % 256), 0}), 24)); err != nil {
			t.Fatal(err)
		}
	}
	s := startSpeaker(t, labConfig(Neighbor{Name: "isp1", Address: "127.20.9.2", Port: port, PeerASN: ispASN + 1, LocalAddress: edge}), nil)
	waitUp(t, s)
	if err := s.Announce(ctx, "isp1", pfxA); err != nil {
		t.Fatal(err)
	}
	waitRoutes(t, isp, "isp1", pfxA)
	deadline := time.Now().Add(10 * time.Second)
	for {
		ss, err := s.Sessions(ctx)
		if err != nil {
			t.Fatal(err)
		}
		x := ss["isp1"]
		if x.Received == n {
			if !x.Up || x.Advertised != 1 {
				t.Errorf("session = %+v, want up with 1 advertised", x)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("session = %+v, want %d received", x, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
	applied, err := s.Applied(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if want := []netip.Prefix{pfxA}; !slices.Equal(applied["isp1"], want) {
		t.Errorf("Applied() = %v, want %v", applied["isp1"], want)
	}
	// Nothing from the ISP is in the edge server's RIB.
	l := s.links["isp1"]
	srv, err := l.server()
	if err != nil {
		t.Fatal(err)
	}
	var inRIB int
	for _, f := range families() {
		if err := srv.ListPath(ctx, &api.ListPathRequest{TableType: api.TableType_GLOBAL, Family: f}, func(*api.Destination) { inRIB++ }); err != nil {
			t.Fatal(err)
		}
	}
	if inRIB != 1 {
		t.Errorf("edge RIB holds %d destinations, want 1 (our own)", inRIB)
	}
}

// TestPrepend checks that SetPrepend re-announces what a neighbour has
// with extra copies of our AS, that the ISP sees them, and that 0 ends it.
func TestPrepend(t *testing.T) {
	const edge = "127.20.16.1"
	ctx := t.Context()
	isp, port := startISP(t, "isp1", "127.20.16.2", ispASN+1, edge)
	s := startSpeaker(t, labConfig(Neighbor{Name: "isp1", Address: "127.20.16.2", Port: port, PeerASN: ispASN + 1, LocalAddress: edge}), nil)
	waitUp(t, s)
	for _, p := range []netip.Prefix{pfxA, pfxV6} {
		if err := s.Announce(ctx, "isp1", p); err != nil {
			t.Fatal(err)
		}
	}
	waitRoutes(t, isp, "isp1", pfxA, pfxV6)
	pathLen := func(want int) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			paths, err := isp.ASPaths(ctx)
			if err == nil && len(paths[pfxA]) == want && len(paths[pfxV6]) == want {
				for _, asn := range paths[pfxA] {
					if asn != edgeASN {
						t.Fatalf("AS path %v: want only %d", paths[pfxA], edgeASN)
					}
				}
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("AS paths %v (%v); want %d hops each", paths, err, want)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	pathLen(1)
	if err := s.SetPrepend(ctx, "isp1", 3); err != nil {
		t.Fatal(err)
	}
	pathLen(4)
	// A prefix announced while prepending gets the same path.
	if err := s.Announce(ctx, "isp1", pfxB); err != nil {
		t.Fatal(err)
	}
	waitRoutes(t, isp, "isp1", pfxA, pfxB, pfxV6)
	if paths, _ := isp.ASPaths(ctx); len(paths[pfxB]) != 4 {
		t.Fatalf("new prefix while prepending: path %v", paths[pfxB])
	}
	if err := s.SetPrepend(ctx, "isp1", 0); err != nil {
		t.Fatal(err)
	}
	pathLen(1)
	for _, bad := range []int{-1, 11} {
		if err := s.SetPrepend(ctx, "isp1", bad); err == nil {
			t.Errorf("SetPrepend(%d) accepted", bad)
		}
	}
	if err := s.SetPrepend(ctx, "nope", 1); !errors.Is(err, ErrUnknownNeighbor) {
		t.Errorf("unknown neighbour: %v", err)
	}
}
