package realpeers

import (
	"context"
	"fmt"
	"net/netip"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sdnoc/sdnoc/collectors/telemetry"
	"github.com/sdnoc/sdnoc/lab/netns"
	"github.com/sdnoc/sdnoc/lab/netns/netnstest"
)

// gnmiInterval is the collector's sample interval.
const gnmiInterval = 500 * time.Millisecond

// samples keeps what a telemetry collector reports.
type samples struct {
	mu  sync.Mutex
	all []telemetry.Sample
}

func (s *samples) add(x telemetry.Sample) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.all = append(s.all, x)
}

// since returns the samples stamped after t.
func (s *samples) since(t time.Time) []telemetry.Sample {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []telemetry.Sample
	for _, x := range s.all {
		if x.Time.After(t) {
			out = append(out, x)
		}
	}
	return out
}

// last returns the newest sample, and whether there is one.
func (s *samples) last() (telemetry.Sample, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.all) == 0 {
		return telemetry.Sample{}, false
	}
	return s.all[len(s.all)-1], true
}

// counters reads an interface's byte counters inside ns at once.
func counters(ctx context.Context, ns *netns.Namespace, ifname string) (rx, tx uint64, at time.Time, err error) {
	dir := "/sys/class/net/" + ifname + "/statistics/"
	out, err := ns.Run(ctx, "cat", dir+"rx_bytes", dir+"tx_bytes")
	at = time.Now()
	if err != nil {
		return 0, 0, at, err
	}
	f := strings.Fields(string(out))
	if len(f) != 2 {
		return 0, 0, at, fmt.Errorf("counters of %s: %q", ifname, out)
	}
	rx, err1 := strconv.ParseUint(f[0], 10, 64)
	tx, err2 := strconv.ParseUint(f[1], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, 0, at, fmt.Errorf("counters of %s: %q", ifname, out)
	}
	return rx, tx, at, nil
}

// TestGNMIAgent runs the real `sdnoc gnmi-agent` in a namespace, pushes
// traffic both ways over one of its veths, and checks through the
// telemetry collector (gnmic's API, from the root namespace, across a
// second veth) that the link's in and out rates are the interface's own
// counters' and that it is up; then it sets the interface down, and up
// again, and checks the collector follows.
//
//	[peer] to-rtr ── isp1 [rtr: sdnoc gnmi-agent] mgmt ── root: collector
func TestGNMIAgent(t *testing.T) {
	if _, err := exec.LookPath("go"); err != nil {
		netnstest.Unavailable(t, "needs the go command in PATH to build sdnoc")
	}
	l := netnstest.New(t, "cat", "env")
	ctx := t.Context()
	bin := netnstest.Sdnoc(t, t.TempDir())

	w := wire(t, l, "peer", "to-rtr", "rtr", "isp1", "mgmt")
	peer, rtr, peerAddr, rtrAddr, rtrMgmt := w.a, w.b, w.aAddr, w.bAddr, w.bMgmt
	listen := netip.AddrPortFrom(rtrMgmt.Addr(), 9339).String()
	agent, err := rtr.Start(bin, "gnmi-agent", "--listen", listen, "--sysfs", "/sys/class/net", "--bgp-command", "")
	if err != nil {
		t.Fatal(err)
	}
	var got samples
	cfg := telemetry.DefaultConfig()
	cfg.Interval = gnmiInterval
	cfg.Routers = []telemetry.RouterConfig{{
		Name: "rtr", Address: listen, Insecure: true,
		Links: map[string]telemetry.LinkMap{linkID: {Interface: "isp1", Capacity: 1_000_000_000}},
	}}
	coll, err := telemetry.New(cfg, telemetry.Deps{OnSample: got.add})
	if err != nil {
		t.Fatal(err)
	}
	if err := coll.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := coll.Stop(context.Background()); err != nil {
			t.Errorf("stop telemetry collector: %v", err)
		}
	})
	known := func() bool { s, ok := got.last(); return ok && s.Known }
	for deadline := time.Now().Add(15 * time.Second); !known(); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) || agent.Err() != nil {
			t.Fatalf("no known sample from the agent within 15s (agent: %v)\n%s", agent.Err(), agent.Output())
		}
	}

	// 16.2 Mbit/s in and 4.1 Mbit/s out on the wire, for 6s each way.
	in := traffic{dst: netip.AddrPortFrom(rtrAddr.Addr(), 9).String(), payload: 972, pps: 2000, count: 12000}
	out := traffic{dst: netip.AddrPortFrom(peerAddr.Addr(), 9).String(), payload: 472, pps: 1000, count: 6000}
	startSink(t, rtr, in.dst)
	startSink(t, peer, out.dst)
	var wg sync.WaitGroup
	errs := make(chan error, 2)
	for _, s := range []struct {
		ns *netns.Namespace
		tr traffic
	}{{peer, in}, {rtr, out}} {
		wg.Go(func() {
			if _, err := send(ctx, s.ns, s.tr); err != nil {
				errs <- err
			}
		})
	}

	// Measure over 3s of the steady middle of the transfer.
	time.Sleep(1500 * time.Millisecond)
	rx1, tx1, t1, err := counters(ctx, rtr, "isp1")
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(3 * time.Second)
	rx2, tx2, t2, err := counters(ctx, rtr, "isp1")
	if err != nil {
		t.Fatal(err)
	}
	// Samples whose router interval lies within [t1, t2]: their rate is
	// over the last interval before them.
	var n int
	var inBps, outBps float64
	for _, s := range got.since(t1.Add(gnmiInterval + 100*time.Millisecond)) {
		if s.Time.After(t2) {
			break
		}
		if !s.Known || !s.OperUp || s.Link != linkID {
			t.Errorf("sample during the traffic: %+v; want known and up", s)
		}
		n++
		inBps += s.InBps
		outBps += s.OutBps
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if n < 3 {
		t.Fatalf("%d samples over %v; want one per %v", n, t2.Sub(t1), gnmiInterval)
	}
	inBps, outBps = inBps/float64(n), outBps/float64(n)
	secs := t2.Sub(t1).Seconds()
	for _, c := range []struct {
		dir          string
		gnmi, sysfs  float64
		sent         float64
		counterDelta uint64
	}{
		{"in", inBps, float64(rx2-rx1) * 8 / secs, float64(in.pps) * float64(in.frameBytes()) * 8, rx2 - rx1},
		{"out", outBps, float64(tx2-tx1) * 8 / secs, float64(out.pps) * float64(out.frameBytes()) * 8, tx2 - tx1},
	} {
		t.Logf("%-3s gNMI %.2f Mbit/s (mean of %d samples), sysfs %.2f Mbit/s (%d bytes in %.2fs): %+.2f%%; sent %.2f Mbit/s",
			c.dir, c.gnmi/1e6, n, c.sysfs/1e6, c.counterDelta, secs, 100*(c.gnmi-c.sysfs)/c.sysfs, c.sent/1e6)
		if e := relErr(c.gnmi, c.sysfs); e > 0.10 {
			t.Errorf("%s: collector %.0f bit/s; the interface's counters give %.0f bit/s, want within 10%% (off by %.1f%%)",
				c.dir, c.gnmi, c.sysfs, 100*e)
		}
		// The counters themselves must show the traffic sent.
		if e := relErr(c.sysfs, c.sent); e > 0.10 {
			t.Errorf("%s: counters give %.0f bit/s; sent %.0f bit/s", c.dir, c.sysfs, c.sent)
		}
	}

	// Down, then up again: the collector follows the oper-status.
	for _, st := range []struct {
		state string
		up    bool
	}{{"down", false}, {"up", true}} {
		changed := time.Now()
		if _, err := rtr.IP(ctx, "link", "set", "isp1", st.state); err != nil {
			t.Fatal(err)
		}
		oper, err := rtr.Run(ctx, "cat", "/sys/class/net/isp1/operstate")
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("isp1 set %s; operstate now %q", st.state, strings.TrimSpace(string(oper)))
		for deadline := changed.Add(5 * time.Second); ; time.Sleep(50 * time.Millisecond) {
			s, _ := got.last()
			if s.Time.After(changed) && s.OperUp == st.up {
				t.Logf("collector reported oper-up=%v %v after the change", st.up, s.Time.Sub(changed).Round(time.Millisecond))
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("after `ip link set isp1 %s`: last sample %+v; want OperUp %v within 5s", st.state, s, st.up)
			}
		}
	}
}
