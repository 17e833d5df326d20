package telemetry

import (
	"context"
	"fmt"
	"math"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/sdnoc/sdnoc/gnmiagent"
	"github.com/sdnoc/sdnoc/internal/starttest"
)

// fakeIf is an interface in a fake sysfs tree whose counters grow at
// fixed byte rates, rewritten every step.
type fakeIf struct {
	root, name string
	mu         sync.Mutex
	oper       string
}

func (f *fakeIf) setOper(s string) {
	f.mu.Lock()
	f.oper = s
	f.mu.Unlock()
}

func (f *fakeIf) write(t testing.TB, in, out uint64) {
	f.mu.Lock()
	oper := f.oper
	f.mu.Unlock()
	dir := filepath.Join(f.root, f.name, "statistics")
	for file, v := range map[string]uint64{
		"rx_bytes": in, "tx_bytes": out, "rx_packets": in / 1000, "tx_packets": out / 1000,
		"rx_errors": 0, "tx_errors": 0, "rx_dropped": 0, "tx_dropped": 0,
	} {
		tmp := filepath.Join(dir, "."+file)
		if err := os.WriteFile(tmp, fmt.Appendf(nil, "%d\n", v), 0o644); err != nil {
			t.Error(err)
			return
		}
		if err := os.Rename(tmp, filepath.Join(dir, file)); err != nil {
			t.Error(err)
			return
		}
	}
	tmp := filepath.Join(f.root, f.name, ".operstate")
	if err := os.WriteFile(tmp, []byte(oper+"\n"), 0o644); err != nil {
		t.Error(err)
	}
	if err := os.Rename(tmp, filepath.Join(f.root, f.name, "operstate")); err != nil {
		t.Error(err)
	}
}

// rates makes f's counters grow at inRate and outRate bytes/s from
// now: it is the agent's interface source, and rewrites the sysfs files
// from the clock just before the agent reads them through gnmiagent.Sysfs,
// so that the truth at each reading is known whatever the scheduler does.
// It records the longest time from computing the values to returning
// them, the error bound of each reading's timestamp.
func (f *fakeIf) rates(t *testing.T, inRate, outRate float64) *ratedSysfs {
	if err := os.MkdirAll(filepath.Join(f.root, f.name, "statistics"), 0o755); err != nil {
		t.Fatal(err)
	}
	f.write(t, 0, 0)
	return &ratedSysfs{t: t, f: f, in: inRate, out: outRate, start: time.Now()}
}

type ratedSysfs struct {
	t       *testing.T
	f       *fakeIf
	in, out float64
	start   time.Time

	mu    sync.Mutex
	worst time.Duration
}

func (r *ratedSysfs) Interfaces(ctx context.Context) ([]gnmiagent.Interface, error) {
	at := time.Now()
	s := at.Sub(r.start).Seconds()
	r.f.write(r.t, uint64(r.in*s), uint64(r.out*s))
	itfs, err := gnmiagent.Sysfs{Root: r.f.root}.Interfaces(ctx)
	r.mu.Lock()
	r.worst = max(r.worst, time.Since(at))
	r.mu.Unlock()
	return itfs, err
}

func (r *ratedSysfs) readLag() time.Duration {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.worst
}

type neighbors []gnmiagent.Neighbor

func (n neighbors) Neighbors(context.Context) ([]gnmiagent.Neighbor, error) { return n, nil }

var isp1 = netip.MustParseAddr("192.0.2.1")

func startAgent(t *testing.T, listen, root string, ifs gnmiagent.InterfaceSource) *gnmiagent.Agent {
	t.Helper()
	cfg := gnmiagent.DefaultConfig()
	cfg.Listen = listen
	cfg.SysfsRoot = root
	cfg.MinSampleInterval = 10 * time.Millisecond
	a, err := gnmiagent.New(cfg, gnmiagent.Deps{
		Interfaces: ifs,
		Neighbors:  neighbors{{Address: isp1, SessionState: "ESTABLISHED"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	return a
}

// samples collects a collector's samples for the test to wait on.
type samples struct{ ch chan Sample }

func (s samples) on(smp Sample) {
	select {
	case s.ch <- smp:
	default: // the test is not waiting; drop rather than stall the collector
	}
}

// next returns the first sample for which ok holds, failing after d.
func (s samples) next(t *testing.T, d time.Duration, what string, ok func(Sample) bool) Sample {
	t.Helper()
	deadline := time.After(d)
	for {
		select {
		case smp := <-s.ch:
			if ok(smp) {
				return smp
			}
		case <-deadline:
			t.Fatalf("no sample %s within %v", what, d)
		}
	}
}

func startCollector(t *testing.T, iv time.Duration, addr string) (*Collector, samples) {
	t.Helper()
	s := samples{ch: make(chan Sample, 64)}
	cfg := Config{Interval: iv, Routers: []RouterConfig{{
		Name: "r1", Address: addr, Insecure: true,
		Links: map[string]LinkMap{"pop1/isp1": {Interface: "eth1", Capacity: 10_000_000, Neighbor: isp1}},
	}}}
	c, err := New(cfg, Deps{Reg: prometheus.NewPedanticRegistry(), OnSample: s.on})
	if err != nil {
		t.Fatal(err)
	}
	return starttest.Start(t, c), s
}

// TestEndToEnd runs the collector against the agent over gRPC: counters
// growing at 1 and 2 Mbit/s on a 10 Mbit/s link, then the interface
// going down, then the agent going away and coming back.
func TestEndToEnd(t *testing.T) {
	const (
		iv              = 200 * time.Millisecond
		inRate, outRate = 125_000, 250_000 // bytes/s: 1 and 2 Mbit/s
	)
	root := t.TempDir()
	eth1 := &fakeIf{root: root, name: "eth1", oper: "up"}
	src := eth1.rates(t, inRate, outRate)
	a := startAgent(t, "127.0.0.1:0", root, src)
	addr := a.Addr().String()
	t.Cleanup(func() { a.Stop(context.Background()) })
	c, s := startCollector(t, iv, addr)

	known := s.next(t, 5*time.Second, "known", func(x Sample) bool { return x.Known })
	for range 5 {
		known = s.next(t, time.Second, "known", func(x Sample) bool { return x.Known })
		// Each reading is stamped up to readLag after the values were
		// computed: a rate over an interval is off by at most 2 lags (the
		// interval may also be shorter than iv by as much). 1% for
		// rounding.
		tol := 0.01 + 2*float64(src.readLag())/float64(iv-2*src.readLag())
		if known.Link != "pop1/isp1" || known.Source != "gnmi" || !known.OperUp || known.BGPState != "ESTABLISHED" {
			t.Fatalf("sample %+v", known)
		}
		for _, c := range []struct {
			name      string
			got, want float64
		}{
			{"InBps", known.InBps, 8 * inRate}, {"OutBps", known.OutBps, 8 * outRate}, {"Utilisation", known.Utilisation, 0.2},
		} {
			if math.Abs(c.got-c.want) > tol*c.want {
				t.Errorf("%s = %g; want %g ± %.1f%%", c.name, c.got, c.want, 100*tol)
			}
		}
	}
	t.Logf("rates within %.2f%%: worst read lag %v", 100*(0.01+2*float64(src.readLag())/float64(iv-2*src.readLag())), src.readLag())
	if got := testutil.ToFloat64(c.metrics.routerUp.WithLabelValues("r1")); got != 1 {
		t.Errorf("router_up = %g; want 1", got)
	}

	eth1.setOper("down")
	s.next(t, 5*iv, "with the interface down", func(x Sample) bool { return x.Known && !x.OperUp })

	if err := a.Stop(t.Context()); err != nil {
		t.Fatal(err)
	}
	stopped := time.Now()
	s.next(t, 3*iv, "unknown after the agent stopped", func(x Sample) bool { return !x.Known })
	t.Logf("unknown %v after the agent stopped", time.Since(stopped))
	s.next(t, 3*iv, "unknown again", func(x Sample) bool {
		if x.Known {
			t.Errorf("known sample %+v while the agent is stopped", x)
		}
		return true
	})
	if got := testutil.ToFloat64(c.metrics.routerUp.WithLabelValues("r1")); got != 0 {
		t.Errorf("router_up = %g; want 0", got)
	}

	eth1.setOper("up")
	b := startAgent(t, addr, root, src)
	t.Cleanup(func() { b.Stop(context.Background()) })
	restarted := time.Now()
	back := s.next(t, 10*time.Second, "known after the agent restarted", func(x Sample) bool { return x.Known && x.OperUp })
	t.Logf("known %v after the agent restarted", time.Since(restarted))
	if tol := 0.01 + 2*float64(src.readLag())/float64(iv-2*src.readLag()); math.Abs(back.InBps-8*inRate) > tol*8*inRate {
		t.Errorf("InBps after restart = %g; want %g", back.InBps, 8.0*inRate)
	}
	if got := testutil.ToFloat64(c.metrics.streamErrors.WithLabelValues("r1")); got < 1 {
		t.Errorf("stream_errors_total = %g; want 1 or more", got)
	}
}

// TestSilentRouter: a router that keeps the stream open but sends
// nothing for 3 intervals is dropped and subscribed to again, and its
// links are never known.
func TestSilentRouter(t *testing.T) {
	root := t.TempDir()
	eth1 := &fakeIf{root: root, name: "eth1", oper: "up"}
	eth1.rates(t, 1000, 1000)
	cfg := gnmiagent.DefaultConfig()
	cfg.Listen = "127.0.0.1:0"
	cfg.SysfsRoot = root
	cfg.MinSampleInterval = time.Hour // one initial update, then silence
	a, err := gnmiagent.New(cfg, gnmiagent.Deps{Neighbors: neighbors{}})
	if err != nil {
		t.Fatal(err)
	}
	starttest.Start(t, a)
	const iv = 50 * time.Millisecond
	c, s := startCollector(t, iv, a.Addr().String())
	deadline := time.Now().Add(20 * iv)
	for time.Now().Before(deadline) {
		s.next(t, 20*iv, "", func(x Sample) bool {
			if x.Known {
				t.Fatalf("known sample %+v from a router that sent one update", x)
			}
			return true
		})
	}
	if got := testutil.ToFloat64(c.metrics.streamErrors.WithLabelValues("r1")); got < 1 {
		t.Errorf("stream_errors_total = %g; want 1 or more", got)
	}
}

// TestUnreachable: a router nobody answers for is unknown, not idle.
func TestUnreachable(t *testing.T) {
	_, s := startCollector(t, 50*time.Millisecond, "127.0.0.1:1")
	for range 5 {
		smp := s.next(t, time.Second, "", func(Sample) bool { return true })
		if smp.Known || smp.InBps != 0 {
			t.Fatalf("sample %+v from an unreachable router", smp)
		}
	}
}
