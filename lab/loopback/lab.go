package loopback

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strconv"

	"github.com/sdnoc/sdnoc/collectors/probes"
)

// TargetsPerLink is how many probe targets (relays to the ISP's
// reflector) each link gets, so the lab is probed like a real PoP: several
// targets per ISP, all through the same impairable path. The default
// thresholds assume three.
const TargetsPerLink = 3

// LabISP is one simulated ISP: its BGP router, the STAMP reflector behind
// it and the relays that stand for its data path.
type LabISP struct {
	Name      string
	Router    *ISP
	reflector *probes.Reflector
	relays    []*Relay
	Local     netip.Addr     // the edge's address on this link
	Neighbor  netip.AddrPort // the ISP router's BGP address
}

// SetLoss drops pct % of the probes on every path through this ISP.
func (i *LabISP) SetLoss(pct float64) {
	for _, r := range i.relays {
		r.SetLoss(pct)
	}
}

// SetBlackhole drops everything on every path through this ISP.
func (i *LabISP) SetBlackhole(on bool) {
	for _, r := range i.relays {
		r.SetBlackhole(on)
	}
}

// Targets returns the probe targets of this ISP's link.
func (i *LabISP) Targets() []netip.AddrPort {
	var out []netip.AddrPort
	for _, r := range i.relays {
		out = append(out, netip.MustParseAddrPort(r.Addr().String()))
	}
	return out
}

// Lab is an in-process PoP network: one ISP per link.
type Lab struct {
	ISPs []*LabISP
}

// LinkSpec is what the lab needs to know of a link to stand its ISP up.
type LinkSpec struct {
	Name    string
	PeerASN uint32
}

// StartLab starts one ISP per link on 127.<base>.<i>.x addresses: the
// edge's side of link i is 127.<base>.<i>.1, the ISP's router and relays
// 127.<base>.<i>.2, the reflector 127.<base>.<i>.3. Everything is loopback;
// ports are picked free. Callers running labs side by side pick different
// bases. Stop it with Stop, whatever Start returned.
func StartLab(ctx context.Context, base byte, edgeASN uint32, links []LinkSpec, log *slog.Logger) (*Lab, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	l := &Lab{}
	for i, ls := range links {
		addr := func(host byte) netip.Addr { return netip.AddrFrom4([4]byte{127, base, byte(i + 1), host}) }
		port, err := freePort(addr(2))
		if err != nil {
			l.Stop(ctx)
			return nil, err
		}
		router, err := NewISP(ISPConfig{
			Name: ls.Name, ASN: ls.PeerASN, RouterID: addr(2).String(), Address: addr(2).String(), Port: port,
			EdgeASN: edgeASN, EdgeAddress: addr(1).String(),
		}, log.With("isp", ls.Name))
		if err != nil {
			l.Stop(ctx)
			return nil, fmt.Errorf("isp %s: %w", ls.Name, err)
		}
		x := &LabISP{Name: ls.Name, Router: router, Local: addr(1), Neighbor: netip.AddrPortFrom(addr(2), uint16(port))}
		l.ISPs = append(l.ISPs, x)
		if err := router.Start(ctx); err != nil {
			l.Stop(ctx)
			return nil, fmt.Errorf("isp %s: %w", ls.Name, err)
		}
		refl, err := probes.NewReflector(probes.ReflectorConfig{Listen: netip.AddrPortFrom(addr(3), 0).String()}, probes.ReflectorDeps{Log: log})
		if err != nil {
			l.Stop(ctx)
			return nil, fmt.Errorf("reflector behind %s: %w", ls.Name, err)
		}
		x.reflector = refl
		if err := refl.Start(ctx); err != nil {
			x.reflector = nil
			l.Stop(ctx)
			return nil, fmt.Errorf("reflector behind %s: %w", ls.Name, err)
		}
		for k := range TargetsPerLink {
			r, err := NewRelay(RelayConfig{Listen: netip.AddrPortFrom(addr(2), 0).String(),
				Target: refl.Addr().String(), Seed: int64(i*10 + k + 1)}, log)
			if err != nil {
				l.Stop(ctx)
				return nil, fmt.Errorf("relay of %s: %w", ls.Name, err)
			}
			if err := r.Start(ctx); err != nil {
				l.Stop(ctx)
				return nil, fmt.Errorf("relay of %s: %w", ls.Name, err)
			}
			x.relays = append(x.relays, r)
		}
	}
	return l, nil
}

// Stop stops everything that was started, whatever failed.
func (l *Lab) Stop(ctx context.Context) error {
	var errs []error
	for _, x := range l.ISPs {
		for _, r := range x.relays {
			errs = append(errs, r.Stop(ctx))
		}
		if x.reflector != nil {
			errs = append(errs, x.reflector.Stop(ctx))
		}
		errs = append(errs, x.Router.Stop(ctx))
	}
	return errors.Join(errs...)
}

// freePort finds a TCP port free on addr. Another process could take it
// before the ISP binds it; on loopback addresses of our own that is a
// risk we take.
func freePort(addr netip.Addr) (int, error) {
	ln, err := net.Listen("tcp", net.JoinHostPort(addr.String(), "0"))
	if err != nil {
		return 0, fmt.Errorf("find a free port on %s: %w", addr, err)
	}
	defer ln.Close()
	_, p, _ := net.SplitHostPort(ln.Addr().String())
	return strconv.Atoi(p)
}
