package gnmiagent

import (
	"context"
	"errors"
	"io"
	"net"
	"net/netip"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/openconfig/gnmi/proto/gnmi"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func bgpPath(target, addr string) *gnmi.Path {
	return &gnmi.Path{Target: target, Elem: []*gnmi.PathElem{
		elem("network-instances"), elem("network-instance", "name", "default"),
		elem("protocols"), elem("protocol", "identifier", "BGP", "name", "BGP"),
		elem("bgp"), elem("neighbors"), elem("neighbor", "neighbor-address", addr),
		elem("state"), elem("session-state"),
	}}
}

// values flattens notifications into "ifname/leaf" (or the neighbour
// address) -> value, checking each timestamp against [lo, hi].
func values(t *testing.T, ns []*gnmi.Notification, lo, hi time.Time) map[string]any {
	t.Helper()
	out := make(map[string]any)
	for _, n := range ns {
		if ts := time.Unix(0, n.GetTimestamp()); ts.Before(lo) || ts.After(hi) {
			t.Errorf("timestamp %v outside [%v, %v]", ts, lo, hi)
		}
		for _, u := range n.GetUpdate() {
			el := u.GetPath().GetElem()
			var key string
			switch el[0].GetName() {
			case "interfaces":
				key = el[1].GetKey()["name"] + "/" + el[len(el)-1].GetName()
			default:
				key = el[6].GetKey()["neighbor-address"]
			}
			switch v := u.GetVal().GetValue().(type) {
			case *gnmi.TypedValue_UintVal:
				out[key] = v.UintVal
			case *gnmi.TypedValue_StringVal:
				out[key] = v.StringVal
			default:
				t.Errorf("%s: unexpected value type %T", key, v)
			}
		}
	}
	return out
}

func TestGet(t *testing.T) {
	root := t.TempDir()
	writeIf(t, root, "eth0", "up", 1000, 2000)
	writeIf(t, root, "eth1", "down", 30, 40)
	_, c := startAgent(t, testConfig(root))

	tests := []struct {
		name string
		req  *gnmi.GetRequest
		want map[string]any
		code codes.Code
	}{
		{"one counter", &gnmi.GetRequest{Path: []*gnmi.Path{
			p("", "interfaces", "interface[name=eth0]", "state", "counters", "in-octets")}},
			map[string]any{"eth0/in-octets": uint64(1000)}, codes.OK},
		{"prefix with target, wildcard name", &gnmi.GetRequest{
			Prefix: p("r1", "interfaces"),
			Path:   []*gnmi.Path{p("", "interface[name=*]", "state", "oper-status")}},
			map[string]any{"eth0/oper-status": "UP", "eth1/oper-status": "DOWN"}, codes.OK},
		{"subtree", &gnmi.GetRequest{Path: []*gnmi.Path{p("", "interfaces", "interface[name=eth1]", "state", "counters")}},
			map[string]any{
				"eth1/in-octets": uint64(30), "eth1/out-octets": uint64(40), "eth1/in-pkts": uint64(0), "eth1/out-pkts": uint64(0),
				"eth1/in-errors": uint64(1), "eth1/out-errors": uint64(2), "eth1/in-discards": uint64(3), "eth1/out-discards": uint64(4),
			}, codes.OK},
		{"any depth", &gnmi.GetRequest{Path: []*gnmi.Path{p("", "...", "out-octets")}},
			map[string]any{"eth0/out-octets": uint64(2000), "eth1/out-octets": uint64(40)}, codes.OK},
		{"bgp neighbour", &gnmi.GetRequest{Path: []*gnmi.Path{bgpPath("", "192.0.2.1")}},
			map[string]any{"192.0.2.1": "ESTABLISHED"}, codes.OK},
		{"bgp wildcard", &gnmi.GetRequest{Path: []*gnmi.Path{bgpPath("", "*")}},
			map[string]any{"192.0.2.1": "ESTABLISHED", "203.0.113.1": "ACTIVE", "2001:db8::1": "IDLE"}, codes.OK},
		{"unknown interface", &gnmi.GetRequest{Path: []*gnmi.Path{p("", "interfaces", "interface[name=eth9]")}},
			nil, codes.NotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			lo := time.Now()
			resp, err := c.Get(t.Context(), tt.req)
			hi := time.Now()
			if status.Code(err) != tt.code {
				t.Fatalf("Get: %v; want code %v", err, tt.code)
			}
			if err != nil {
				return
			}
			got := values(t, resp.GetNotification(), lo, hi)
			if len(got) != len(tt.want) {
				t.Errorf("got %v; want %v", got, tt.want)
			}
			for k, v := range tt.want {
				if got[k] != v {
					t.Errorf("%s = %v; want %v", k, got[k], v)
				}
			}
			if tgt := tt.req.GetPrefix().GetTarget(); tgt != "" && resp.Notification[0].GetPrefix().GetTarget() != tgt {
				t.Errorf("prefix target %q; want %q echoed", resp.Notification[0].GetPrefix().GetTarget(), tgt)
			}
		})
	}
}

func TestCapabilities(t *testing.T) {
	_, c := startAgent(t, testConfig(t.TempDir()))
	resp, err := c.Capabilities(t.Context(), &gnmi.CapabilityRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if resp.GNMIVersion != gnmiVersion || len(resp.SupportedModels) != 2 ||
		!slices.Contains(resp.SupportedEncodings, gnmi.Encoding_JSON_IETF) {
		t.Fatalf("capabilities %v", resp)
	}
}

func subscribe(t *testing.T, c gnmi.GNMIClient, sl *gnmi.SubscriptionList) gnmi.GNMI_SubscribeClient {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	t.Cleanup(cancel)
	s, err := c.Subscribe(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Send(&gnmi.SubscribeRequest{Request: &gnmi.SubscribeRequest_Subscribe{Subscribe: sl}}); err != nil {
		t.Fatal(err)
	}
	return s
}

// recvUntilSync returns the notifications before the next sync_response.
func recvUntilSync(t *testing.T, s gnmi.GNMI_SubscribeClient) []*gnmi.Notification {
	t.Helper()
	var ns []*gnmi.Notification
	for {
		r, err := s.Recv()
		if err != nil {
			t.Fatalf("recv: %v", err)
		}
		if r.GetSyncResponse() {
			return ns
		}
		ns = append(ns, r.GetUpdate())
	}
}

func TestSubscribeOnce(t *testing.T) {
	root := t.TempDir()
	writeIf(t, root, "eth0", "up", 1000, 2000)
	writeIf(t, root, "eth1", "up", 10, 20)
	_, c := startAgent(t, testConfig(root))
	lo := time.Now()
	s := subscribe(t, c, &gnmi.SubscriptionList{
		Mode:   gnmi.SubscriptionList_ONCE,
		Prefix: &gnmi.Path{Target: "r1"},
		Subscription: []*gnmi.Subscription{
			{Path: p("", "interfaces", "interface[name=*]", "state", "counters", "in-octets")},
			{Path: bgpPath("", "203.0.113.1")},
		},
	})
	got := values(t, recvUntilSync(t, s), lo, time.Now())
	want := map[string]any{"eth0/in-octets": uint64(1000), "eth1/in-octets": uint64(10), "203.0.113.1": "ACTIVE"}
	if len(got) != len(want) {
		t.Errorf("got %v; want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %v; want %v", k, got[k], v)
		}
	}
	if _, err := s.Recv(); !errors.Is(err, io.EOF) {
		t.Errorf("after ONCE sync: %v; want EOF", err)
	}
}

func TestSubscribePoll(t *testing.T) {
	root := t.TempDir()
	writeIf(t, root, "eth0", "up", 1000, 2000)
	_, c := startAgent(t, testConfig(root))
	path := p("", "interfaces", "interface[name=eth0]", "state", "counters", "out-octets")
	s := subscribe(t, c, &gnmi.SubscriptionList{Mode: gnmi.SubscriptionList_POLL, Subscription: []*gnmi.Subscription{{Path: path}}})
	if got := values(t, recvUntilSync(t, s), time.Time{}, time.Now()); got["eth0/out-octets"] != uint64(2000) {
		t.Fatalf("first poll: %v", got)
	}
	writeIf(t, root, "eth0", "up", 1000, 7000)
	if err := s.Send(&gnmi.SubscribeRequest{Request: &gnmi.SubscribeRequest_Poll{Poll: &gnmi.Poll{}}}); err != nil {
		t.Fatal(err)
	}
	if got := values(t, recvUntilSync(t, s), time.Time{}, time.Now()); got["eth0/out-octets"] != uint64(7000) {
		t.Fatalf("second poll: %v", got)
	}
}

// TestSubscribeStream changes the counters between samples: each
// update must carry the value current at its timestamp, and the
// timestamps must be a sample interval apart.
func TestSubscribeStream(t *testing.T) {
	root := t.TempDir()
	writeIf(t, root, "eth0", "up", 0, 0)
	_, c := startAgent(t, testConfig(root))
	const iv = 100 * time.Millisecond
	s := subscribe(t, c, &gnmi.SubscriptionList{
		Mode: gnmi.SubscriptionList_STREAM,
		Subscription: []*gnmi.Subscription{{
			Path: p("", "interfaces", "interface[name=*]", "state", "counters", "in-octets"),
			Mode: gnmi.SubscriptionMode_SAMPLE, SampleInterval: uint64(iv),
		}},
	})
	if got := values(t, recvUntilSync(t, s), time.Time{}, time.Now()); got["eth0/in-octets"] != uint64(0) {
		t.Fatalf("initial update: %v", got)
	}
	var last int64
	var worst time.Duration // from a notification's timestamp to its receipt
	defer func() { t.Logf("update latency (timestamp to receipt): worst %v", worst) }()
	for i := uint64(1); i <= 5; i++ {
		writeIf(t, root, "eth0", "up", i*1000, 0)
		written := time.Now()
		// The update after the write carries it (one may have been
		// sampled before).
		for {
			r, err := s.Recv()
			if err != nil {
				t.Fatal(err)
			}
			n := r.GetUpdate()
			worst = max(worst, time.Since(time.Unix(0, n.Timestamp)))
			got := n.GetUpdate()[0].GetVal().GetUintVal()
			if last != 0 {
				if d := time.Duration(n.Timestamp - last); d < iv*8/10 || d > 3*iv {
					t.Errorf("timestamps %v apart; want about %v", d, iv)
				}
			}
			last = n.Timestamp
			if got == i*1000 {
				if time.Unix(0, n.Timestamp).Before(written) {
					t.Errorf("value %d stamped before it was written", got)
				}
				break
			}
			if got != (i-1)*1000 {
				t.Fatalf("in-octets %d; want %d or %d", got, (i-1)*1000, i*1000)
			}
		}
	}
}

// TestSubscribeStreamEndsAtStop: a stopped agent ends its streams, so
// that collectors notice and reconnect.
func TestSubscribeStreamEndsAtStop(t *testing.T) {
	root := t.TempDir()
	writeIf(t, root, "eth0", "up", 0, 0)
	a, c := startAgent(t, testConfig(root))
	s := subscribe(t, c, &gnmi.SubscriptionList{Subscription: []*gnmi.Subscription{{
		Path: p("", "interfaces"), SampleInterval: uint64(50 * time.Millisecond)}}})
	recvUntilSync(t, s)
	if err := a.Stop(t.Context()); err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := s.Recv(); err != nil {
			if status.Code(err) != codes.Unavailable {
				t.Errorf("stream ended with %v; want Unavailable", err)
			}
			return
		}
	}
}

// TestRealLoopback reads lo's counters from the real /sys/class/net,
// sends 200 KB over loopback, and reads them again.
func TestRealLoopback(t *testing.T) {
	if _, err := os.Stat("/sys/class/net/lo/statistics/rx_bytes"); err != nil {
		t.Skipf("no sysfs counters for lo: %v", err)
	}
	cfg := testConfig("/sys/class/net")
	_, c := startAgent(t, cfg)
	req := &gnmi.GetRequest{Path: []*gnmi.Path{
		p("", "interfaces", "interface[name=lo]", "state", "counters", "in-octets"),
		p("", "interfaces", "interface[name=lo]", "state", "counters", "in-pkts"),
	}}
	read := func() (octets, pkts uint64) {
		resp, err := c.Get(t.Context(), req)
		if err != nil {
			t.Fatal(err)
		}
		return resp.Notification[0].Update[0].Val.GetUintVal(), resp.Notification[1].Update[0].Val.GetUintVal()
	}
	o1, p1 := read()
	if o1 == 0 || p1 == 0 {
		t.Fatalf("lo in-octets %d, in-pkts %d: implausible on a host that just served gRPC over loopback", o1, p1)
	}
	rc, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.MustParseAddrPort("127.0.0.1:0")))
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	sc, err := net.DialUDP("udp", nil, rc.LocalAddr().(*net.UDPAddr))
	if err != nil {
		t.Fatal(err)
	}
	defer sc.Close()
	const n, size = 200, 1000
	buf := make([]byte, size)
	for range n {
		if _, err := sc.Write(buf); err != nil {
			t.Fatal(err)
		}
	}
	o2, p2 := read()
	if o2-o1 < n*size || p2-p1 < n {
		t.Fatalf("lo grew by %d octets, %d packets; want at least %d, %d", o2-o1, p2-p1, n*size, n)
	}
	if o2-o1 > 1<<30 {
		t.Fatalf("lo grew by %d octets: implausible", o2-o1)
	}
}

// TestStopEndsPoll: a POLL client waiting between polls does not hold
// up Stop.
func TestStopEndsPoll(t *testing.T) {
	root := t.TempDir()
	writeIf(t, root, "eth0", "up", 1, 2)
	a, c := startAgent(t, testConfig(root))
	s := subscribe(t, c, &gnmi.SubscriptionList{Mode: gnmi.SubscriptionList_POLL, Subscription: []*gnmi.Subscription{{Path: p("", "interfaces")}}})
	recvUntilSync(t, s)
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	start := time.Now()
	if err := a.Stop(ctx); err != nil {
		t.Fatalf("stop with a POLL client waiting: %v", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("stop took %v with a POLL client waiting", d)
	}
}

// TestBrokenBGPCommand: a failing vtysh leaves the BGP leaves out of a
// sample, not the counters; a Get that needs it fails.
func TestBrokenBGPCommand(t *testing.T) {
	root := t.TempDir()
	writeIf(t, root, "eth0", "up", 1000, 2000)
	cfg := testConfig(root)
	cfg.BGPCommand = []string{"testdata/no-such-command"}
	_, c := startAgent(t, cfg)
	s := subscribe(t, c, &gnmi.SubscriptionList{Mode: gnmi.SubscriptionList_ONCE, Subscription: []*gnmi.Subscription{
		{Path: p("", "interfaces", "interface[name=eth0]", "state", "counters", "in-octets")},
		{Path: bgpPath("", "*")},
	}})
	got := values(t, recvUntilSync(t, s), time.Time{}, time.Now())
	if len(got) != 1 || got["eth0/in-octets"] != uint64(1000) {
		t.Fatalf("sample %v; want eth0/in-octets alone", got)
	}
	if _, err := c.Get(t.Context(), &gnmi.GetRequest{Path: []*gnmi.Path{bgpPath("", "*")}}); status.Code(err) != codes.Unavailable {
		t.Fatalf("Get bgp: %v; want Unavailable", err)
	}
}
