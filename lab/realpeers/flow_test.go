package realpeers

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sdnoc/sdnoc/collectors/flow"
	"github.com/sdnoc/sdnoc/lab/netlab"
	"github.com/sdnoc/sdnoc/lab/netns/netnstest"
)

// edgePrefix is the edge's prefix in the flow lab: its first address is
// on the exporter namespace's loopback, and all test traffic goes there.
var edgePrefix = netip.MustParsePrefix("198.51.100.0/24")

const (
	linkID = "lab/isp1"
	// flowWindow is the collectors' averaging window. It is longer than
	// the traffic plus the exporters' delays, so that the whole transfer
	// is inside it when the rates are read: they must then be its bytes
	// divided by the window, nothing lost and nothing counted twice.
	flowWindow = 15 * time.Second
	// sfSampling is pmacctd's sFlow 1-in-N rate. It samples at random,
	// so the sampled bytes scaled by N have a relative standard deviation
	// of sqrt((1-1/N)/(packets/N)): with N=5 and 20,000 packets, 4,000
	// samples, that is 1.4%; the 10% tolerance is 7 standard deviations,
	// a failure once in ~10^12 runs.
	sfSampling = 5
)

// buildShim compiles the libpcap immediate-mode shim into dir; see
// netlab.PcapShim for why softflowd needs it.
func buildShim(t *testing.T, dir string) string {
	t.Helper()
	lib, err := netlab.BuildPcapShim(t.Context(), dir)
	if err != nil {
		t.Fatal(err)
	}
	return lib
}

// probe is one exporter configuration and the collector receiving it.
type probe struct {
	name string
	// perPacket is the bytes it counts per test packet.
	perPacket func(traffic) uint64
	coll      *flow.Collector

	mu      sync.Mutex
	records int
	inIfs   map[uint32]int // records per input ifIndex
	// sizes counts the records toward edgePrefix per bytes per packet.
	sizes map[uint64]int
}

func (p *probe) onRecord(r *flow.Record) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.records++
	p.inIfs[r.InIf]++
	if edgePrefix.Contains(r.Dst) && r.Packets > 0 {
		p.sizes[r.Bytes/r.Packets]++
	}
}

func (p *probe) String() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return fmt.Sprintf("%s: %d records, per input ifIndex %v, per bytes/packet %v, stats %+v",
		p.name, p.records, p.inIfs, p.sizes, p.coll.Stats())
}

// sizeCount returns how many records toward edgePrefix there were.
func (p *probe) sizeCount() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, c := range p.sizes {
		n += c
	}
	return n
}

// rate returns the collector's bytes/s toward edgePrefix through linkID.
func (p *probe) rate() float64 {
	for _, r := range p.coll.Rates(linkID) {
		if r.Prefix == edgePrefix {
			return r.BytesPerSec
		}
	}
	return 0
}

// TestFlowExporters sends a known UDP stream across a veth on which
// softflowd (NetFlow v5, v9, IPFIX) and pmacctd (NetFlow v9 through
// nfprobe, sFlow through sfprobe) capture, each exporting to its own
// flow.Collector in the root namespace, and checks that each collector's
// rate toward the edge prefix is what was sent, within 10%.
//
//	[snd] to-exp ── to-snd [exp: softflowd×3, pmacctd, sink on 198.51.100.1] to-root ── root: collectors
func TestFlowExporters(t *testing.T) {
	l := netnstest.New(t, "softflowd", "softflowctl", "pmacctd", "gcc", "env")
	if _, err := os.Stat("/usr/include/pcap/pcap.h"); err != nil {
		netnstest.Unavailable(t, "missing libpcap-dev (pcap/pcap.h): run lab/install.sh as root")
	}
	ctx := t.Context()
	dir := t.TempDir()
	shim := buildShim(t, dir)

	w := wire(t, l, "snd", "to-exp", "exp", "to-snd", "to-root")
	snd, exp, expAddr, rootAddr, expMgmt := w.a, w.b, w.bAddr, w.root, w.bMgmt
	dst := edgePrefix.Addr().Next()
	if _, err := exp.IP(ctx, "addr", "add", netip.PrefixFrom(dst, 32).String(), "dev", "lo"); err != nil {
		t.Fatal(err)
	}
	if _, err := snd.IP(ctx, "route", "add", edgePrefix.String(), "via", expAddr.Addr().String()); err != nil {
		t.Fatal(err)
	}
	ifindex, err := exp.Ifindex(ctx, "to-snd")
	if err != nil {
		t.Fatal(err)
	}

	l3 := func(tr traffic) uint64 { return tr.ipBytes() }
	probes := map[string]*probe{
		"softflowd-v5":    {perPacket: l3},
		"softflowd-v9":    {perPacket: l3},
		"softflowd-ipfix": {perPacket: l3},
		"pmacctd-nfprobe": {perPacket: l3},
		// sFlow reports the sampled frame's length, which the sFlow v5
		// spec (sampled_header.frame_length) says includes the Ethernet
		// header and the 4-byte FCS, and the collector counts that
		// (collectors/flow/decoder.go, sampledPacket): 1018 bytes here
		// for a 1000-byte IP packet, as pmacctd sends it.
		"pmacctd-sfprobe": {perPacket: func(tr traffic) uint64 { return tr.frameBytes() + 4 }},
	}
	for name, p := range probes {
		p.name, p.inIfs, p.sizes = name, make(map[uint32]int), make(map[uint64]int)
		cfg := flow.DefaultConfig()
		cfg.Listen = netip.AddrPortFrom(rootAddr.Addr(), 0).String()
		cfg.Sockets = 1
		cfg.Window = flowWindow
		cfg.Exporters = []flow.ExporterConfig{{Address: expMgmt.Addr(), Interfaces: map[uint32]string{ifindex: linkID}}}
		cfg.Prefixes = []netip.Prefix{edgePrefix}
		c, err := flow.New(cfg, flow.Deps{OnRecord: p.onRecord})
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Start(ctx); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if err := c.Stop(context.Background()); err != nil {
				t.Errorf("stop %s collector: %v", name, err)
			}
		})
		p.coll = c
	}
	collectorAt := func(name string) string { return probes[name].coll.Addr().String() }

	// softflowd, one per version, with its control socket to expire the
	// flows once the traffic is over. maxlife is longer than the traffic:
	// each flow is exported once, when expired.
	var ctls []string
	for _, v := range []struct{ name, version string }{
		{"softflowd-v5", "5"}, {"softflowd-v9", "9"}, {"softflowd-ipfix", "10"},
	} {
		ctl, pid := filepath.Join(dir, v.name+".ctl"), filepath.Join(dir, v.name+".pid")
		_, err := exp.Start("env", "LD_PRELOAD="+shim, "softflowd", "-d",
			"-i", fmt.Sprintf("%d:to-snd", ifindex), "-n", collectorAt(v.name), "-v", v.version,
			"-t", "maxlife=60", "-t", "expint=1", "-p", pid, "-c", ctl)
		if err != nil {
			t.Fatal(err)
		}
		ctls = append(ctls, ctl)
		waitFor(t, 5*time.Second, v.name+" control socket", func() bool {
			_, err := exp.Run(ctx, "softflowctl", "-c", ctl, "statistics")
			return err == nil
		})
	}

	// pmacctd with both probes, the traffic seen as inbound on the
	// capture interface's ifIndex: pmacctd puts 0 (nfprobe) or sFlow's
	// "unknown" 0x3fffffff (sfprobe) there unless told.
	pmLog := filepath.Join(dir, "pmacctd.log")
	pmConf := filepath.Join(dir, "pmacctd.conf")
	conf := strings.Join([]string{
		"daemonize: false",
		"pidfile: " + filepath.Join(dir, "pmacctd.pid"),
		"logfile: " + pmLog,
		"pcap_interface: to-snd",
		"plugins: nfprobe[nf], sfprobe[sf]",
		"nfprobe_receiver[nf]: " + collectorAt("pmacctd-nfprobe"),
		"nfprobe_version[nf]: 9",
		"nfprobe_direction[nf]: in",
		"nfprobe_ifindex[nf]: " + strconv.Itoa(int(ifindex)),
		// udp: a UDP flow idle this long is exported.
		"nfprobe_timeouts[nf]: udp=2:maxlife=60:expint=1",
		"sfprobe_receiver[sf]: " + collectorAt("pmacctd-sfprobe"),
		"sfprobe_agentip[sf]: " + expMgmt.Addr().String(),
		"sfprobe_direction[sf]: in",
		"sfprobe_ifindex[sf]: " + strconv.Itoa(int(ifindex)),
		"sampling_rate[sf]: " + strconv.Itoa(sfSampling),
		"",
	}, "\n")
	if err := os.WriteFile(pmConf, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	pm, err := exp.Start("pmacctd", "-f", pmConf)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "pmacctd plugins started", func() bool {
		b, _ := os.ReadFile(pmLog)
		return strings.Contains(string(b), "nf/nfprobe") && strings.Contains(string(b), "sf/sfprobe")
	})

	startSink(t, exp, netip.AddrPortFrom(dst, 9).String())
	// 20,000 packets of 1000 bytes in 5s: 4 MB/s.
	tr := traffic{dst: netip.AddrPortFrom(dst, 9).String(), payload: 972, pps: 4000, count: 20000}
	rxBefore, err := exp.ReadUint(ctx, "/sys/class/net/to-snd/statistics/rx_packets")
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	sent, err := send(ctx, snd, tr)
	if err != nil {
		t.Fatal(err)
	}
	rxAfter, err := exp.ReadUint(ctx, "/sys/class/net/to-snd/statistics/rx_packets")
	if err != nil {
		t.Fatal(err)
	}
	if rx := rxAfter - rxBefore; rx < uint64(sent) {
		t.Fatalf("sent %d packets but the exporter's veth received %d", sent, rx)
	}
	for _, ctl := range ctls {
		if out, err := exp.Run(ctx, "softflowctl", "-c", ctl, "expire-all"); err != nil {
			t.Fatalf("%v: %s", err, out)
		}
	}

	// Wait until every collector's rate has held still for 2s: the
	// exporters have sent all they will.
	last := make(map[string]float64)
	since := make(map[string]time.Time)
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		settled := true
		for name, p := range probes {
			r := p.rate()
			if r != last[name] || r == 0 {
				last[name], since[name] = r, time.Now()
			}
			settled = settled && r > 0 && time.Since(since[name]) >= 2*time.Second
		}
		if settled {
			break
		}
		if time.Now().After(deadline) {
			t.Error("rates still changing or zero 10s after the traffic; checking them as they are")
			break
		}
	}
	if pm.Err() != nil {
		t.Errorf("pmacctd exited: %v\n%s", pm.Err(), pm.Output())
	}
	// The rates below are read now, over the window ending now: it must
	// still hold the start of the traffic.
	if d := time.Since(start); d > flowWindow-time.Second {
		t.Fatalf("the traffic started %v ago, the window is %v: its start is out of the rates; the exporters were too slow", d, flowWindow)
	}

	for _, name := range []string{"softflowd-v5", "softflowd-v9", "softflowd-ipfix", "pmacctd-nfprobe", "pmacctd-sfprobe"} {
		p := probes[name]
		want := float64(uint64(sent)*p.perPacket(tr)) / flowWindow.Seconds()
		got := p.rate()
		e := relErr(got, want)
		t.Logf("%-16s %8.0f B/s; bytes sent / window %8.0f B/s: %+.2f%%", name, got, want, 100*(got-want)/want)
		p.mu.Lock()
		sizes := fmt.Sprint(p.sizes)
		p.mu.Unlock()
		if wantSizes := fmt.Sprint(map[uint64]int{p.perPacket(tr): p.sizeCount()}); sizes != wantSizes {
			t.Errorf("%s: records toward %v per bytes/packet %s; want all %d", name, edgePrefix, sizes, p.perPacket(tr))
		}
		if e > 0.10 {
			t.Errorf("%s: collector rate %.0f B/s; want %.0f B/s within 10%% (off by %.1f%%)\n%v", name, got, want, 100*e, p)
		}
	}
}
