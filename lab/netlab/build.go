package netlab

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/sdnoc/sdnoc/lab/frr"
)

// Options say where the lab keeps its files and which sdnoc binary its
// helpers (reflector, gNMI agent) run.
type Options struct {
	// Dir holds the routers' files, the processes' logs and pid files,
	// and state.json; it must be reachable by the frr user.
	Dir string
	// Sdnoc is the sdnoc binary the lab's helper processes run.
	Sdnoc string
	Log   *slog.Logger
}

// Lab is a built lab.
type Lab struct {
	Plan *Plan
	opts Options
}

// State is what Up records in Dir/state.json for status and down.
type State struct {
	Prefix     string         `json:"prefix"`
	Topology   string         `json:"topology"`
	Namespaces []string       `json:"namespaces"`
	Processes  map[string]int `json:"processes"` // name -> pid
	Started    time.Time      `json:"started"`
}

// Up builds the lab of p: namespaces, links, addresses, routes, the FRR
// routers, the reflector, the edge services, the gNMI agents and the flow
// exporters. A lab left with the same prefix (a crashed run) is removed
// first (its files in Dir are left to be overwritten: Dir may already
// hold the topology and binary for this one). On failure everything
// built so far is removed.
func Up(ctx context.Context, p *Plan, o Options) (*Lab, error) {
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if removed, err := Down(ctx, p.Prefix, ""); err != nil {
		return nil, fmt.Errorf("remove the previous lab: %w", err)
	} else if len(removed) > 0 {
		o.Log.Warn("removed a lab left behind", "namespaces", removed)
	}
	if err := os.MkdirAll(o.Dir, 0o755); err != nil {
		return nil, err
	}
	if err := os.Chmod(o.Dir, 0o755); err != nil {
		return nil, err
	}
	l := &Lab{Plan: p, opts: o}
	st := State{Prefix: p.Prefix, Topology: p.Topology.Source, Namespaces: p.Namespaces(), Processes: map[string]int{}, Started: time.Now()}
	if err := l.build(ctx, &st); err != nil {
		_, derr := Down(context.WithoutCancel(ctx), p.Prefix, "")
		return nil, errors.Join(err, derr)
	}
	b, _ := json.MarshalIndent(st, "", "  ")
	if err := os.WriteFile(filepath.Join(o.Dir, "state.json"), b, 0o644); err != nil {
		return nil, err
	}
	return l, nil
}

// sh runs one command and wraps its output into the error.
func sh(ctx context.Context, name string, args ...string) error {
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return nil
}

// in runs ip(8) with args in namespace ns.
func in(ctx context.Context, ns string, args ...string) error {
	return sh(ctx, "ip", append([]string{"-n", ns}, args...)...)
}

// nsExec runs a command in namespace ns.
func nsExec(ctx context.Context, ns string, argv ...string) error {
	return sh(ctx, "ip", append([]string{"netns", "exec", ns}, argv...)...)
}

// steps runs fns in order until one fails.
func steps(fns ...func() error) error {
	for _, f := range fns {
		if err := f(); err != nil {
			return err
		}
	}
	return nil
}

// veth joins namespace a (interface an) to b (bn); index, when not 0,
// is an's ifindex, which flow records carry.
func veth(ctx context.Context, a, an string, index uint32, b, bn string) error {
	args := []string{"link", "add", an}
	if index != 0 {
		args = append(args, "index", strconv.FormatUint(uint64(index), 10))
	}
	args = append(args, "netns", a, "type", "veth", "peer", "name", bn, "netns", b)
	return steps(
		func() error { return sh(ctx, "ip", args...) },
		func() error { return in(ctx, a, "link", "set", an, "up") },
		func() error { return in(ctx, b, "link", "set", bn, "up") },
	)
}

func addr(ctx context.Context, ns, dev string, a netip.Prefix) error {
	if !a.IsValid() {
		return nil
	}
	if a.Addr().Is6() {
		return in(ctx, ns, "addr", "add", a.String(), "dev", dev, "nodad")
	}
	return in(ctx, ns, "addr", "add", a.String(), "dev", dev)
}

func (l *Lab) build(ctx context.Context, st *State) error {
	p := l.Plan
	for _, ns := range p.Namespaces() {
		if err := steps(
			func() error { return sh(ctx, "ip", "netns", "add", ns) },
			func() error { return in(ctx, ns, "link", "set", "lo", "up") },
			// Paths are asymmetric by design (a border returns traffic
			// through one ISP): no reverse-path filtering.
			func() error {
				// A cut link (ip link set down) must come back with its
				// IPv6 addresses, as a real interface does: Linux drops
				// them on down unless told to keep them.
				return nsExec(ctx, ns, "sysctl", "-qw", "net.ipv4.conf.all.rp_filter=0", "net.ipv4.conf.default.rp_filter=0",
					"net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1",
					"net.ipv6.conf.all.keep_addr_on_down=1", "net.ipv6.conf.default.keep_addr_on_down=1")
			},
		); err != nil {
			return err
		}
	}
	inet, sd := p.NS("internet"), p.NS("sdnoc")
	for _, isp := range p.ISPs {
		ns := p.NS(isp.Name)
		if err := steps(
			func() error { return veth(ctx, ns, "inet", 0, inet, isp.Name) },
			func() error { return addr(ctx, ns, "inet", isp.Addr4) },
			func() error { return addr(ctx, ns, "inet", isp.Addr6) },
			func() error { return addr(ctx, inet, isp.Name, isp.InternetAddr4) },
			func() error { return addr(ctx, inet, isp.Name, isp.InternetAddr6) },
		); err != nil {
			return err
		}
	}
	for _, t := range p.Targets {
		if err := addr(ctx, inet, "lo", netip.PrefixFrom(t, t.BitLen())); err != nil {
			return err
		}
	}
	for _, pop := range p.PoPs {
		if err := l.buildPoP(ctx, pop, sd); err != nil {
			return err
		}
	}
	return l.start(ctx, st)
}

// buildPoP wires a PoP: each link is a bridge in the border joining the
// ISP's port and sdnoc's, with the border's next-hop address on it.
func (l *Lab) buildPoP(ctx context.Context, pop PoP, sd string) error {
	p := l.Plan
	bns := p.NS(pop.Name)
	for _, lk := range pop.Links {
		ins := p.NS(lk.ISP)
		br, sdPort, sdIf := "br-"+lk.Name, "s-"+lk.Name, ifName(pop.Name, lk.Name)
		if err := steps(
			func() error { return veth(ctx, bns, lk.Name, lk.IfIndex, ins, pop.Name) },
			func() error { return veth(ctx, bns, sdPort, 0, sd, sdIf) },
			func() error { return in(ctx, bns, "link", "add", br, "type", "bridge") },
			func() error { return in(ctx, bns, "link", "set", lk.Name, "master", br) },
			func() error { return in(ctx, bns, "link", "set", sdPort, "master", br) },
			func() error { return in(ctx, bns, "link", "set", br, "up") },
			func() error { return addr(ctx, bns, br, lk.Border) },
			func() error { return addr(ctx, bns, br, lk.Border6) },
			func() error { return addr(ctx, ins, pop.Name, lk.Neighbor) },
			func() error { return addr(ctx, ins, pop.Name, lk.ISP6) },
			func() error { return addr(ctx, sd, sdIf, lk.Local) },
			// Probes from the link's address leave through its ISP.
			func() error {
				return in(ctx, sd, "rule", "add", "from", lk.Local.Addr().String(), "table", strconv.Itoa(lk.Table))
			},
			func() error {
				return in(ctx, sd, "route", "add", "default", "via", lk.Neighbor.Addr().String(), "dev", sdIf, "table", strconv.Itoa(lk.Table))
			},
		); err != nil {
			return fmt.Errorf("link %s: %w", lk.ID, err)
		}
	}
	for _, a := range pop.Edge {
		if err := addr(ctx, bns, "lo", netip.PrefixFrom(a, a.BitLen())); err != nil {
			return err
		}
	}
	return steps(
		func() error { return veth(ctx, bns, "mgmt", 0, sd, "m-"+pop.Name) },
		func() error { return addr(ctx, bns, "mgmt", pop.Mgmt) },
		func() error { return addr(ctx, sd, "m-"+pop.Name, pop.MgmtPeer) },
		func() error { return in(ctx, bns, "route", "add", "default", "via", pop.ReturnVia4.String()) },
		func() error {
			if !pop.ReturnVia6.IsValid() {
				return nil
			}
			return in(ctx, bns, "-6", "route", "add", "default", "via", pop.ReturnVia6.String())
		},
	)
}

// ifName is sdnoc's interface on a link: "pop1-isp1", cut to the 15
// bytes Linux allows.
func ifName(pop, link string) string {
	s := pop + "-" + link
	if len(s) > 15 {
		s = s[:15]
	}
	return s
}

// start runs the lab's processes: FRR in the ISPs and the internet, the
// probe reflector in the internet, and in each border the edge service
// and the gNMI agent.
func (l *Lab) start(ctx context.Context, st *State) error {
	p := l.Plan
	routers := []frr.Config{p.Internet}
	routers[0].Namespace = p.NS("internet")
	for _, isp := range p.ISPs {
		c := isp.Router
		c.Namespace = p.NS(isp.Name)
		routers = append(routers, c)
	}
	for i := range routers {
		routers[i].Dir = filepath.Join(l.opts.Dir, "frr", routers[i].Name)
		if _, err := frr.Start(ctx, routers[i]); err != nil {
			return err
		}
	}
	if err := l.keep(st, "reflector", p.NS("internet"), l.opts.Sdnoc, "reflector", "--listen", "0.0.0.0:862"); err != nil {
		return err
	}
	for _, pop := range p.PoPs {
		bns := p.NS(pop.Name)
		if err := l.keep(st, "gnmi-agent-"+pop.Name, bns, l.opts.Sdnoc, "gnmi-agent",
			"--listen", netip.AddrPortFrom(pop.Mgmt.Addr(), 9339).String(), "--bgp-command", ""); err != nil {
			return err
		}
		for _, ap := range pop.Proxies {
			if err := l.startProxy(st, pop, ap); err != nil {
				return err
			}
		}
		for _, a := range pop.Edge {
			if !a.Is4() {
				continue
			}
			if err := l.keep(st, "iperf3-"+pop.Name+"-"+a.String(), bns, "iperf3", "-s", "-B", a.String()); err != nil {
				return err
			}
		}
	}
	if err := l.startExporters(ctx, st); err != nil {
		return err
	}
	for _, pop := range p.PoPs {
		for _, lk := range pop.Links {
			if err := l.SetCapacity(ctx, lk.ID, l.capacity(lk.ID)); err != nil {
				return err
			}
		}
	}
	return l.converge(ctx, routers[0])
}

// converge waits until the internet has a route to every link's subnet
// through its ISP: probes sent before then would find no way back, and
// sdnoc would see every link dark.
func (l *Lab) converge(ctx context.Context, internet frr.Config) error {
	r := frr.Attach(internet)
	var missing []string
	for {
		tab, err := r.Table(ctx)
		if err != nil {
			return err
		}
		missing = missing[:0]
		for _, pop := range l.Plan.PoPs {
			for _, lk := range pop.Links {
				if len(tab[lk.Local.Masked()]) == 0 {
					missing = append(missing, lk.ID)
				}
			}
		}
		if len(missing) == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("the internet has no route back to %s: %w", strings.Join(missing, ", "), ctx.Err())
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// keep starts a process of the lab with daemon and records it in st.
func (l *Lab) keep(st *State, name, ns string, argv ...string) error {
	pid, err := l.daemon(name, ns, argv...)
	if err != nil {
		return err
	}
	st.Processes[name] = pid
	return nil
}

// daemon starts argv in namespace ns, detached from this process (the
// lab outlives `sdnoc lab up`), with its output in Dir/logs/name.log.
func (l *Lab) daemon(name, ns string, argv ...string) (int, error) {
	if err := os.MkdirAll(filepath.Join(l.opts.Dir, "logs"), 0o755); err != nil {
		return 0, err
	}
	f, err := os.Create(filepath.Join(l.opts.Dir, "logs", name+".log"))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	cmd := exec.Command("ip", append([]string{"netns", "exec", ns}, argv...)...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return 0, fmt.Errorf("start %s in %s: %w", name, ns, err)
	}
	pid := cmd.Process.Pid
	// Reap it if it exits while this process lives; it is not waited
	// for otherwise.
	go func() { _ = cmd.Wait() }()
	return pid, nil
}

// Down removes every namespace named with prefix, after ending every
// process in it (SIGTERM, then SIGKILL), and dir. It finds what to remove
// from the system, not from a state file, so it also clears a lab whose
// build or run crashed. It returns the namespaces it removed.
func Down(ctx context.Context, prefix, dir string) ([]string, error) {
	out, err := exec.CommandContext(ctx, "ip", "netns", "list").Output()
	if err != nil {
		return nil, fmt.Errorf("list namespaces: %w", err)
	}
	var names []string
	for line := range strings.Lines(string(out)) {
		if f := strings.Fields(line); len(f) > 0 && strings.HasPrefix(f[0], prefix) {
			names = append(names, f[0])
		}
	}
	var errs []error
	var pids []int
	for _, ns := range names {
		b, _ := exec.CommandContext(ctx, "ip", "netns", "pids", ns).Output()
		for _, s := range strings.Fields(string(b)) {
			if pid, err := strconv.Atoi(s); err == nil {
				pids = append(pids, pid)
			}
		}
	}
	for _, pid := range pids {
		_ = syscall.Kill(pid, syscall.SIGTERM)
	}
	deadline := time.Now().Add(3 * time.Second)
	for _, pid := range pids {
		for syscall.Kill(pid, 0) == nil && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	for _, ns := range names {
		// A process just killed may still hold the namespace for a
		// moment: try again before reporting it.
		var err error
		for try := 0; try < 5; try++ {
			if err = sh(ctx, "ip", "netns", "del", ns); err == nil {
				break
			}
			time.Sleep(200 * time.Millisecond)
		}
		if err != nil {
			errs = append(errs, err)
		}
	}
	if dir != "" {
		if err := os.RemoveAll(dir); err != nil {
			errs = append(errs, err)
		}
	}
	return names, errors.Join(errs...)
}

// startProxy runs one of a PoP's edge proxies in its border namespace,
// with its admin API (what sdnoc drains) on adminAddr and an empty sites
// directory: the lab checks the drain, not the proxying, which the edge
// package's own tests cover.
func (l *Lab) startProxy(st *State, pop PoP, admin netip.AddrPort) error {
	dir := filepath.Join(l.opts.Dir, "edge", pop.Name+"-"+strconv.Itoa(int(admin.Port())))
	for _, d := range []string{"sites", "state"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return err
		}
	}
	return l.keep(st, "edge-"+pop.Name+"-"+strconv.Itoa(int(admin.Port())), l.Plan.NS(pop.Name), l.opts.Sdnoc, "edge", "serve",
		"--sites", filepath.Join(dir, "sites"), "--state", filepath.Join(dir, "state"),
		"--listen", netip.AddrPortFrom(pop.Mgmt.Addr(), admin.Port()+1).String(), "--admin", admin.String(), "--drain-deadline", "5s")
}
