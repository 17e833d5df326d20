package main

import (
	"encoding/json"
	"net"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sdnoc/sdnoc/collectors/flow/flowtest"
	"github.com/sdnoc/sdnoc/controller"
	"github.com/sdnoc/sdnoc/topologies"
)

// TestFlowsTop: the daemon's /flows/top shows a link's busiest prefixes
// from the NetFlow the link's router exports, and refuses what it cannot
// answer.
func TestFlowsTop(t *testing.T) {
	topo, err := topologies.Parse("t.yaml", []byte(`
flow: { listen: "127.0.0.1:0", window: 2s, sockets: 1 }
pops:
  - name: pop1
    speaker: { router_id: 198.18.0.1, asn: 65000 }
    routers:
      - { name: br1, flow_exporter: 127.0.0.1 }
    links:
      - { name: isp1, peer_asn: 64501, neighbor: 127.0.0.2, local: 127.0.0.1, capacity: 10G, probe_targets: [127.0.0.3:9], router: br1, ifindex: 5 }
      - { name: isp2, peer_asn: 64502, neighbor: 127.0.0.4, local: 127.0.0.1, capacity: 10G, probe_targets: [127.0.0.5:9] }
prefixes:
  - prefix: 198.51.100.0/24
  - prefix: 203.0.113.0/24
`))
	if err != nil {
		t.Fatal(err)
	}
	cfg := controller.DefaultConfig()
	cfg.Topology, cfg.DryRun = topo, true
	ctl, err := controller.New(cfg, controller.Deps{})
	if err != nil {
		t.Fatal(err)
	}
	if err := ctl.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ctl.Stop(t.Context()) })

	conn, err := net.Dial("udp", ctl.FlowAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	src := netip.MustParseAddr("192.0.2.1")
	dgram := flowtest.NetFlowV5(1, []flowtest.Flow{
		{Src: src, Dst: netip.MustParseAddr("203.0.113.7"), InIf: 5, Bytes: 300_000, Packets: 200},
		{Src: src, Dst: netip.MustParseAddr("198.51.100.7"), InIf: 5, Bytes: 100_000, Packets: 100},
	})
	if _, err := conn.Write(dgram); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(adminMux(prometheus.NewRegistry(), ctl))
	defer srv.Close()
	type row struct {
		Prefix     netip.Prefix `json:"prefix"`
		BitsPerSec float64      `json:"bits_per_sec"`
	}
	var rows []row
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		code, body, err := get(srv.URL + "/flows/top?link=pop1/isp1&n=1")
		if err != nil || code != 200 {
			t.Fatalf("/flows/top: %d %s %v", code, body, err)
		}
		if err := json.Unmarshal([]byte(body), &rows); err != nil {
			t.Fatal(err)
		}
		if len(rows) > 0 {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	// n=1: only the busiest; 300,000 B over a 2 s window.
	if len(rows) != 1 || rows[0].Prefix != netip.MustParsePrefix("203.0.113.0/24") || rows[0].BitsPerSec > 8*300_000/2+1 || rows[0].BitsPerSec < 8*300_000/2*0.99 {
		t.Fatalf("top of pop1/isp1 = %+v; want 203.0.113.0/24 at 1.2 Mbit/s", rows)
	}
	for _, tt := range []struct{ query, want string }{
		{"link=pop1/isp2", "has no flows"},
		{"link=pop1/isp1&n=0", "want a count"},
	} {
		code, body, _ := get(srv.URL + "/flows/top?" + tt.query)
		if code < 400 || !strings.Contains(body, tt.want) {
			t.Errorf("/flows/top?%s = %d %q; want an error saying %q", tt.query, code, body, tt.want)
		}
	}
}

// The admin API listens on a Unix socket when --listen is a path,
// replacing a socket file a previous run left.
func TestAdminListenUnix(t *testing.T) {
	path := t.TempDir() + "/sdnoc.sock"
	for range 2 { // the second finds the first's file
		ln, err := adminListen(t.Context(), path)
		if err != nil {
			t.Fatal(err)
		}
		if ln.Addr().Network() != "unix" {
			t.Fatalf("listening on %s %s, want unix", ln.Addr().Network(), ln.Addr())
		}
		c, err := net.Dial("unix", path)
		if err != nil {
			t.Fatal(err)
		}
		c.Close()
		ln.(*net.UnixListener).SetUnlinkOnClose(false)
		ln.Close()
	}
}
