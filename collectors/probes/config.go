package probes

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"time"
)

// maxOutstanding caps Timeout/Interval, the number of probes per target
// that may wait for a reply at once, which sizes each target's memory.
const maxOutstanding = 1000

// Config is the configuration of a Collector.
type Config struct {
	Interval time.Duration `yaml:"interval"` // between two probes to one target; >= 1ms
	Timeout  time.Duration `yaml:"timeout"`  // a probe without reply after this is lost
	Window   time.Duration `yaml:"window"`   // sample period; >= Interval
	Links    []LinkConfig  `yaml:"links"`    // one or more
}

// LinkConfig is one ISP link to probe through.
type LinkConfig struct {
	// ID names the link, e.g. "pop1/isp2"; it is the link metric label
	// and Sample.Link.
	ID string `yaml:"id"`
	// Local is the IP address that the link's socket binds to, so that
	// its probes leave through this ISP; "" leaves the choice to the
	// routing table.
	Local string `yaml:"local"`
	// Targets are reflectors as IP:port, one or more. Names are not
	// accepted: a DNS outage must not blind the probes.
	Targets []string `yaml:"targets"`
}

// DefaultConfig returns the defaults: a probe every 100ms per target,
// lost after 500ms, one sample per link every 500ms, no links.
func DefaultConfig() Config {
	return Config{Interval: 100 * time.Millisecond, Timeout: 500 * time.Millisecond, Window: 500 * time.Millisecond}
}

// Validate reports every bad field, each with a fix.
func (c Config) Validate() error {
	var errs []error
	def := DefaultConfig()
	if c.Interval < time.Millisecond {
		errs = append(errs, fmt.Errorf("interval: %v is below 1ms; set e.g. %v", c.Interval, def.Interval))
	}
	if c.Timeout <= 0 {
		errs = append(errs, fmt.Errorf("timeout: %v is not positive; set e.g. %v", c.Timeout, def.Timeout))
	} else if c.Interval > 0 && c.Timeout/c.Interval > maxOutstanding {
		errs = append(errs, fmt.Errorf("timeout: %v is more than %d intervals of %v; shorten it or lengthen the interval",
			c.Timeout, maxOutstanding, c.Interval))
	}
	if c.Window < c.Interval {
		errs = append(errs, fmt.Errorf("window: %v is shorter than the interval (%v), so a window could hold no probe; set %v or more",
			c.Window, c.Interval, max(c.Interval, def.Window)))
	}
	if len(c.Links) == 0 {
		errs = append(errs, errors.New("links: none configured; add one with an id and targets"))
	}
	ids := make(map[string]int)
	for i, l := range c.Links {
		errs = append(errs, l.validate(fmt.Sprintf("links[%d]", i)))
		if j, dup := ids[l.ID]; dup && l.ID != "" {
			errs = append(errs, fmt.Errorf("links[%d].id: %q is also links[%d].id; give each link its own id", i, l.ID, j))
		}
		ids[l.ID] = i
	}
	return errors.Join(errs...)
}

func (l LinkConfig) validate(at string) error {
	var errs []error
	if l.ID == "" {
		errs = append(errs, fmt.Errorf("%s.id: empty; name the link, e.g. \"pop1/isp2\"", at))
	}
	if l.Local != "" {
		if _, err := netip.ParseAddr(l.Local); err != nil {
			errs = append(errs, fmt.Errorf("%s.local: %q is not an IP address; write the link's own address, or \"\" for any", at, l.Local))
		}
	}
	if len(l.Targets) == 0 {
		errs = append(errs, fmt.Errorf("%s.targets: none; add a reflector as IP:port, e.g. \"203.0.113.10:%d\"", at, Port))
	}
	seen := make(map[netip.AddrPort]int)
	for i, t := range l.Targets {
		ap, err := parseTarget(t)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s.targets[%d]: %w", at, i, err))
			continue
		}
		if j, dup := seen[ap]; dup {
			errs = append(errs, fmt.Errorf("%s.targets[%d]: %q is also targets[%d]; list each reflector once", at, i, t, j))
		}
		seen[ap] = i
	}
	return errors.Join(errs...)
}

// parseTarget reads an IP:port target, unmapping IPv4-mapped addresses
// so that they match the source addresses of replies.
func parseTarget(s string) (netip.AddrPort, error) {
	ap, err := netip.ParseAddrPort(s)
	if err != nil || ap.Port() == 0 {
		return netip.AddrPort{}, fmt.Errorf("%q is not IP:port; write e.g. \"203.0.113.10:%d\" or \"[2001:db8::10]:%d\"", s, Port, Port)
	}
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()), nil
}

// ReflectorConfig is the configuration of a Reflector.
type ReflectorConfig struct {
	// Listen is the UDP host:port to reflect on. The default, ":862",
	// takes every address, IPv4 and IPv6; a port below 1024 needs
	// CAP_NET_BIND_SERVICE.
	Listen string `yaml:"listen"`
}

// DefaultReflectorConfig returns the defaults: the STAMP port on every
// address.
func DefaultReflectorConfig() ReflectorConfig {
	return ReflectorConfig{Listen: ":" + strconv.Itoa(Port)}
}

// Validate reports every bad field, each with a fix.
func (c ReflectorConfig) Validate() error {
	_, port, err := net.SplitHostPort(c.Listen)
	if err == nil {
		_, err = strconv.ParseUint(port, 10, 16)
	}
	if err != nil {
		return fmt.Errorf("listen: %q is not host:port; write e.g. %q", c.Listen, DefaultReflectorConfig().Listen)
	}
	return nil
}
