package loopback

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/netip"
	"slices"
	"sync"
	"time"

	api "github.com/osrg/gobgp/v3/api"
	"github.com/osrg/gobgp/v3/pkg/server"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/sdnoc/sdnoc/actuators/bgp/gobgplog"
	"github.com/sdnoc/sdnoc/actuators/bgp/gobgpstop"
)

// ISPConfig describes an ISP router with one eBGP session, to the edge.
type ISPConfig struct {
	// Name names the ISP in logs, e.g. "isp1".
	Name string
	// ASN is the ISP's AS number.
	ASN uint32
	// RouterID is the ISP's BGP identifier, an IPv4 address.
	RouterID string
	// Address is where the ISP listens, e.g. "127.0.0.2"; the edge connects to it.
	Address string
	// Port is the ISP's listening port; 0 means 179, which needs root.
	Port int
	// EdgeASN is the edge's AS number.
	EdgeASN uint32
	// EdgeAddress is the address the edge's session comes from.
	EdgeAddress string
	// HoldTime, KeepaliveInterval and ConnectRetry are the BGP timers;
	// zero means the lab's fast values, 9 s, 3 s and 1 s.
	HoldTime, KeepaliveInterval, ConnectRetry time.Duration
}

func (c ISPConfig) validate() error {
	var errs []error
	if c.ASN == 0 {
		errs = append(errs, errors.New("asn: missing; set the ISP's AS number, e.g. 64501"))
	}
	if a, err := netip.ParseAddr(c.RouterID); err != nil || !a.Is4() {
		errs = append(errs, fmt.Errorf("router_id: %q is not an IPv4 address; write e.g. \"127.0.0.2\"", c.RouterID))
	}
	addr, err := netip.ParseAddr(c.Address)
	if err != nil || !addr.IsLoopback() {
		errs = append(errs, fmt.Errorf("address: %q is not a loopback address; write e.g. \"127.0.0.2\" or \"::1\"", c.Address))
	}
	if c.Port < 0 || c.Port > 65535 {
		errs = append(errs, fmt.Errorf("port: %d is not a TCP port; use 1024..65535 to run without root", c.Port))
	}
	if c.EdgeASN == 0 {
		errs = append(errs, errors.New("edge_asn: missing; set the edge's AS number, e.g. 65000"))
	}
	edge, err := netip.ParseAddr(c.EdgeAddress)
	if err != nil || !edge.IsLoopback() {
		errs = append(errs, fmt.Errorf("edge_address: %q is not a loopback address; write the edge's source address, e.g. \"127.0.0.1\"", c.EdgeAddress))
	} else if addr.IsValid() && addr.Is4() != edge.Is4() {
		errs = append(errs, fmt.Errorf("edge_address: %s and address %s are not the same IP version", edge, addr))
	}
	for _, t := range []struct {
		name string
		d    time.Duration
	}{{"hold_time", c.HoldTime}, {"keepalive_interval", c.KeepaliveInterval}, {"connect_retry", c.ConnectRetry}} {
		if t.d < 0 || t.d%time.Second != 0 {
			errs = append(errs, fmt.Errorf("%s: %v is not a whole number of seconds; write e.g. 3s, or 0 for the default", t.name, t.d))
		}
	}
	return errors.Join(errs...)
}

func (c ISPConfig) withDefaults() ISPConfig {
	if c.Port == 0 {
		c.Port = 179
	}
	if c.HoldTime == 0 {
		c.HoldTime = 9 * time.Second
	}
	if c.KeepaliveInterval == 0 {
		c.KeepaliveInterval = 3 * time.Second
	}
	if c.ConnectRetry == 0 {
		c.ConnectRetry = time.Second
	}
	c.Address = netip.MustParseAddr(c.Address).String()
	c.EdgeAddress = netip.MustParseAddr(c.EdgeAddress).String()
	return c
}

// ISP is a GoBGP speaker playing an ISP router: passive towards the edge,
// IPv4 and IPv6 unicast, graceful restart helper (it keeps the edge's
// routes when the edge's session dies without a NOTIFICATION, RFC 4724 §4.2).
// It accepts every route the edge sends.
type ISP struct {
	cfg ISPConfig
	log *slog.Logger

	mu      sync.Mutex // guards srv and stopped
	srv     *server.BgpServer
	stopped bool
}

// NewISP checks cfg. It opens no socket; log nil discards.
func NewISP(cfg ISPConfig, log *slog.Logger) (*ISP, error) {
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("isp %s config:\n%w", cfg.Name, err)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &ISP{cfg: cfg.withDefaults(), log: log.With("isp", cfg.Name)}, nil
}

// Start listens on Address:Port and waits there for the edge. ctx bounds
// startup only. One goroutine stays behind after Stop: GoBGP v3's
// BgpServer.Serve never returns. As for bgp.Speaker.Start, start every ISP
// and speaker of a process before routes flow: GoBGP's StartBgp writes
// package-level state that running servers read.
func (i *ISP) Start(ctx context.Context) error {
	i.mu.Lock()
	defer i.mu.Unlock()
	if i.srv != nil || i.stopped {
		return fmt.Errorf("start isp %s: already started", i.cfg.Name)
	}
	c := i.cfg
	srv := server.NewBgpServer(server.LoggerOption(gobgplog.New(i.log)))
	go srv.Serve()
	fail := func(err error) error {
		_ = srv.StopBgp(context.WithoutCancel(ctx), &api.StopBgpRequest{})
		i.stopped = true
		return fmt.Errorf("start isp %s: %w", c.Name, err)
	}
	if err := srv.StartBgp(ctx, &api.StartBgpRequest{Global: &api.Global{
		Asn:             c.ASN,
		RouterId:        c.RouterID,
		ListenPort:      int32(c.Port),
		ListenAddresses: []string{c.Address},
	}}); err != nil {
		return fail(fmt.Errorf("listen %s: %w", netip.AddrPortFrom(netip.MustParseAddr(c.Address), uint16(c.Port)), err))
	}
	var afiSafis []*api.AfiSafi
	for _, f := range []api.Family_Afi{api.Family_AFI_IP, api.Family_AFI_IP6} {
		afiSafis = append(afiSafis, &api.AfiSafi{
			Config:            &api.AfiSafiConfig{Family: &api.Family{Afi: f, Safi: api.Family_SAFI_UNICAST}, Enabled: true},
			MpGracefulRestart: &api.MpGracefulRestart{Config: &api.MpGracefulRestartConfig{Enabled: true}},
		})
	}
	if err := srv.AddPeer(ctx, &api.AddPeerRequest{Peer: &api.Peer{
		Conf:      &api.PeerConf{NeighborAddress: c.EdgeAddress, PeerAsn: c.EdgeASN, Description: "edge"},
		Transport: &api.Transport{LocalAddress: c.Address, PassiveMode: true},
		Timers: &api.Timers{Config: &api.TimersConfig{
			ConnectRetry:      uint64(c.ConnectRetry / time.Second),
			HoldTime:          uint64(c.HoldTime / time.Second),
			KeepaliveInterval: uint64(c.KeepaliveInterval / time.Second),
		}},
		GracefulRestart: &api.GracefulRestart{Enabled: true, HelperOnly: true},
		AfiSafis:        afiSafis,
	}}); err != nil {
		return fail(fmt.Errorf("add edge %s: %w", c.EdgeAddress, err))
	}
	i.srv = srv
	return nil
}

// Stop closes the session (with a NOTIFICATION) and the listener, or gives
// up when ctx ends.
func (i *ISP) Stop(ctx context.Context) error {
	i.mu.Lock()
	srv := i.srv
	i.srv = nil
	i.stopped = true
	i.mu.Unlock()
	if srv == nil {
		return nil
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = gobgpstop.Stop(ctx, srv, i.cfg.EdgeAddress)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("stop isp %s: %w", i.cfg.Name, ctx.Err())
	}
}

func (i *ISP) server() (*server.BgpServer, error) {
	i.mu.Lock()
	defer i.mu.Unlock()
	if i.srv == nil {
		return nil, fmt.Errorf("isp %s: not running", i.cfg.Name)
	}
	return i.srv, nil
}

// Originate adds a route of the ISP's own, as a transit would send its
// customers' ranges, with the ISP's address as next hop.
func (i *ISP) Originate(ctx context.Context, prefix netip.Prefix) error {
	srv, err := i.server()
	if err != nil {
		return err
	}
	if !prefix.IsValid() || prefix.Addr().Is4In6() {
		return fmt.Errorf("isp %s: originate %s: not a unicast prefix", i.cfg.Name, prefix)
	}
	prefix = prefix.Masked()
	nh := netip.MustParseAddr(i.cfg.Address)
	fam := &api.Family{Afi: api.Family_AFI_IP, Safi: api.Family_SAFI_UNICAST}
	if prefix.Addr().Is6() {
		fam.Afi = api.Family_AFI_IP6
		if nh.Is4() {
			nh = netip.AddrFrom16(nh.As16())
		}
	}
	nlri, err := anypb.New(&api.IPAddressPrefix{Prefix: prefix.Addr().String(), PrefixLen: uint32(prefix.Bits())})
	if err != nil {
		return fmt.Errorf("isp %s: originate %s: %w", i.cfg.Name, prefix, err)
	}
	origin, err := anypb.New(&api.OriginAttribute{Origin: 0})
	if err != nil {
		return fmt.Errorf("isp %s: originate %s: %w", i.cfg.Name, prefix, err)
	}
	var hop *anypb.Any
	if prefix.Addr().Is4() && nh.Is4() {
		hop, err = anypb.New(&api.NextHopAttribute{NextHop: nh.String()})
	} else {
		hop, err = anypb.New(&api.MpReachNLRIAttribute{Family: fam, NextHops: []string{nh.String()}, Nlris: []*anypb.Any{nlri}})
	}
	if err != nil {
		return fmt.Errorf("isp %s: originate %s: %w", i.cfg.Name, prefix, err)
	}
	if _, err := srv.AddPath(ctx, &api.AddPathRequest{TableType: api.TableType_GLOBAL, Path: &api.Path{
		Family: fam, Nlri: nlri, Pattrs: []*anypb.Any{origin, hop},
	}}); err != nil {
		return fmt.Errorf("isp %s: originate %s: %w", i.cfg.Name, prefix, err)
	}
	return nil
}

// edgePaths returns the paths in the ISP's global RIB, both families,
// that it learned from the edge (not those it originates), by prefix.
//
// While the edge's session re-opens after a graceful restart, wait for
// Established before calling Routes: GoBGP v3.37.0's ListPath reads the
// stale paths' source PeerInfo unlocked (pkg/server/grpc_server.go:187-190)
// while the FSM rewrites it on the new OPEN (pkg/server/fsm.go:1365), a
// data race that -race reports.
func (i *ISP) edgePaths(ctx context.Context) (map[netip.Prefix]*api.Path, error) {
	srv, err := i.server()
	if err != nil {
		return nil, err
	}
	edge := netip.MustParseAddr(i.cfg.EdgeAddress)
	out := map[netip.Prefix]*api.Path{}
	for _, afi := range []api.Family_Afi{api.Family_AFI_IP, api.Family_AFI_IP6} {
		var bad error
		err := srv.ListPath(ctx, &api.ListPathRequest{
			TableType: api.TableType_GLOBAL,
			Family:    &api.Family{Afi: afi, Safi: api.Family_SAFI_UNICAST},
		}, func(d *api.Destination) {
			for _, p := range d.GetPaths() {
				from, err := netip.ParseAddr(p.GetNeighborIp())
				if err != nil || from.Unmap() != edge.Unmap() {
					continue // originated here: no neighbour
				}
				pfx, err := netip.ParsePrefix(d.GetPrefix())
				if err != nil {
					bad = fmt.Errorf("destination %q: %w", d.GetPrefix(), err)
					return
				}
				out[pfx] = p
				return
			}
		})
		if err == nil {
			err = bad
		}
		if err != nil {
			return nil, fmt.Errorf("isp %s: list %s rib: %w", i.cfg.Name, afi, err)
		}
	}
	// ListPath converts the paths on this goroutine, outside GoBGP's
	// management goroutine, which may later write to them (marking them
	// stale when the edge's session drops). A management operation orders
	// these reads before any such write; without it -race reports them even
	// though they never overlap in time (pkg/server/grpc_server.go:178 vs
	// internal/pkg/table/path.go:396).
	if _, err := srv.GetBgp(ctx, &api.GetBgpRequest{}); err != nil {
		return nil, fmt.Errorf("isp %s: %w", i.cfg.Name, err)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("isp %s: list rib: %w", i.cfg.Name, err) // ListPath stops early, without error, on a done ctx
	}
	return out, nil
}

// Routes returns the prefixes the ISP holds from the edge (see edgePaths
// for the wait a graceful restart needs), sorted.
func (i *ISP) Routes(ctx context.Context) ([]netip.Prefix, error) {
	ps, err := i.edgePaths(ctx)
	if err != nil {
		return nil, err
	}
	return slices.SortedFunc(maps.Keys(ps), netip.Prefix.Compare), nil
}

// ASPaths returns the AS path of each prefix the ISP holds from the edge.
func (i *ISP) ASPaths(ctx context.Context) (map[netip.Prefix][]uint32, error) {
	ps, err := i.edgePaths(ctx)
	if err != nil {
		return nil, err
	}
	out := make(map[netip.Prefix][]uint32, len(ps))
	for pfx, p := range ps {
		var path []uint32
		for _, a := range p.GetPattrs() {
			var asp api.AsPathAttribute
			if a.UnmarshalTo(&asp) == nil {
				for _, seg := range asp.GetSegments() {
					path = append(path, seg.GetNumbers()...)
				}
			}
		}
		out[pfx] = path
	}
	return out, nil
}

// Established reports whether the session with the edge is established.
func (i *ISP) Established(ctx context.Context) (bool, error) {
	srv, err := i.server()
	if err != nil {
		return false, err
	}
	var up bool
	if err := srv.ListPeer(ctx, &api.ListPeerRequest{Address: i.cfg.EdgeAddress}, func(p *api.Peer) {
		up = p.GetState().GetSessionState() == api.PeerState_ESTABLISHED
	}); err != nil {
		return false, fmt.Errorf("isp %s: list peer: %w", i.cfg.Name, err)
	}
	return up, nil
}

// WaitRoutes polls Routes every poll (10 ms when zero) until pred holds,
// and returns the routes and how long that took, or the error that ended
// the wait (ctx's, with the last routes seen).
func (i *ISP) WaitRoutes(ctx context.Context, pred func([]netip.Prefix) bool, poll time.Duration) ([]netip.Prefix, time.Duration, error) {
	if poll <= 0 {
		poll = 10 * time.Millisecond
	}
	start := time.Now()
	t := time.NewTicker(poll)
	defer t.Stop()
	var last []netip.Prefix
	for {
		rs, err := i.Routes(ctx)
		if err != nil && ctx.Err() == nil {
			return last, time.Since(start), err
		}
		if err == nil {
			if pred(rs) {
				return rs, time.Since(start), nil
			}
			last = rs
		}
		select {
		case <-ctx.Done():
			return last, time.Since(start), fmt.Errorf("isp %s: wait for routes (have %d): %w", i.cfg.Name, len(last), ctx.Err())
		case <-t.C:
		}
	}
}
