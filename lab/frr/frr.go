// Package frr runs FRR routers (zebra and bgpd) for the lab: several at
// once, each in its own network namespace, without systemd, with its own
// configuration, pid files, vty sockets and logs under one directory; and
// reads their BGP tables with vtysh, which is how the lab's tests see what
// an ISP really holds.
package frr

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Binaries are where Debian's frr package installs the daemons.
const (
	zebraBin = "/usr/lib/frr/zebra"
	bgpdBin  = "/usr/lib/frr/bgpd"
)

// Config is one router.
type Config struct {
	// Name is the router's hostname; it also names its log lines.
	Name string
	// Dir holds the router's files; created if missing. Each router
	// needs its own.
	Dir string
	// Namespace is the network namespace the daemons run in; "" runs
	// them in the caller's.
	Namespace string
	ASN       uint32
	RouterID  netip.Addr
	Neighbors []Neighbor
	// Networks are originated as they are, whether or not a route to
	// them exists (no bgp network import-check).
	Networks []netip.Prefix
	// HoldTime and Keepalive for every session; zero: 9s and 3s, so that
	// the lab's sessions come up and fail over quickly.
	HoldTime, Keepalive time.Duration
}

// Neighbor is one BGP session of a router. Every session carries IPv4
// and IPv6 unicast (MP-BGP), as sdnoc's speaker announces both over one.
type Neighbor struct {
	Address netip.Addr
	ASN     uint32
	// Description shows in vtysh output; free text without newlines.
	Description string
	// LocalPref, when set, is given to every route learnt from the
	// neighbour: the lab's internet prefers its ISPs in a known order.
	LocalPref uint32
}

// Validate reports every bad field.
func (c Config) Validate() error {
	var errs []error
	if c.Name == "" || strings.ContainsAny(c.Name, " \n/") {
		errs = append(errs, fmt.Errorf("name: %q is not a hostname; use e.g. \"isp1\"", c.Name))
	}
	if c.Dir == "" {
		errs = append(errs, errors.New("dir: empty; give each router a directory of its own"))
	}
	if c.ASN == 0 {
		errs = append(errs, errors.New("asn: missing"))
	}
	if !c.RouterID.Is4() {
		errs = append(errs, fmt.Errorf("router_id: %v is not IPv4", c.RouterID))
	}
	for i, n := range c.Neighbors {
		if !n.Address.IsValid() || n.ASN == 0 {
			errs = append(errs, fmt.Errorf("neighbors[%d]: address %v, asn %d: both are required", i, n.Address, n.ASN))
		}
		if strings.ContainsRune(n.Description, '\n') {
			errs = append(errs, fmt.Errorf("neighbors[%d].description: no newlines", i))
		}
	}
	return errors.Join(errs...)
}

// BGPConfig returns bgpd's configuration file.
func (c Config) BGPConfig() string {
	hold, keep := c.HoldTime, c.Keepalive
	if hold == 0 {
		hold, keep = 9*time.Second, 3*time.Second
	}
	var b strings.Builder
	fmt.Fprintf(&b, "frr defaults traditional\nhostname %s\nlog file %s\n!\n", c.Name, filepath.Join(c.Dir, "bgpd.log"))
	var maps strings.Builder
	for i, n := range c.Neighbors {
		if n.LocalPref != 0 {
			fmt.Fprintf(&maps, "route-map lp%d permit 10\n set local-preference %d\n!\n", i, n.LocalPref)
		}
	}
	b.WriteString(maps.String())
	fmt.Fprintf(&b, "router bgp %d\n bgp router-id %s\n", c.ASN, c.RouterID)
	// FRR 8.4 refuses every eBGP route without a policy unless told
	// otherwise; traditional defaults would also activate IPv4 on IPv6
	// sessions. The lab wants plain eBGP that carries what it is sent.
	b.WriteString(" no bgp ebgp-requires-policy\n no bgp network import-check\n no bgp default ipv4-unicast\n")
	b.WriteString(" bgp graceful-restart\n")
	fmt.Fprintf(&b, " timers bgp %d %d\n", int(keep.Seconds()), int(hold.Seconds()))
	for _, n := range c.Neighbors {
		fmt.Fprintf(&b, " neighbor %s remote-as %d\n neighbor %s timers connect 1\n", n.Address, n.ASN, n.Address)
		if n.Description != "" {
			fmt.Fprintf(&b, " neighbor %s description %s\n", n.Address, n.Description)
		}
	}
	for _, af := range []struct {
		name string
		v4   bool
	}{{"ipv4", true}, {"ipv6", false}} {
		fmt.Fprintf(&b, " address-family %s unicast\n", af.name)
		for _, p := range c.Networks {
			if p.Addr().Is4() == af.v4 {
				fmt.Fprintf(&b, "  network %s\n", p)
			}
		}
		for i, n := range c.Neighbors {
			fmt.Fprintf(&b, "  neighbor %s activate\n", n.Address)
			if n.LocalPref != 0 {
				fmt.Fprintf(&b, "  neighbor %s route-map lp%d in\n", n.Address, i)
			}
		}
		b.WriteString(" exit-address-family\n")
	}
	b.WriteString("!\n")
	return b.String()
}

// Router is a running router.
type Router struct {
	cfg Config
}

// Start writes the router's files and starts zebra, then bgpd, in its
// namespace; it returns once vtysh answers. A router whose pid files
// show it running already is refused: stop it first.
func Start(ctx context.Context, cfg Config) (*Router, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("frr %s: %w", cfg.Name, err)
	}
	r := &Router{cfg: cfg}
	for _, d := range []string{"zebra", "bgpd"} {
		if pid, ok := r.pid(d); ok && alive(pid) {
			return nil, fmt.Errorf("frr %s: %s already runs as pid %d", cfg.Name, d, pid)
		}
	}
	if err := r.write(); err != nil {
		return nil, fmt.Errorf("frr %s: %w", cfg.Name, err)
	}
	for _, d := range []struct{ bin, name, conf string }{
		{zebraBin, "zebra", "zebra.conf"}, {bgpdBin, "bgpd", "bgpd.conf"},
	} {
		args := []string{"-d", "-f", filepath.Join(cfg.Dir, d.conf), "-i", r.pidFile(d.name),
			"-z", filepath.Join(r.run(), "zserv.api"), "--vty_socket", r.run(), "-A", "127.0.0.1", "-P", "0",
			"--log", "file:" + filepath.Join(cfg.Dir, d.name+".log")}
		out, err := r.command(ctx, d.bin, args...).CombinedOutput()
		if err != nil {
			_ = r.Stop(context.WithoutCancel(ctx))
			return nil, fmt.Errorf("frr %s: start %s: %w: %s", cfg.Name, d.name, err, bytes.TrimSpace(out))
		}
	}
	for {
		if _, err := r.VTY(ctx, "show bgp summary"); err == nil {
			return r, nil
		}
		select {
		case <-ctx.Done():
			_ = r.Stop(context.WithoutCancel(ctx))
			return nil, fmt.Errorf("frr %s: vtysh does not answer: %w", cfg.Name, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Attach returns the router of cfg as Start left it, for a process that
// did not start it (sdnoc lab status, down).
func Attach(cfg Config) *Router { return &Router{cfg: cfg} }

func (r *Router) run() string             { return filepath.Join(r.cfg.Dir, "run") }
func (r *Router) pidFile(d string) string { return filepath.Join(r.run(), d+".pid") }

// command runs bin in the router's namespace.
func (r *Router) command(ctx context.Context, bin string, args ...string) *exec.Cmd {
	if r.cfg.Namespace == "" {
		return exec.CommandContext(ctx, bin, args...)
	}
	return exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", r.cfg.Namespace, bin}, args...)...)
}

// write lays out the router's directory, owned by the frr user the
// daemons drop to.
func (r *Router) write() error {
	if err := os.MkdirAll(r.run(), 0o755); err != nil {
		return err
	}
	files := map[string]string{
		"zebra.conf": fmt.Sprintf("hostname %s\nlog file %s\n", r.cfg.Name, filepath.Join(r.cfg.Dir, "zebra.log")),
		"bgpd.conf":  r.cfg.BGPConfig(),
		"vtysh.conf": "",
	}
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(r.cfg.Dir, name), []byte(body), 0o640); err != nil {
			return err
		}
	}
	u, err := user.Lookup("frr")
	if err != nil {
		return fmt.Errorf("the frr user (is frr installed? lab/install.sh installs it): %w", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	// The daemons drop to the frr user, which must reach the directory.
	abs, err := filepath.Abs(r.cfg.Dir)
	if err != nil {
		return err
	}
	for d := filepath.Dir(abs); ; d = filepath.Dir(d) {
		if fi, err := os.Stat(d); err == nil && fi.Mode().Perm()&0o001 == 0 {
			return fmt.Errorf("%s is not searchable by others, so FRR's daemons (user frr) cannot reach %s: chmod o+x it, or put the router elsewhere", d, r.cfg.Dir)
		}
		if d == filepath.Dir(d) {
			break
		}
	}
	return filepath.Walk(r.cfg.Dir, func(p string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, uid, gid)
	})
}

// pid reads a daemon's pid file.
func (r *Router) pid(daemon string) (int, bool) {
	b, err := os.ReadFile(r.pidFile(daemon))
	if err != nil {
		return 0, false
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	return pid, err == nil && pid > 0
}

func alive(pid int) bool { return syscall.Kill(pid, 0) == nil }

// Running reports whether both daemons run.
func (r *Router) Running() bool {
	for _, d := range []string{"zebra", "bgpd"} {
		if pid, ok := r.pid(d); !ok || !alive(pid) {
			return false
		}
	}
	return true
}

// Stop ends bgpd and zebra (SIGTERM, then SIGKILL after 3 s) by the pids
// they recorded, and waits until they are gone or ctx ends. Stopping a
// router that does not run is not an error.
func (r *Router) Stop(ctx context.Context) error {
	var errs []error
	for _, d := range []string{"bgpd", "zebra"} {
		pid, ok := r.pid(d)
		if !ok || !alive(pid) {
			continue
		}
		if err := terminate(ctx, pid); err != nil {
			errs = append(errs, fmt.Errorf("frr %s: stop %s (pid %d): %w", r.cfg.Name, d, pid, err))
		}
	}
	return errors.Join(errs...)
}

// Kill ends the daemons at once with SIGKILL, as a crash would: a
// graceful restart helper on the other side keeps the routes.
func (r *Router) Kill() {
	for _, d := range []string{"bgpd", "zebra"} {
		if pid, ok := r.pid(d); ok && alive(pid) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
}

func terminate(ctx context.Context, pid int) error {
	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil {
		return err
	}
	deadline := time.Now().Add(3 * time.Second)
	for alive(pid) {
		if time.Now().After(deadline) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
			deadline = time.Now().Add(time.Hour)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
	return nil
}

// VTY runs vtysh commands against the router, in one vtysh run, and
// returns their output.
func (r *Router) VTY(ctx context.Context, commands ...string) ([]byte, error) {
	args := []string{"--vty_socket", r.run()}
	for _, c := range commands {
		args = append(args, "-c", c)
	}
	cmd := exec.CommandContext(ctx, "vtysh", args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("frr %s: vtysh -c %q: %w: %s", r.cfg.Name, strings.Join(commands, `" -c "`), err, bytes.TrimSpace(stderr.Bytes()))
	}
	return out, nil
}
