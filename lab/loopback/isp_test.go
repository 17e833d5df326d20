package loopback

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	api "github.com/osrg/gobgp/v3/api"

	"github.com/sdnoc/sdnoc/actuators/bgp"
	"github.com/sdnoc/sdnoc/internal/starttest"
)

// Addresses of these tests: 127.21.0.0/16.

func ispFreePort(t *testing.T, addr string) int {
	t.Helper()
	l, err := net.Listen("tcp", net.JoinHostPort(addr, "0"))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func testISPConfig(t *testing.T, addr, edge string) ISPConfig {
	return ISPConfig{
		Name: "isp1", ASN: 64501, RouterID: addr, Address: addr, Port: ispFreePort(t, addr),
		EdgeASN: 65000, EdgeAddress: edge,
	}
}

func TestNewISPValidates(t *testing.T) {
	good := ISPConfig{Name: "isp1", ASN: 64501, RouterID: "127.21.0.2", Address: "127.21.0.2", Port: 11179, EdgeASN: 65000, EdgeAddress: "127.21.0.1"}
	tests := map[string]struct {
		edit  func(*ISPConfig)
		wants []string
	}{
		"good":         {func(*ISPConfig) {}, nil},
		"ipv6":         {func(c *ISPConfig) { c.Address, c.EdgeAddress = "::1", "::1" }, nil},
		"no asn":       {func(c *ISPConfig) { c.ASN, c.EdgeASN = 0, 0 }, []string{"asn: missing", "edge_asn: missing"}},
		"not loopback": {func(c *ISPConfig) { c.Address, c.EdgeAddress = "198.18.0.2", "198.18.0.1" }, []string{"address:", "edge_address:"}},
		"router id":    {func(c *ISPConfig) { c.RouterID = "::1" }, []string{"router_id:"}},
		"families":     {func(c *ISPConfig) { c.EdgeAddress = "::1" }, []string{"not the same IP version"}},
		"port":         {func(c *ISPConfig) { c.Port = -1 }, []string{"port: -1"}},
		"timers":       {func(c *ISPConfig) { c.HoldTime = 1500 * time.Millisecond }, []string{"hold_time: 1.5s"}},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			c := good
			tt.edit(&c)
			_, err := NewISP(c, nil)
			if len(tt.wants) == 0 {
				if err != nil {
					t.Fatalf("NewISP() = %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("NewISP() = nil, want %q", tt.wants)
			}
			for _, w := range tt.wants {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("NewISP() = %v\nwant it to contain %q", err, w)
				}
			}
		})
	}
}

// TestISPWithEdge runs an ISP against the sdnoc speaker: the session comes
// up passively, the ISP learns both families over one IPv4 session, keeps
// its own route out of Routes, and has negotiated graceful restart as helper.
func TestISPWithEdge(t *testing.T) {
	const edge = "127.21.0.1"
	ctx := t.Context()
	cfg := testISPConfig(t, "127.21.0.2", edge)
	isp, err := NewISP(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := isp.Routes(ctx); err == nil {
		t.Error("Routes before Start = nil error, want not running")
	}
	if err := isp.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { isp.Stop(context.Background()) })
	if err := isp.Start(ctx); err == nil {
		t.Error("second Start = nil, want an error")
	}
	own := netip.MustParsePrefix("198.18.1.0/24")
	if err := isp.Originate(ctx, own); err != nil {
		t.Fatal(err)
	}
	if up, err := isp.Established(ctx); err != nil || up {
		t.Fatalf("Established before the edge = %v, %v; want false", up, err)
	}

	sc := bgp.DefaultConfig()
	sc.RouterID, sc.ASN = edge, cfg.EdgeASN
	sc.HoldTime, sc.ConnectRetry, sc.GracefulRestartTime = 9*time.Second, time.Second, 42*time.Second
	sc.Neighbors = []bgp.Neighbor{{Name: "isp1", Address: cfg.Address, Port: cfg.Port, PeerASN: cfg.ASN, LocalAddress: edge}}
	sp, err := bgp.New(sc, bgp.Deps{})
	if err != nil {
		t.Fatal(err)
	}
	v4, v6 := netip.MustParsePrefix("198.51.100.0/24"), netip.MustParsePrefix("2001:db8:100::/48")
	for _, p := range []netip.Prefix{v4, v6} {
		if err := sp.Announce(ctx, "isp1", p); err != nil {
			t.Fatal(err)
		}
	}
	if err := sp.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sp.Stop(context.Background()) })

	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	got, took, err := isp.WaitRoutes(wctx, func(rs []netip.Prefix) bool { return len(rs) == 2 }, 5*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if want := []netip.Prefix{v4, v6}; !slices.Equal(got, want) {
		t.Errorf("Routes() = %v, want %v (not the ISP's own %v)", got, want, own)
	}
	t.Logf("routes learned %v after the edge started", took.Round(time.Millisecond))
	if up, err := isp.Established(ctx); err != nil || !up {
		t.Errorf("Established = %v, %v; want true", up, err)
	}

	// Next hops as received: the edge's address for IPv4, and for IPv6 its
	// IPv4-mapped form, a 16-byte next hop in MP_REACH_NLRI (RFC 4760 §3),
	// which GoBGP accepts and prints in dotted form.
	srv, _ := isp.server()
	hops := map[netip.Prefix][]byte{}
	for _, afi := range []api.Family_Afi{api.Family_AFI_IP, api.Family_AFI_IP6} {
		if err := srv.ListPath(ctx, &api.ListPathRequest{
			TableType: api.TableType_GLOBAL, Family: &api.Family{Afi: afi, Safi: api.Family_SAFI_UNICAST}, EnableAttributeBinary: true,
		}, func(d *api.Destination) {
			p := netip.MustParsePrefix(d.GetPrefix())
			for _, a := range d.GetPaths()[0].GetPattrsBinary() {
				hops[p] = append(hops[p], nextHopOf(a)...)
			}
		}); err != nil {
			t.Fatal(err)
		}
	}
	if got, want := hops[v4], netip.MustParseAddr(edge).AsSlice(); !slices.Equal(got, want) {
		t.Errorf("next hop of %v = %v, want %v", v4, got, want)
	}
	if got, want := hops[v6], netip.AddrFrom16(netip.MustParseAddr(edge).As16()).AsSlice(); !slices.Equal(got, want) {
		t.Errorf("next hop of %v = %v, want ::ffff:%s %v", v6, got, edge, want)
	}

	// Graceful restart as seen by the ISP: the edge's capability was
	// received for both families, with the edge's restart time.
	if err := srv.ListPeer(ctx, &api.ListPeerRequest{Address: edge}, func(p *api.Peer) {
		if rt := p.GetGracefulRestart().GetPeerRestartTime(); rt != 42 {
			t.Errorf("peer restart time = %d, want 42", rt)
		}
		for _, a := range p.GetAfiSafis() {
			if s := a.GetMpGracefulRestart().GetState(); !s.GetEnabled() || !s.GetReceived() {
				t.Errorf("%v: graceful restart state %v, want enabled and received", a.GetConfig().GetFamily(), s)
			}
		}
	}); err != nil {
		t.Fatal(err)
	}

	if err := isp.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := isp.Established(ctx); err == nil {
		t.Error("Established after Stop = nil error, want not running")
	}
}

func TestWaitRoutesGivesUp(t *testing.T) {
	isp, err := NewISP(testISPConfig(t, "127.21.1.2", "127.21.1.1"), nil)
	if err != nil {
		t.Fatal(err)
	}
	starttest.Start(t, isp)
	start := time.Now()
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	rs, took, err := isp.WaitRoutes(ctx, func(rs []netip.Prefix) bool { return len(rs) > 0 }, 0)
	// took runs from WaitRoutes' own start, a little after the deadline's.
	if !errors.Is(err, context.DeadlineExceeded) || len(rs) != 0 || took <= 0 || time.Since(start) < 50*time.Millisecond {
		t.Errorf("WaitRoutes = %v, %v, %v after %v; want no routes and a deadline error after 50ms", rs, took, err, time.Since(start))
	}
}

func TestISPStartFailsOnBusyPort(t *testing.T) {
	cfg := testISPConfig(t, "127.21.2.2", "127.21.2.1")
	l, err := net.Listen("tcp", net.JoinHostPort(cfg.Address, "0"))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	cfg.Port = l.Addr().(*net.TCPAddr).Port
	isp, err := NewISP(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := isp.Start(t.Context()); err == nil || !strings.Contains(err.Error(), cfg.Address) {
		t.Errorf("Start on a busy port = %v, want an error naming the address", err)
	}
	if err := isp.Stop(t.Context()); err != nil {
		t.Errorf("Stop after a failed Start = %v", err)
	}
}

// nextHopOf returns the next hop bytes of a NEXT_HOP or MP_REACH_NLRI path
// attribute in wire format (RFC 4271 §4.3, RFC 4760 §3), else nil.
func nextHopOf(a []byte) []byte {
	if len(a) < 3 {
		return nil
	}
	flags, typ, body := a[0], a[1], a[3:]
	if flags&0x10 != 0 { // extended length
		if len(a) < 4 {
			return nil
		}
		body = a[4:]
	}
	switch typ {
	case 3: // NEXT_HOP
		return body
	case 14: // MP_REACH_NLRI: AFI(2) SAFI(1) length(1) next hop
		if len(body) < 4 || len(body) < 4+int(body[3]) {
			return nil
		}
		return body[4 : 4+int(body[3])]
	}
	return nil
}
