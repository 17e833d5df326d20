// Package bgp publishes the edge's prefixes to its ISPs over BGP, per ISP link.
//
// A Speaker runs one GoBGP server (github.com/osrg/gobgp/v3) per ISP link,
// each with exactly one neighbour, all with the PoP's AS number and router
// ID. Announcing or withdrawing a prefix towards one neighbour is then a
// plain AddPath or DeletePath on that neighbour's server: the ISP receives
// exactly that change, and no per-neighbour export policy or soft reset
// re-sends the other prefixes.
//
// Every session carries IPv4 and IPv6 unicast (RFC 4760) and graceful
// restart (RFC 4724), so an ISP keeps our routes for GracefulRestartTime
// when the process dies. Only locally originated routes are exported, and
// routes received from an ISP are rejected on import.
package bgp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	api "github.com/osrg/gobgp/v3/api"
	"github.com/osrg/gobgp/v3/pkg/server"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/sdnoc/sdnoc/actuators/bgp/gobgplog"
	"github.com/sdnoc/sdnoc/actuators/bgp/gobgpstop"
	"github.com/sdnoc/sdnoc/internal/waitctx"
)

var (
	// ErrUnknownNeighbor is returned, wrapped, for a neighbour name that is
	// not in the configuration.
	ErrUnknownNeighbor = errors.New("unknown neighbor")
	// ErrNotRunning is returned, wrapped, by calls that need the GoBGP
	// servers before Start or after Stop.
	ErrNotRunning = errors.New("speaker not running")
)

// Deps are the Speaker's dependencies.
type Deps struct {
	Log *slog.Logger          // nil: discard
	Reg prometheus.Registerer // nil: metrics are created but not exported
}

// Session is the state of one neighbour's BGP session.
type Session struct {
	// State is GoBGP's FSM state in lowercase: "idle", "connect", "active",
	// "opensent", "openconfirm" or "established".
	State string
	// Up is true when State is "established".
	Up bool
	// Since is when the session last came up (Up) or went down; zero if
	// neither has happened yet. GoBGP keeps it to the second.
	Since time.Time
	// Advertised counts the prefixes in the neighbour's adj-RIB-out, as Applied.
	Advertised int
	// Received counts the routes the neighbour sent. GoBGP v3 keeps them in
	// its Adj-RIB-In even though the import policy rejects them all.
	Received int
	// GracefulRestart is true when both OPEN messages carried the graceful
	// restart capability (RFC 4724 §3).
	GracefulRestart bool
}

// Speaker is the BGP speaker of one PoP: one GoBGP server per ISP link.
type Speaker struct {
	cfg   Config
	log   *slog.Logger
	m     metrics
	links map[string]*link
	order []*link // configuration order

	mu      sync.Mutex // guards started, stopped and cancel
	started bool
	stopped bool
	cancel  context.CancelFunc
}

// link is one ISP link and its GoBGP server.
type link struct {
	n   Neighbor
	log *slog.Logger

	// mu serialises the changes on this link and guards the fields below.
	mu      sync.Mutex
	srv     *server.BgpServer // nil before Start and after Stop
	stopped bool
	// prefixes are the prefixes this link originates. Before Start they are
	// queued, and Start installs them before the session can come up.
	prefixes map[netip.Prefix]struct{}
	// prepend is how many extra copies of our AS the link's paths carry.
	prepend int
	asn     uint32
}

// New checks cfg and wires deps. It opens no socket and starts no goroutine.
func New(cfg Config, deps Deps) (*Speaker, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("bgp config:\n%w", err)
	}
	cfg = cfg.withDefaults()
	log := deps.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Speaker{
		cfg:   cfg,
		log:   log,
		m:     newMetrics(deps.Reg),
		links: make(map[string]*link, len(cfg.Neighbors)),
	}
	for _, n := range cfg.Neighbors {
		l := &link{
			n:        n,
			log:      log.With("neighbor", n.Name),
			prefixes: make(map[netip.Prefix]struct{}),
			asn:      cfg.ASN,
		}
		if n.ASN != 0 {
			l.asn = n.ASN
		}
		s.links[n.Name] = l
		s.order = append(s.order, l)
		s.m.sessionUp.WithLabelValues(n.Name).Set(0)
		s.m.announces.WithLabelValues(n.Name)
		s.m.withdraws.WithLabelValues(n.Name)
		s.m.errors.WithLabelValues(n.Name)
	}
	return s, nil
}

// Start starts one GoBGP server per link, sets its policies, originates the
// prefixes announced before Start, and adds the neighbour. It returns once
// every server is configured; sessions come up in the background (see
// Sessions). ctx bounds startup only.
//
// Prefixes announced before Start are installed before the neighbour is
// added, so after a restart the first UPDATEs re-announce them and the
// ISPs' stale copies, kept by graceful restart, are refreshed rather than
// flushed by our End-of-RIB (RFC 4724 §4.2).
//
// Start no GoBGP server while another one in the process handles routes or
// answers ListPath (Applied, Sessions, loopback.ISP.Routes): GoBGP
// v3.37.0's StartBgp still writes the package-level table.SelectionOptions
// and table.UseMultiplePaths (pkg/server/server.go:2470, osrg/gobgp#2716),
// which every server reads when it selects routes and in ListPath. The
// values written are always the zero ones, but the writes race. So Start
// starts all its servers before it adds any neighbour, and a process starts
// its speakers before routes flow.
func (s *Speaker) Start(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.started {
		return errors.New("start: speaker already started")
	}
	s.started = true
	run, cancel := context.WithCancel(context.WithoutCancel(ctx))

	// Announce and Withdraw wait until every server is ready.
	for _, l := range s.order {
		l.mu.Lock()
	}
	defer func() {
		for _, l := range s.order {
			l.mu.Unlock()
		}
	}()
	fail := func(err error) error {
		cancel()
		for _, l := range s.order {
			if l.srv != nil {
				_ = l.srv.StopBgp(context.WithoutCancel(ctx), &api.StopBgpRequest{})
				l.srv = nil
			}
			l.stopped = true
		}
		s.stopped = true
		return err
	}

	// Every StartBgp comes before any session, see the Start doc.
	for _, l := range s.order {
		if err := ctx.Err(); err != nil {
			return fail(fmt.Errorf("start: %w", err))
		}
		l.srv = server.NewBgpServer(server.LoggerOption(gobgplog.New(l.log)))
		go l.srv.Serve() // returns never: GoBGP v3 has no way to end it
		asn, rid := s.cfg.ASN, s.cfg.RouterID
		if l.n.ASN != 0 {
			asn = l.n.ASN
		}
		if l.n.RouterID != "" {
			rid = l.n.RouterID
		}
		if err := l.srv.StartBgp(ctx, &api.StartBgpRequest{Global: &api.Global{
			Asn:             asn,
			RouterId:        rid,
			ListenPort:      l.n.ListenPort,
			ListenAddresses: []string{l.n.LocalAddress},
		}}); err != nil {
			return fail(fmt.Errorf("start bgp for %s on %s: %w", l.n.Name, l.n.LocalAddress, err))
		}
	}
	for _, l := range s.order {
		if err := s.setup(ctx, run, l); err != nil {
			return fail(fmt.Errorf("start %s: %w", l.n.Name, err))
		}
	}
	s.cancel = cancel
	s.log.Info("bgp speaker started", "asn", s.cfg.ASN, "router_id", s.cfg.RouterID, "neighbors", len(s.order))
	return nil
}

// onlyLocal is the policy, on import and export, that accepts the routes
// this server originates and nothing else (the default action rejects).
// On export it stops routes learned from one ISP from reaching another; on
// import it keeps an ISP's table out of the RIB. GoBGP applies the global
// import policy to locally added paths too (pkg/server/server.go,
// propagateUpdate), so a bare reject-all would refuse our own prefixes.
const onlyLocal = "only-local"

// setup configures one started server; l.mu is held.
func (s *Speaker) setup(ctx, run context.Context, l *link) error {
	if err := l.srv.AddPolicy(ctx, &api.AddPolicyRequest{Policy: &api.Policy{
		Name: onlyLocal,
		Statements: []*api.Statement{{
			Name:       onlyLocal,
			Conditions: &api.Conditions{RouteType: api.Conditions_ROUTE_TYPE_LOCAL},
			Actions:    &api.Actions{RouteAction: api.RouteAction_ACCEPT},
		}},
	}}); err != nil {
		return fmt.Errorf("add policy: %w", err)
	}
	for _, dir := range []api.PolicyDirection{api.PolicyDirection_IMPORT, api.PolicyDirection_EXPORT} {
		if err := l.srv.AddPolicyAssignment(ctx, &api.AddPolicyAssignmentRequest{Assignment: &api.PolicyAssignment{
			Name:          "global",
			Direction:     dir,
			Policies:      []*api.Policy{{Name: onlyLocal}},
			DefaultAction: api.RouteAction_REJECT,
		}}); err != nil {
			return fmt.Errorf("assign %s policy: %w", strings.ToLower(dir.String()), err)
		}
	}
	for p := range l.prefixes {
		if err := s.add(ctx, l, p); err != nil {
			return err
		}
	}
	if err := l.srv.WatchEvent(run, &api.WatchEventRequest{Peer: &api.WatchEventRequest_Peer{}},
		func(r *api.WatchEventResponse) { s.peerEvent(l, r) }); err != nil {
		return fmt.Errorf("watch peer: %w", err)
	}
	if err := l.srv.AddPeer(ctx, &api.AddPeerRequest{Peer: s.peer(l.n)}); err != nil {
		return fmt.Errorf("add neighbor %s: %w", l.n.Address, err)
	}
	return nil
}

func (s *Speaker) peer(n Neighbor) *api.Peer {
	afiSafis := make([]*api.AfiSafi, 0, 2)
	for _, f := range families() {
		afiSafis = append(afiSafis, &api.AfiSafi{
			Config:            &api.AfiSafiConfig{Family: f, Enabled: true},
			MpGracefulRestart: &api.MpGracefulRestart{Config: &api.MpGracefulRestartConfig{Enabled: true}},
		})
	}
	return &api.Peer{
		Conf: &api.PeerConf{
			NeighborAddress: n.Address,
			PeerAsn:         n.PeerASN,
			Description:     n.Name,
		},
		Transport: &api.Transport{
			LocalAddress: n.LocalAddress,
			RemotePort:   uint32(n.Port),
		},
		Timers: &api.Timers{Config: &api.TimersConfig{
			ConnectRetry:      uint64(s.cfg.ConnectRetry / time.Second),
			HoldTime:          uint64(s.cfg.HoldTime / time.Second),
			KeepaliveInterval: uint64(s.cfg.KeepaliveInterval / time.Second),
		}},
		GracefulRestart: &api.GracefulRestart{
			Enabled:     true,
			RestartTime: uint32(s.cfg.GracefulRestartTime / time.Second),
		},
		AfiSafis: afiSafis,
	}
}

// peerEvent keeps bgp_session_up current. GoBGP calls it from a goroutine
// of its own, which ends when the run context of Start is cancelled.
func (s *Speaker) peerEvent(l *link, r *api.WatchEventResponse) {
	ev := r.GetPeer()
	if ev == nil || ev.GetType() != api.WatchEventResponse_PeerEvent_STATE {
		return
	}
	state := ev.GetPeer().GetState().GetSessionState()
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.srv == nil {
		return // stopped: Stop has set the gauge
	}
	up := 0.0
	if state == api.PeerState_ESTABLISHED {
		up = 1
	}
	s.m.sessionUp.WithLabelValues(l.n.Name).Set(up)
	l.log.Debug("bgp session state", "state", stateName(state))
}

// Stop ends every session and stops the servers, or gives up when ctx ends.
//
// GoBGP ends each session with a NOTIFICATION (Cease, Peer De-configured),
// so the ISPs drop our routes at once: graceful restart does not apply to a
// NOTIFICATION (RFC 4724 §4; RFC 8538 maps this subcode to a hard reset).
// Only a session that dies without one, as when the process is killed,
// leaves the ISPs holding our routes for GracefulRestartTime.
//
// One goroutine per server stays behind: GoBGP v3's BgpServer.Serve loops
// forever (pkg/server/server.go, Serve).
func (s *Speaker) Stop(ctx context.Context) error {
	s.mu.Lock()
	running := s.started && !s.stopped
	s.stopped = true
	cancel := s.cancel
	s.mu.Unlock()
	if !running {
		for _, l := range s.order {
			l.mu.Lock()
			l.stopped = true
			l.mu.Unlock()
		}
		return nil
	}
	cancel()
	var wg sync.WaitGroup
	for _, l := range s.order {
		l.mu.Lock()
		srv := l.srv
		l.srv = nil
		l.stopped = true
		s.m.sessionUp.WithLabelValues(l.n.Name).Set(0)
		l.mu.Unlock()
		wg.Go(func() {
			if err := gobgpstop.Stop(ctx, srv, l.n.Address); err != nil {
				l.log.Warn("stop bgp server", "err", err)
			}
		})
	}
	if err := waitctx.Wait(ctx, &wg); err != nil {
		return fmt.Errorf("stop: %w", err)
	}
	s.log.Info("bgp speaker stopped")
	return nil
}

// WithdrawAll withdraws every announced prefix from every neighbour. Call
// it before Stop when the edge is to leave these ISPs, not restart: a
// controller that exits without Stop leaves its routes at the ISPs for the
// graceful restart time, and Stop alone flushes them only because GoBGP's
// Cease is taken as a hard reset.
func (s *Speaker) WithdrawAll(ctx context.Context) error {
	var errs []error
	for _, l := range s.order {
		l.mu.Lock()
		ps := slices.Collect(maps.Keys(l.prefixes))
		l.mu.Unlock()
		for _, p := range ps {
			if err := s.Withdraw(ctx, l.n.Name, p); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

// Announce originates prefix towards the named neighbour. Announcing a
// prefix that is already announced does nothing. Before Start the prefix
// is queued, and Start originates it.
func (s *Speaker) Announce(ctx context.Context, neighbor string, prefix netip.Prefix) error {
	return s.change(ctx, neighbor, prefix, true)
}

// Withdraw withdraws prefix from the named neighbour. Withdrawing a prefix
// that is not announced does nothing.
func (s *Speaker) Withdraw(ctx context.Context, neighbor string, prefix netip.Prefix) error {
	return s.change(ctx, neighbor, prefix, false)
}

func (s *Speaker) change(ctx context.Context, neighbor string, prefix netip.Prefix, announce bool) error {
	verb, dir := "withdraw", "from"
	if announce {
		verb, dir = "announce", "to"
	}
	l, ok := s.links[neighbor]
	if !ok {
		return fmt.Errorf("%s %s %s %q: %w", verb, prefix, dir, neighbor, ErrUnknownNeighbor)
	}
	p, err := checkPrefix(prefix)
	if err != nil {
		return fmt.Errorf("%s %s %s %s: %w", verb, prefix, dir, neighbor, err)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("%s %s %s %s: %w", verb, p, dir, neighbor, err)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.stopped {
		return fmt.Errorf("%s %s %s %s: %w", verb, p, dir, neighbor, ErrNotRunning)
	}
	if _, have := l.prefixes[p]; have == announce {
		return nil
	}
	if l.srv != nil {
		if announce {
			err = s.add(ctx, l, p)
		} else {
			err = s.del(ctx, l, p)
		}
		if err != nil {
			return fmt.Errorf("%s %s %s %s: %w", verb, p, dir, neighbor, err)
		}
	}
	if announce {
		l.prefixes[p] = struct{}{}
	} else {
		delete(l.prefixes, p)
	}
	return nil
}

// add originates p on l's server; l.mu is held.
func (s *Speaker) add(ctx context.Context, l *link, p netip.Prefix) error {
	path, err := newPath(p, l.nextHop(p), l.asPath()...)
	if err == nil {
		_, err = l.srv.AddPath(ctx, &api.AddPathRequest{TableType: api.TableType_GLOBAL, Path: path})
	}
	if err != nil {
		s.m.errors.WithLabelValues(l.n.Name).Inc()
		return fmt.Errorf("add path %s: %w", p, err)
	}
	s.m.announces.WithLabelValues(l.n.Name).Inc()
	return nil
}

// del withdraws p from l's server; l.mu is held. It deletes by path, not by
// AddPath's UUID: GoBGP finds a UUID by scanning the whole RIB once per
// known UUID (pkg/server/server.go, DeletePath).
func (s *Speaker) del(ctx context.Context, l *link, p netip.Prefix) error {
	path, err := newPath(p, l.nextHop(p))
	if err == nil {
		err = l.srv.DeletePath(ctx, &api.DeletePathRequest{TableType: api.TableType_GLOBAL, Family: family(p), Path: path})
	}
	if err != nil {
		s.m.errors.WithLabelValues(l.n.Name).Inc()
		return fmt.Errorf("delete path %s: %w", p, err)
	}
	s.m.withdraws.WithLabelValues(l.n.Name).Inc()
	return nil
}

// asPath is the AS_PATH the link's paths start with: l.prepend copies of
// its AS, or none.
func (l *link) asPath() []uint32 {
	out := make([]uint32, l.prepend)
	for i := range out {
		out[i] = l.asn
	}
	return out
}

// SetPrepend makes every path announced to the named neighbour carry n
// extra copies of our AS (0 to 10), re-announcing what it has at once:
// traffic that can come in elsewhere leaves the link gently, before a
// withdrawal takes what is left.
func (s *Speaker) SetPrepend(ctx context.Context, neighbor string, n int) error {
	if n < 0 || n > 10 {
		return fmt.Errorf("prepend %d on %s: want 0 to 10", n, neighbor)
	}
	l, ok := s.links[neighbor]
	if !ok {
		return fmt.Errorf("prepend on %q: %w", neighbor, ErrUnknownNeighbor)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.prepend == n {
		return nil
	}
	l.prepend = n
	if l.srv == nil {
		return nil // Start announces with it
	}
	var errs []error
	for _, p := range slices.SortedFunc(maps.Keys(l.prefixes), func(a, b netip.Prefix) int { return a.Addr().Compare(b.Addr()) }) {
		if err := s.add(ctx, l, p); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("prepend %d on %s: %w", n, neighbor, err)
	}
	return nil
}

func (l *link) nextHop(p netip.Prefix) string {
	if p.Addr().Is4() {
		return l.n.NextHopV4
	}
	return l.n.NextHopV6
}

// server returns l's running server, or ErrNotRunning.
func (l *link) server() (*server.BgpServer, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.srv == nil {
		return nil, ErrNotRunning
	}
	return l.srv, nil
}

// Applied returns, per neighbour name, the prefixes in GoBGP's adj-RIB-out
// for that neighbour (ListPath with TableType_ADJ_OUT), sorted. GoBGP v3
// stores no adj-RIB-out: it computes it from the RIB and the export policy
// on each call (pkg/server/server.go, getAdjRib), so it lists what the
// neighbour is sent whenever the session is up, and is listed while it is
// down too; Sessions says which.
func (s *Speaker) Applied(ctx context.Context) (map[string][]netip.Prefix, error) {
	out := make(map[string][]netip.Prefix, len(s.order))
	for _, l := range s.order {
		ps, err := s.adjOut(ctx, l)
		if err != nil {
			return nil, fmt.Errorf("applied %s: %w", l.n.Name, err)
		}
		out[l.n.Name] = ps
	}
	return out, nil
}

func (s *Speaker) adjOut(ctx context.Context, l *link) ([]netip.Prefix, error) {
	srv, err := l.server()
	if err != nil {
		return nil, err
	}
	var ps []netip.Prefix
	for _, f := range families() {
		var bad error
		err := srv.ListPath(ctx, &api.ListPathRequest{TableType: api.TableType_ADJ_OUT, Name: l.n.Address, Family: f},
			func(d *api.Destination) {
				p, err := parsePrefix(d.GetPrefix())
				if err != nil {
					bad = err
					return
				}
				ps = append(ps, p)
			})
		if err == nil {
			err = bad
		}
		if err != nil {
			return nil, fmt.Errorf("list adj-rib-out %s: %w", f.GetAfi(), err)
		}
	}
	if err := ctx.Err(); err != nil {
		return nil, err // ListPath stops early, without error, on a done ctx
	}
	slices.SortFunc(ps, netip.Prefix.Compare)
	return ps, nil
}

// Sessions returns the state of every neighbour's session, by name, and
// sets the session_up gauge from it.
func (s *Speaker) Sessions(ctx context.Context) (map[string]Session, error) {
	out := make(map[string]Session, len(s.order))
	for _, l := range s.order {
		ss, err := s.session(ctx, l)
		if err != nil {
			return nil, fmt.Errorf("session %s: %w", l.n.Name, err)
		}
		out[l.n.Name] = ss
		// The peer events that also set the gauge come in no fixed order
		// (GoBGP starts a goroutine per event), so an earlier state can
		// land after ESTABLISHED; the state read here is authoritative.
		l.mu.Lock()
		if l.srv != nil {
			up := 0.0
			if ss.Up {
				up = 1
			}
			s.m.sessionUp.WithLabelValues(l.n.Name).Set(up)
		}
		l.mu.Unlock()
	}
	return out, nil
}

func (s *Speaker) session(ctx context.Context, l *link) (Session, error) {
	srv, err := l.server()
	if err != nil {
		return Session{}, err
	}
	var peer *api.Peer
	if err := srv.ListPeer(ctx, &api.ListPeerRequest{Address: l.n.Address}, func(p *api.Peer) { peer = p }); err != nil {
		return Session{}, fmt.Errorf("list peer %s: %w", l.n.Address, err)
	}
	if peer == nil {
		if err := ctx.Err(); err != nil {
			return Session{}, err
		}
		return Session{}, fmt.Errorf("list peer %s: not configured in gobgp", l.n.Address)
	}
	state := peer.GetState().GetSessionState()
	ss := Session{
		State:           stateName(state),
		Up:              state == api.PeerState_ESTABLISHED,
		GracefulRestart: hasGR(peer.GetState().GetLocalCap()) && hasGR(peer.GetState().GetRemoteCap()),
	}
	t := peer.GetTimers().GetState().GetDowntime()
	if ss.Up {
		t = peer.GetTimers().GetState().GetUptime()
	}
	if t != nil {
		ss.Since = t.AsTime()
	}
	for _, a := range peer.GetAfiSafis() {
		ss.Received += int(a.GetState().GetReceived())
	}
	// Not ListPeer's Advertised: with graceful restart it also counts one
	// End-of-RIB marker per family (pkg/server/server.go, getBestFromLocal).
	adv, err := s.adjOut(ctx, l)
	if err != nil {
		return Session{}, err
	}
	ss.Advertised = len(adv)
	return ss, nil
}

func stateName(s api.PeerState_SessionState) string {
	return strings.ToLower(s.String())
}

func hasGR(caps []*anypb.Any) bool {
	for _, c := range caps {
		if c.MessageIs(&api.GracefulRestartCapability{}) {
			return true
		}
	}
	return false
}
