// Package netns builds throwaway Linux network namespaces for sdnoc's
// tests and lab: namespaces joined by veth pairs with addresses, commands
// and background processes run inside them with `ip netns exec`, and a
// Close that removes all of it.
//
// Every namespace is named Prefix + "<pid>-<random>-<name>", the pid being
// the creating process's, so RemoveStale can tell the leftovers of a
// crashed run (pid gone) from those of a run still going on at the same
// time. It needs root and iproute2's ip(8).
package netns

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// TestPrefix marks the namespaces of sdnoc's tests.
const TestPrefix = "sdnoc-t-"

// LabRange returns where Subnet takes lab addresses from: 198.18.0.0/15,
// set aside for benchmarking (RFC 2544), so it clashes with no real
// network.
func LabRange() netip.Prefix { return netip.PrefixFrom(netip.AddrFrom4([4]byte{198, 18, 0, 0}), 15) }

// maxIfName is the longest interface name Linux takes (IFNAMSIZ-1).
const maxIfName = 15

var (
	prefixRE = regexp.MustCompile(`^[a-z][a-z0-9-]*-$`)
	nameRE   = regexp.MustCompile(`^[a-z0-9][a-z0-9-]*$`)
)

// Lab is a set of namespaces, veths and processes that Close removes.
// Its methods are safe for concurrent use.
type Lab struct {
	prefix string // Prefix + "<pid>-<random>-"
	log    *slog.Logger

	mu     sync.Mutex
	closed bool
	nss    []*Namespace
	procs  []*Proc
	links  []string // veth ends in the root namespace
	nets   []netip.Prefix
}

// New returns an empty Lab whose namespaces are named prefix + pid +
// random + name. prefix is lowercase letters, digits and dashes and ends
// with a dash, e.g. TestPrefix. log may be nil (discard). It creates
// nothing.
func New(prefix string, log *slog.Logger) (*Lab, error) {
	if !prefixRE.MatchString(prefix) || len(prefix) > 24 {
		return nil, fmt.Errorf("prefix %q: use lowercase letters, digits and dashes, ending with a dash, at most 24 characters, e.g. %q", prefix, TestPrefix)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Lab{prefix: fmt.Sprintf("%s%d-%s-", prefix, os.Getpid(), randomHex(2)), log: log}, nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// Namespace is a network namespace of a Lab.
type Namespace struct {
	lab  *Lab
	name string
}

// Name returns the namespace's full name, as `ip netns` knows it.
func (n *Namespace) Name() string { return n.name }

// Namespace creates the namespace prefix+name and brings its loopback
// up. name is lowercase letters, digits and dashes.
func (l *Lab) Namespace(ctx context.Context, name string) (*Namespace, error) {
	if !nameRE.MatchString(name) {
		return nil, fmt.Errorf("namespace name %q: use lowercase letters, digits and dashes", name)
	}
	full := l.prefix + name
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil, errors.New("lab closed")
	}
	l.mu.Unlock()
	if _, err := ip(ctx, "netns", "add", full); err != nil {
		return nil, fmt.Errorf("create namespace %s: %w", full, err)
	}
	n := &Namespace{lab: l, name: full}
	l.mu.Lock()
	l.nss = append(l.nss, n)
	l.mu.Unlock()
	if _, err := ip(ctx, "-n", full, "link", "set", "lo", "up"); err != nil {
		return nil, fmt.Errorf("namespace %s: loopback up: %w", full, err)
	}
	l.log.Debug("namespace created", "netns", full)
	return n, nil
}

// End is one end of a veth pair.
type End struct {
	// NS is the namespace it goes in; nil is the root namespace, where
	// it must be the only thing this Lab adds there.
	NS *Namespace
	// Name is the interface name, at most 15 characters; "" in the root
	// namespace gets a generated unique one.
	Name string
	// Addr, when valid, is added to it, e.g. 198.18.0.1/30.
	Addr netip.Prefix
}

func (e End) ns() string {
	if e.NS == nil {
		return ""
	}
	return e.NS.name
}

// Veth creates a veth pair between a and b, adds their addresses and
// brings both ends up. At least one end is in a namespace of the Lab, so
// that deleting it deletes the pair. It returns the ends as created (with
// the generated name of a root end).
func (l *Lab) Veth(ctx context.Context, a, b End) (End, End, error) {
	if a.NS == nil && b.NS == nil {
		return a, b, errors.New("veth: both ends in the root namespace; put at least one in a lab namespace")
	}
	for _, e := range []*End{&a, &b} {
		if e.NS == nil && e.Name == "" {
			e.Name = "sdnoc" + randomHex(4)
		}
		if !nameRE.MatchString(e.Name) || len(e.Name) > maxIfName {
			return a, b, fmt.Errorf("veth: interface name %q: use at most %d lowercase letters, digits and dashes", e.Name, maxIfName)
		}
		if e.NS != nil && e.NS.lab != l {
			return a, b, fmt.Errorf("veth: namespace %s belongs to another lab", e.NS.name)
		}
	}
	args := []string{"link", "add", a.Name}
	if a.NS != nil {
		args = append(args, "netns", a.ns())
	}
	args = append(args, "type", "veth", "peer", "name", b.Name)
	if b.NS != nil {
		args = append(args, "netns", b.ns())
	}
	if _, err := ip(ctx, args...); err != nil {
		return a, b, fmt.Errorf("veth %s-%s: %w", a.Name, b.Name, err)
	}
	l.mu.Lock()
	for _, e := range []End{a, b} {
		if e.NS == nil {
			l.links = append(l.links, e.Name)
		}
	}
	l.mu.Unlock()
	for _, e := range []End{a, b} {
		if e.Addr.IsValid() {
			if _, err := ipIn(ctx, e.ns(), "addr", "add", e.Addr.String(), "dev", e.Name); err != nil {
				return a, b, fmt.Errorf("veth %s: address %s: %w", e.Name, e.Addr, err)
			}
		}
		if _, err := ipIn(ctx, e.ns(), "link", "set", e.Name, "up"); err != nil {
			return a, b, fmt.Errorf("veth %s: up: %w", e.Name, err)
		}
	}
	l.log.Debug("veth created", "a", a.ns()+"/"+a.Name, "b", b.ns()+"/"+b.Name)
	return a, b, nil
}

// Subnet returns a /30 of LabRange() that neither this Lab has handed out
// nor the root namespace has an address in, picked at random so that
// labs running at the same time rarely pick the same.
func (l *Lab) Subnet(ctx context.Context) (netip.Prefix, error) {
	out, err := ip(ctx, "-o", "addr", "show")
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("list root addresses: %w", err)
	}
	used := rootAddrs(out)
	l.mu.Lock()
	defer l.mu.Unlock()
	for range 1000 {
		p := randomSubnet()
		if slices.ContainsFunc(used, p.Overlaps) || slices.ContainsFunc(l.nets, p.Overlaps) {
			continue
		}
		l.nets = append(l.nets, p)
		return p, nil
	}
	return netip.Prefix{}, fmt.Errorf("no free /30 in %s", LabRange())
}

func randomSubnet() netip.Prefix {
	b := make([]byte, 2)
	rand.Read(b)
	// 2^15 /30s in a /15: the low bit of the third byte and the fourth
	// byte's top six bits come from b.
	n := (uint32(b[0])<<8 | uint32(b[1])) & 0x7fff
	base := LabRange().Addr().As4()
	v := uint32(base[0])<<24 | uint32(base[1])<<16 | n<<2
	return netip.PrefixFrom(netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)}), 30)
}

// rootAddrs parses the prefixes of `ip -o addr show`.
func rootAddrs(out []byte) []netip.Prefix {
	var ps []netip.Prefix
	for line := range strings.Lines(string(out)) {
		f := strings.Fields(line)
		for i := 0; i+1 < len(f); i++ {
			if f[i] == "inet" || f[i] == "inet6" {
				if p, err := netip.ParsePrefix(f[i+1]); err == nil {
					ps = append(ps, p.Masked())
				}
			}
		}
	}
	return ps
}

// Hosts returns the two host addresses of a /30, as /30 prefixes to put
// on the two ends of a veth.
func Hosts(p netip.Prefix) (a, b netip.Prefix) {
	first := p.Masked().Addr().Next()
	return netip.PrefixFrom(first, p.Bits()), netip.PrefixFrom(first.Next(), p.Bits())
}

// Command returns the command that runs name with args inside n.
func (n *Namespace) Command(ctx context.Context, name string, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", n.name, name}, args...)...)
}

// Run runs name with args inside n and returns its standard output; a
// failure's error holds its standard error.
func (n *Namespace) Run(ctx context.Context, name string, args ...string) ([]byte, error) {
	return run(n.Command(ctx, name, args...))
}

// IP runs `ip -n <n> args...`.
func (n *Namespace) IP(ctx context.Context, args ...string) ([]byte, error) {
	return ipIn(ctx, n.name, args...)
}

// Ifindex returns the index of interface ifname in n.
func (n *Namespace) Ifindex(ctx context.Context, ifname string) (uint32, error) {
	v, err := n.ReadUint(ctx, "/sys/class/net/"+ifname+"/ifindex")
	return uint32(v), err
}

// ReadUint reads a file holding one decimal number, as seen from inside
// n: `ip netns exec` mounts n's own /sys, so /sys/class/net lists n's
// interfaces.
func (n *Namespace) ReadUint(ctx context.Context, path string) (uint64, error) {
	out, err := n.Run(ctx, "cat", path)
	if err != nil {
		return 0, err
	}
	v, err := strconv.ParseUint(strings.TrimSpace(string(out)), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("read %s in %s: %w", path, n.name, err)
	}
	return v, nil
}

// Proc is a background process of a Lab.
type Proc struct {
	name string
	cmd  *exec.Cmd
	out  *syncBuffer
	done chan struct{}
	err  error // of Wait; read after done
}

// Start starts name with args in the background inside n; Close stops
// it if Stop has not. Its standard output and error are kept for Output.
// It is killed if this process dies first.
func (n *Namespace) Start(name string, args ...string) (*Proc, error) {
	return n.StartEnv(nil, name, args...)
}

// StartEnv is Start with env added to the process's environment.
func (n *Namespace) StartEnv(env []string, name string, args ...string) (*Proc, error) {
	l := n.lab
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil, errors.New("lab closed")
	}
	// Not CommandContext: the process outlives the call that starts it;
	// Stop and Close end it.
	cmd := exec.Command("ip", append([]string{"netns", "exec", n.name, name}, args...)...)
	if env != nil {
		cmd.Env = append(os.Environ(), env...)
	}
	out := new(syncBuffer)
	cmd.Stdout, cmd.Stderr = out, out
	// A child it leaves behind keeps the output pipe open: stop waiting
	// for the pipe soon after the process itself has exited.
	cmd.WaitDelay = time.Second
	// ip(8) execs the command in place, so the signal reaches it; a
	// crashed test leaves no process behind.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s in %s: %w", name, n.name, err)
	}
	p := &Proc{name: name, cmd: cmd, out: out, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	l.procs = append(l.procs, p)
	l.log.Debug("process started", "netns", n.name, "cmd", name, "pid", cmd.Process.Pid)
	return p, nil
}

// Pid returns the process's id.
func (p *Proc) Pid() int { return p.cmd.Process.Pid }

// Done is closed once the process has exited.
func (p *Proc) Done() <-chan struct{} { return p.done }

// Err returns how the process exited; nil while it runs.
func (p *Proc) Err() error {
	select {
	case <-p.done:
		return p.err
	default:
		return nil
	}
}

// Output returns what the process has written so far.
func (p *Proc) Output() string { return p.out.String() }

// stopGrace is how long Stop waits after SIGTERM before SIGKILL.
const stopGrace = 3 * time.Second

// Stop sends SIGTERM, then SIGKILL if the process is still there after
// a grace period or when ctx ends, and waits for it. It returns nil
// however the process ends: stopping it is what was asked.
func (p *Proc) Stop(ctx context.Context) error {
	select {
	case <-p.done:
		return nil
	default:
	}
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("stop %s: %w", p.name, err)
	}
	t := time.NewTimer(stopGrace)
	defer t.Stop()
	select {
	case <-p.done:
		return nil
	case <-t.C:
	case <-ctx.Done():
	}
	if err := p.cmd.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("kill %s: %w", p.name, err)
	}
	<-p.done // SIGKILL cannot be ignored
	return nil
}

// Close stops the Lab's processes, newest first, deletes its veth ends
// in the root namespace, kills whatever else runs in its namespaces and
// deletes them, which deletes their veths. It tries everything and
// returns every failure. It runs once; later calls return nil.
func (l *Lab) Close(ctx context.Context) error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil
	}
	l.closed = true
	procs, nss, links := l.procs, l.nss, l.links
	l.mu.Unlock()
	// A context already ended (a test's, say) must not leave things
	// behind: cleanup gets its own time.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	var errs []error
	for _, p := range slices.Backward(procs) {
		if err := p.Stop(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	// Root ends first: deleting one deletes its pair at once, while a
	// deleted namespace's veths go a moment later, in the background.
	for _, name := range links {
		if _, err := os.Stat("/sys/class/net/" + name); err == nil {
			if _, err := ip(ctx, "link", "del", name); err != nil {
				errs = append(errs, fmt.Errorf("delete veth %s: %w", name, err))
			}
		}
	}
	for _, n := range slices.Backward(nss) {
		if err := deleteNamespace(ctx, n.name); err != nil {
			errs = append(errs, err)
		}
	}
	l.log.Debug("lab closed", "namespaces", len(nss), "processes", len(procs))
	return errors.Join(errs...)
}

// deleteNamespace kills the processes left in namespace name and
// deletes it. A process left in it would keep the namespace, and its
// veths, alive after its name is gone.
func deleteNamespace(ctx context.Context, name string) error {
	out, err := ip(ctx, "netns", "pids", name)
	if err != nil {
		return fmt.Errorf("list processes of namespace %s: %w", name, err)
	}
	var pids []int
	for _, f := range strings.Fields(string(out)) {
		if pid, err := strconv.Atoi(f); err == nil && pid != os.Getpid() {
			pids = append(pids, pid)
			syscall.Kill(pid, syscall.SIGKILL)
		}
	}
	// Wait for them to go: they are not our children, so poll.
	for deadline := time.Now().Add(5 * time.Second); len(pids) > 0 && time.Now().Before(deadline); {
		pids = slices.DeleteFunc(pids, func(pid int) bool { return syscall.Kill(pid, 0) != nil })
		if len(pids) > 0 {
			time.Sleep(20 * time.Millisecond)
		}
	}
	if _, err := ip(ctx, "netns", "del", name); err != nil {
		return fmt.Errorf("delete namespace %s: %w", name, err)
	}
	return nil
}

// RemoveStale deletes the namespaces named with prefix whose creating
// process is gone (left by a run that crashed), with the processes still
// in them, and returns their names. Namespaces of processes still alive,
// such as a concurrent test run's, and every other namespace are left
// alone.
func RemoveStale(ctx context.Context, prefix string) ([]string, error) {
	out, err := ip(ctx, "netns", "list")
	if err != nil {
		return nil, fmt.Errorf("list namespaces: %w", err)
	}
	var removed []string
	var errs []error
	for _, name := range staleNames(out, prefix, alive) {
		if err := deleteNamespace(ctx, name); err != nil {
			errs = append(errs, err)
			continue
		}
		removed = append(removed, name)
	}
	return removed, errors.Join(errs...)
}

// staleNames returns the namespaces of `ip netns list` named prefix +
// "<pid>-..." whose pid is not alive.
func staleNames(list []byte, prefix string, alive func(pid int) bool) []string {
	var names []string
	for line := range strings.Lines(string(list)) {
		f := strings.Fields(line)
		if len(f) == 0 || !strings.HasPrefix(f[0], prefix) {
			continue
		}
		pidText, _, ok := strings.Cut(strings.TrimPrefix(f[0], prefix), "-")
		pid, err := strconv.Atoi(pidText)
		if !ok || err != nil || pid <= 0 {
			continue // not named by a Lab: not ours to judge
		}
		if !alive(pid) {
			names = append(names, f[0])
		}
	}
	return names
}

// alive reports whether a process with this pid exists.
func alive(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

// Check reports why this machine cannot run a Lab: not root, no ip(8),
// or the kernel refuses a namespace (checked by creating and deleting
// one named prefix+"check-...").
func Check(ctx context.Context, prefix string) error {
	if os.Geteuid() != 0 {
		return errors.New("network namespaces need root")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		return fmt.Errorf("no ip command (iproute2): %w", err)
	}
	name := fmt.Sprintf("%s%d-%s-check", prefix, os.Getpid(), randomHex(2))
	if _, err := ip(ctx, "netns", "add", name); err != nil {
		return fmt.Errorf("create a namespace: %w", err)
	}
	if _, err := ip(ctx, "netns", "del", name); err != nil {
		return fmt.Errorf("delete namespace %s: %w", name, err)
	}
	return nil
}

// Missing returns the commands of names that are not in PATH.
func Missing(names ...string) []string {
	var missing []string
	for _, name := range names {
		if _, err := exec.LookPath(name); err != nil {
			missing = append(missing, name)
		}
	}
	return missing
}

func ip(ctx context.Context, args ...string) ([]byte, error) {
	return run(exec.CommandContext(ctx, "ip", args...))
}

// ipIn runs ip(8) in namespace ns, or in the root one when ns is "".
func ipIn(ctx context.Context, ns string, args ...string) ([]byte, error) {
	if ns != "" {
		args = append([]string{"-n", ns}, args...)
	}
	return ip(ctx, args...)
}

// run runs cmd and returns its standard output; a failure's error holds
// the command line and its standard error.
func run(cmd *exec.Cmd) ([]byte, error) {
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return out, fmt.Errorf("%s: %w: %s", strings.Join(cmd.Args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return out, nil
}

// syncBuffer is a bytes.Buffer safe for a process's writes and a test's
// reads at once.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
