// Package cli changes routers' configuration over SSH, with scrapligo, for
// what sdnoc's own BGP speaker cannot do: where a border router, not
// sdnoc, holds the ISP session, it shuts or enables the neighbour, or
// changes a route-map or prefix-list. Every change captures the running
// configuration before, applies, captures it after and shows the diff,
// checks what the change promised, and on any failure enters the commands
// that undo the diff and checks the router is back where it was. Every
// command and its answer goes to Deps.OnStep, for the journal.
//
// The platform definition for FRR's vtysh (frr_vtysh.yaml) is ours:
// scrapligo ships none for a vtysh login without a Linux shell.
package cli

import (
	"bytes"
	"context"
	_ "embed"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/scrapli/scrapligo/driver/network"
	"github.com/scrapli/scrapligo/driver/opoptions"
	"github.com/scrapli/scrapligo/driver/options"
	"github.com/scrapli/scrapligo/platform"
	"github.com/scrapli/scrapligo/transport"
	"github.com/scrapli/scrapligo/util"
	"go.yaml.in/yaml/v3"
)

//go:embed frr_vtysh.yaml
var frrPlatform []byte

// Router is one router reachable over SSH.
type Router struct {
	Name string `yaml:"name"`
	// Address is host:port of its SSH server; an IP, not a name.
	Address string `yaml:"address"`
	User    string `yaml:"user"`
	// KeyFile is the private key to log in with.
	KeyFile string `yaml:"key_file"`
	// KnownHosts is a known_hosts file holding the router's host key;
	// "" with InsecureHostKey accepts any key (the lab only).
	KnownHosts      string `yaml:"known_hosts"`
	InsecureHostKey bool   `yaml:"insecure_host_key"`
}

// Config is the actuator's configuration.
type Config struct {
	Routers []Router
	// Timeout bounds each command's answer.
	Timeout time.Duration
}

// DefaultConfig has no routers and a 30 s command timeout.
func DefaultConfig() Config { return Config{Timeout: 30 * time.Second} }

// Validate reports every unusable field.
func (c Config) Validate() error {
	var errs []error
	if c.Timeout <= 0 {
		errs = append(errs, fmt.Errorf("timeout: %v is not positive; write e.g. 30s", c.Timeout))
	}
	seen := map[string]bool{}
	for i, r := range c.Routers {
		at := fmt.Sprintf("routers[%d]", i)
		if r.Name == "" || seen[r.Name] {
			errs = append(errs, fmt.Errorf("%s.name: %q is empty or taken; give each router its own name", at, r.Name))
		}
		seen[r.Name] = true
		if _, err := netip.ParseAddrPort(r.Address); err != nil {
			errs = append(errs, fmt.Errorf("%s.address: %q is not IP:port; write e.g. 198.18.250.2:22", at, r.Address))
		}
		if r.User == "" {
			errs = append(errs, fmt.Errorf("%s.user: missing; write the login whose shell is vtysh", at))
		}
		if r.KeyFile == "" {
			errs = append(errs, fmt.Errorf("%s.key_file: missing; write the path of the SSH private key", at))
		}
		if r.KnownHosts == "" && !r.InsecureHostKey {
			errs = append(errs, fmt.Errorf("%s.known_hosts: missing; write a known_hosts file with the router's key (insecure_host_key: true accepts any, for a lab)", at))
		}
	}
	return errors.Join(errs...)
}

// Step is one command sent to a router and what it answered.
type Step struct {
	Time   time.Time `json:"time"`
	Router string    `json:"router"`
	Phase  string    `json:"phase"` // capture, apply, rollback
	Input  string    `json:"input"`
	Output string    `json:"output,omitempty"`
	Failed bool      `json:"failed,omitempty"`
}

// Deps are the actuator's dependencies.
type Deps struct {
	Log *slog.Logger // nil: discard
	// OnStep receives every command as it is answered; nil: none.
	OnStep func(Step)
}

// Actuator changes routers' configuration.
type Actuator struct {
	cfg     Config
	log     *slog.Logger
	onStep  func(Step)
	routers map[string]Router
}

// New checks cfg. It opens no connection.
func New(cfg Config, deps Deps) (*Actuator, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("cli actuator: %w", err)
	}
	if deps.Log == nil {
		deps.Log = slog.New(slog.DiscardHandler)
	}
	if deps.OnStep == nil {
		deps.OnStep = func(Step) {}
	}
	a := &Actuator{cfg: cfg, log: deps.Log, onStep: deps.OnStep, routers: map[string]Router{}}
	for _, r := range cfg.Routers {
		a.routers[r.Name] = r
	}
	return a, nil
}

// Change is a configuration change to one router.
type Change struct {
	Router string
	// Commands are entered in configuration mode, in order.
	Commands []string
	// Expect are lines the running configuration must hold after, and
	// Absent lines it must not: what the change promised.
	Expect, Absent []string
}

// Result is what a change did.
type Result struct {
	Router string `json:"router"`
	// Diff is before against after the change ("" if it changed nothing).
	Diff string `json:"diff"`
	// RolledBack is true when the change failed and was undone; Residual
	// is what still differs from before after the undo ("" when the
	// router is exactly as it was).
	RolledBack bool     `json:"rolled_back,omitempty"`
	Undo       []string `json:"undo,omitempty"`
	Residual   string   `json:"residual,omitempty"`
	Steps      []Step   `json:"steps"`
}

// ErrRolledBack is returned, wrapped, when a change failed and was undone.
var ErrRolledBack = errors.New("change failed and was rolled back")

// session is one SSH session to a router.
type session struct {
	a    *Actuator
	r    Router
	d    *network.Driver
	res  *Result
	stop func() bool
}

func (a *Actuator) open(ctx context.Context, name string, res *Result) (*session, error) {
	r, ok := a.routers[name]
	if !ok {
		return nil, fmt.Errorf("no router %q in the configuration", name)
	}
	ap, _ := netip.ParseAddrPort(r.Address)
	key, err := os.ReadFile(r.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("router %s: key: %w", name, err)
	}
	opts := []util.Option{
		options.WithTransportType(transport.StandardTransport),
		options.WithPort(int(ap.Port())),
		options.WithAuthUsername(r.User),
		options.WithStandardTransportPrivateKeyBytes(key, ""),
		options.WithTimeoutOps(a.cfg.Timeout),
		options.WithTimeoutSocket(a.cfg.Timeout),
	}
	if r.InsecureHostKey {
		opts = append(opts, options.WithAuthNoStrictKey())
	} else {
		opts = append(opts, options.WithSSHKnownHostsFile(r.KnownHosts))
	}
	p, err := platform.NewPlatform(frrPlatform, ap.Addr().String(), opts...)
	if err != nil {
		return nil, fmt.Errorf("router %s: platform: %w", name, err)
	}
	d, err := p.GetNetworkDriver()
	if err != nil {
		return nil, fmt.Errorf("router %s: driver: %w", name, err)
	}
	// scrapligo takes no context: closing the session ends a blocked call.
	opened := make(chan error, 1)
	go func() { opened <- d.Open() }()
	select {
	case err := <-opened:
		if err != nil {
			return nil, fmt.Errorf("router %s: ssh %s@%s: %w", name, r.User, r.Address, err)
		}
	case <-ctx.Done():
		go func() {
			if <-opened == nil {
				_ = d.Close()
			}
		}()
		return nil, fmt.Errorf("router %s: ssh %s: %w", name, r.Address, ctx.Err())
	}
	s := &session{a: a, r: r, d: d, res: res}
	s.stop = context.AfterFunc(ctx, func() { _ = d.Close() })
	return s, nil
}

func (s *session) close() {
	s.stop()
	_ = s.d.Close()
}

func (s *session) step(phase, in, out string, failed bool) {
	st := Step{Time: time.Now(), Router: s.r.Name, Phase: phase, Input: in, Output: out, Failed: failed}
	s.res.Steps = append(s.res.Steps, st)
	s.a.onStep(st)
}

// running captures the running configuration.
func (s *session) running(phase string) ([]*Node, string, error) {
	r, err := s.d.SendCommand("show running-config")
	if err != nil {
		s.step(phase, "show running-config", err.Error(), true)
		return nil, "", fmt.Errorf("router %s: show running-config: %w", s.r.Name, err)
	}
	s.step(phase, "show running-config", strconv.Itoa(strings.Count(r.Result, "\n"))+" lines", r.Failed != nil)
	if r.Failed != nil {
		return nil, "", fmt.Errorf("router %s: show running-config: %w", s.r.Name, r.Failed)
	}
	text, err := CleanCapture(r.Result, "show running-config")
	if err != nil {
		return nil, "", fmt.Errorf("router %s: show running-config: %w", s.r.Name, err)
	}
	ns, err := ParseConfig(text)
	if err != nil {
		return nil, "", fmt.Errorf("router %s: running-config: %w", s.r.Name, err)
	}
	return ns, text, nil
}

// configure enters cmds in configuration mode, stopping at the first
// that fails.
func (s *session) configure(phase string, cmds []string) error {
	if len(cmds) == 0 {
		return nil
	}
	mr, err := s.d.SendConfigs(cmds, opoptions.WithStopOnFailed())
	if err != nil {
		s.step(phase, strings.Join(cmds, "; "), err.Error(), true)
		return fmt.Errorf("router %s: %w", s.r.Name, err)
	}
	var failed error
	for _, r := range mr.Responses {
		s.step(phase, r.Input, strings.TrimSpace(r.Result), r.Failed != nil)
		if r.Failed != nil && failed == nil {
			failed = fmt.Errorf("router %s: %q: %s", s.r.Name, r.Input, strings.TrimSpace(r.Result))
		}
	}
	if failed == nil && len(mr.Responses) < len(cmds) {
		failed = fmt.Errorf("router %s: %d of %d commands answered", s.r.Name, len(mr.Responses), len(cmds))
	}
	// Back to exec, whatever happened, for the next capture.
	if err := s.d.AcquirePriv("exec"); err != nil {
		return errors.Join(failed, fmt.Errorf("router %s: leave configuration mode: %w", s.r.Name, err))
	}
	return failed
}

// Running returns a router's running configuration.
func (a *Actuator) Running(ctx context.Context, router string) (string, error) {
	res := &Result{Router: router}
	s, err := a.open(ctx, router, res)
	if err != nil {
		return "", err
	}
	defer s.close()
	_, text, err := s.running("capture")
	return text, err
}

// Apply makes ch on its router: capture, apply, capture, diff, check;
// on a failed command or a broken promise it undoes the diff and checks
// the router is back (ErrRolledBack). The Result holds every step.
func (a *Actuator) Apply(ctx context.Context, ch Change) (Result, error) {
	res := Result{Router: ch.Router}
	if len(ch.Commands) == 0 {
		return res, errors.New("change: no commands")
	}
	s, err := a.open(ctx, ch.Router, &res)
	if err != nil {
		return res, err
	}
	defer s.close()
	before, _, err := s.running("capture")
	if err != nil {
		return res, err
	}
	cause := s.configure("apply", ch.Commands)
	after, _, err := s.running("capture")
	if err != nil {
		// Without the configuration after, an undo would be a guess.
		return res, errors.Join(cause, err, errors.New("rollback impossible: the configuration after the change could not be read"))
	}
	res.Diff = Diff(before, after)
	if cause == nil {
		var broken []string
		for _, l := range ch.Expect {
			if !Has(after, l) {
				broken = append(broken, "lacks "+strings.TrimSpace(l))
			}
		}
		for _, l := range ch.Absent {
			if Has(after, l) {
				broken = append(broken, "still has "+strings.TrimSpace(l))
			}
		}
		if len(broken) > 0 {
			cause = fmt.Errorf("router %s: after the change the configuration %s", ch.Router, strings.Join(broken, ", "))
		}
	}
	if cause == nil {
		a.log.Info("router configured", "router", ch.Router, "commands", len(ch.Commands), "diff_lines", strings.Count(res.Diff, "\n"))
		return res, nil
	}
	a.log.Warn("router change failed; rolling back", "router", ch.Router, "err", cause)
	res.RolledBack = true
	res.Undo = Undo(before, after)
	uerr := s.configure("rollback", res.Undo)
	final, _, err := s.running("capture")
	if err != nil {
		return res, errors.Join(cause, uerr, err, errors.New("rollback not verified"))
	}
	if res.Residual = Diff(before, final); res.Residual != "" {
		return res, errors.Join(fmt.Errorf("%w: %w", ErrRolledBack, cause), uerr,
			fmt.Errorf("router %s: rollback incomplete, the configuration still differs from before:\n%s", ch.Router, res.Residual))
	}
	return res, fmt.Errorf("%w: %w", ErrRolledBack, cause)
}

// ShutNeighbor is the change that shuts BGP neighbour addr of AS asn.
func ShutNeighbor(router string, asn uint32, addr netip.Addr) Change {
	line := fmt.Sprintf("neighbor %s shutdown", addr)
	return Change{Router: router, Commands: []string{fmt.Sprintf("router bgp %d", asn), line, "exit"}, Expect: []string{line}}
}

// EnableNeighbor is the change that enables BGP neighbour addr again.
func EnableNeighbor(router string, asn uint32, addr netip.Addr) Change {
	line := fmt.Sprintf("neighbor %s shutdown", addr)
	return Change{Router: router, Commands: []string{fmt.Sprintf("router bgp %d", asn), "no " + line, "exit"}, Absent: []string{line}}
}

// fileConfig is the routers file.
type fileConfig struct {
	Timeout string   `yaml:"timeout"`
	Routers []Router `yaml:"routers"`
}

// ParseFile reads a routers file (YAML: timeout, routers with name,
// address, user, key_file, known_hosts or insecure_host_key). Every
// problem is named with the file and the field.
func ParseFile(file string, data []byte) (Config, error) {
	cfg := DefaultConfig()
	var f fileConfig
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil {
		msg := strings.TrimPrefix(err.Error(), "yaml: ")
		if errors.Is(err, io.EOF) {
			msg = "the file is empty"
		}
		return cfg, fmt.Errorf("%s: %s; write routers: with name, address, user, key_file and known_hosts for each", file, msg)
	}
	if f.Timeout != "" {
		d, err := time.ParseDuration(f.Timeout)
		if err != nil {
			return cfg, fmt.Errorf("%s: timeout: %q is not a duration; write e.g. 30s", file, f.Timeout)
		}
		cfg.Timeout = d
	}
	cfg.Routers = f.Routers
	if err := cfg.Validate(); err != nil {
		lines := strings.Split(err.Error(), "\n")
		for i := range lines {
			lines[i] = file + ": " + lines[i]
		}
		return cfg, errors.New(strings.Join(lines, "\n"))
	}
	return cfg, nil
}
