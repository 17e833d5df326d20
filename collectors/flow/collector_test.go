package flow_test

import (
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sdnoc/sdnoc/collectors/flow"
	"github.com/sdnoc/sdnoc/collectors/flow/flowtest"
	"github.com/sdnoc/sdnoc/internal/starttest"
)

func TestConfigValidate(t *testing.T) {
	if err := flow.DefaultConfig().Validate(); err != nil {
		t.Fatalf("defaults: %v", err)
	}
	bad := flow.Config{
		Listen: "2055", Sockets: 0, Window: 1500 * time.Millisecond, TemplateTTL: 0, MaxExporters: 0,
		Exporters: []flow.ExporterConfig{
			{Address: netip.MustParseAddr("192.0.2.1"), Interfaces: map[uint32]string{1: ""}},
			{Address: netip.MustParseAddr("192.0.2.1")},
			{},
		},
		Prefixes: []netip.Prefix{
			netip.MustParsePrefix("198.51.100.1/24"),
			netip.MustParsePrefix("203.0.113.0/24"),
			netip.MustParsePrefix("203.0.113.0/24"),
			netip.MustParsePrefix("::ffff:203.0.113.0/120"),
			{},
		},
	}
	err := bad.Validate()
	if err == nil {
		t.Fatal("bad config accepted")
	}
	for _, field := range []string{
		"listen:", "sockets:", "window:", "template_ttl:", "max_exporters:",
		"exporters[0].interfaces[1]:", "exporters[1].address:", "exporters[2].address:",
		"prefixes[0]: 198.51.100.1/24 has host bits set; write 198.51.100.0/24",
		"prefixes[2]:", "prefixes[3]:", "prefixes[4]:",
	} {
		if !strings.Contains(err.Error(), field) {
			t.Errorf("error does not name %q:\n%v", field, err)
		}
	}
}

// clock is a settable Now.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// TestCollectorUDP sends datagrams of each format from loopback clients
// to a collector with two sockets and checks the rates.
func TestCollectorUDP(t *testing.T) {
	clk := &clock{now: t0.Add(500 * time.Millisecond)}
	reg := prometheus.NewPedanticRegistry()
	cfg := flow.DefaultConfig()
	cfg.Listen = "127.0.0.1:0"
	cfg.Sockets = 2
	cfg.Exporters = []flow.ExporterConfig{{
		Address:    netip.MustParseAddr("127.0.0.1"),
		Interfaces: map[uint32]string{3: "pop1/isp1", 4: "pop1/isp2"},
	}}
	cfg.Prefixes = []netip.Prefix{netip.MustParsePrefix("198.51.100.0/24"), netip.MustParsePrefix("2001:db8:1::/48")}
	var mu sync.Mutex
	var seen []flow.Record
	c, err := flow.New(cfg, flow.Deps{Reg: reg, Now: clk.Now, OnRecord: func(r *flow.Record) {
		mu.Lock()
		seen = append(seen, *r)
		mu.Unlock()
	}})
	if err != nil {
		t.Fatal(err)
	}
	starttest.Start(t, c)

	pkts := [][]byte{
		flowtest.NetFlowV5(10, []flowtest.Flow{flow4}),    // isp1: 15,000 B
		flowtest.IPFIXData(1, []flowtest.Flow{flow4}),     // no template yet
		flowtest.IPFIXTemplate(1),                         //
		flowtest.IPFIXData(1, []flowtest.Flow{flow4}),     // isp1: 1,500 B
		flowtest.NetFlowV9Template(2),                     //
		flowtest.NetFlowV9Data(2, []flowtest.Flow{flow6}), // isp2: 800 B
		flowtest.SFlowV5(expAddr, []flowtest.SFlowSample{ // isp2: 100 * 1000 B
			{SamplingRate: 100, InIf: 4, Src: src6, Dst: dst6, Proto: 6, SrcPort: 1, DstPort: 2, FrameLength: 1000},
		}),
		flowtest.NetFlowV5(1, []flowtest.Flow{{Src: src4, Dst: netip.MustParseAddr("203.0.113.1"), InIf: 3, Bytes: 1, Packets: 1}}), // not edge
		[]byte("hello"), // unknown version
	}
	// One client: SO_REUSEPORT hashes its datagrams to one socket, so
	// they are decoded in order (templates before data).
	conn, err := net.Dial("udp", c.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	for _, p := range pkts {
		if _, err := conn.Write(p); err != nil {
			t.Fatal(err)
		}
		time.Sleep(5 * time.Millisecond) // keep the order on the wire
	}
	deadline := time.Now().Add(5 * time.Second)
	for c.Stats().Datagrams < uint64(len(pkts)) && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	st := c.Stats()
	want := flow.Stats{Datagrams: 9, Records: 5, DecodeErrors: 1, NoTemplate: 1, Refused: flow.Refused{NotEdge: 1}}
	if st != want {
		t.Fatalf("Stats = %+v, want %+v", st, want)
	}
	if got := c.Rates("pop1/isp1"); len(got) != 1 || got[0].BytesPerSec != (15000+1500)/10.0 || got[0].PacketsPerSec != (30+3)/10.0 {
		t.Fatalf("Rates(isp1) = %+v", got)
	}
	if got := c.Rates("pop1/isp2"); len(got) != 1 || got[0].BytesPerSec != (800+100_000)/10.0 || got[0].PacketsPerSec != (2+100)/10.0 {
		t.Fatalf("Rates(isp2) = %+v", got)
	}
	if got := c.Top("pop1/isp2", 5); len(got) != 1 || got[0].Prefix != netip.MustParsePrefix("2001:db8:1::/48") {
		t.Fatalf("Top(isp2) = %+v", got)
	}
	mu.Lock()
	n := len(seen)
	mu.Unlock()
	if n != 5 {
		t.Fatalf("OnRecord saw %d records, want 5", n)
	}
	for _, m := range []struct {
		name   string
		labels prometheus.Labels
		want   float64
	}{
		{"datagrams_total", prometheus.Labels{"format": "ipfix"}, 3},
		{"datagrams_total", prometheus.Labels{"format": "unknown"}, 1},
		{"records_total", prometheus.Labels{"format": "netflow5"}, 2},
		{"decode_errors_total", prometheus.Labels{"reason": "unknown_version"}, 1},
		{"unattributed_records_total", prometheus.Labels{"reason": "not_edge"}, 1},
		{"no_template_total", nil, 1},
	} {
		if got := metricValue(t, reg, m.name, m.labels); got != m.want {
			t.Errorf("%s%v = %v, want %v", m.name, m.labels, got, m.want)
		}
	}
	if got := c.LastDatagram(netip.MustParseAddr("127.0.0.1")); !got.Equal(t0.Add(500 * time.Millisecond)) {
		t.Errorf("LastDatagram(exporter) = %v, want the clock's %v", got, t0.Add(500*time.Millisecond))
	}
	if got := c.LastDatagram(netip.MustParseAddr("127.0.0.2")); !got.IsZero() {
		t.Errorf("LastDatagram(not an exporter) = %v, want zero", got)
	}
	// Time passes: the window empties.
	clk.mu.Lock()
	clk.now = clk.now.Add(time.Minute)
	clk.mu.Unlock()
	if got := c.Rates("pop1/isp1"); got != nil {
		t.Fatalf("a minute later: %+v", got)
	}
}

// metricValue reads one sample of a gathered metric.
func metricValue(t *testing.T, reg *prometheus.Registry, name string, labels prometheus.Labels) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if labels[lp.GetName()] != lp.GetValue() {
					continue next
				}
			}
			return m.GetCounter().GetValue()
		}
	}
	t.Fatalf("no metric %s%v", name, labels)
	return 0
}

func TestCollectorBusyPort(t *testing.T) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	cfg := flow.DefaultConfig()
	cfg.Listen = pc.LocalAddr().String()
	cfg.Sockets = 2
	c, err := flow.New(cfg, flow.Deps{})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(t.Context()); err == nil {
		c.Stop(t.Context())
		t.Fatal("Start on a port bound without SO_REUSEPORT succeeded")
	}
}

func TestCollectorLifecycle(t *testing.T) {
	cfg := flow.DefaultConfig()
	cfg.Listen = "127.0.0.1:0"
	cfg.Sockets = 1
	if _, err := flow.New(flow.Config{}, flow.Deps{}); err == nil {
		t.Fatal("New accepted a zero Config")
	}
	c, err := flow.New(cfg, flow.Deps{})
	if err != nil {
		t.Fatal(err)
	}
	if c.Addr() != nil {
		t.Fatal("Addr before Start is not nil")
	}
	if err := c.Stop(t.Context()); err != nil {
		t.Fatalf("Stop before Start: %v", err)
	}
	starttest.Start(t, c)
	if err := c.Start(t.Context()); err == nil {
		t.Fatal("second Start succeeded")
	}
}
