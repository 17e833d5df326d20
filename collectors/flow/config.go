package flow

import (
	"errors"
	"fmt"
	"maps"
	"net"
	"net/netip"
	"runtime"
	"slices"
	"strconv"
	"time"
)

// Config is the configuration of a Collector.
type Config struct {
	// Listen is the UDP host:port that every socket binds, e.g. ":2055".
	Listen string `yaml:"listen"`
	// Sockets is how many sockets bind Listen with SO_REUSEPORT, each
	// with its worker; the kernel spreads exporters over them.
	Sockets int `yaml:"sockets"`
	// Window is the period that rates are averaged over; whole seconds,
	// 1s or more.
	Window time.Duration `yaml:"window"`
	// Exporters are the routers whose records are attributed to links.
	Exporters []ExporterConfig `yaml:"exporters"`
	// Prefixes are the edge's prefixes; a record counts toward the
	// longest one containing its destination.
	Prefixes []netip.Prefix `yaml:"prefixes"`
	// TemplateTTL is how long a NetFlow v9 or IPFIX template stays valid
	// after its exporter last sent it.
	TemplateTTL time.Duration `yaml:"template_ttl"`
	// MaxExporters bounds how many exporters, configured or not, the
	// decoder keeps templates for; datagrams from more are dropped.
	MaxExporters int `yaml:"max_exporters"`
}

// ExporterConfig is one router that exports flows.
type ExporterConfig struct {
	// Address is the source address of its datagrams.
	Address netip.Addr `yaml:"address"`
	// SamplingRate overrides the 1-in-N rate its datagrams announce; 0:
	// use theirs.
	SamplingRate uint32 `yaml:"sampling_rate"`
	// Interfaces maps an input ifIndex to the ID of the ISP link it
	// faces, e.g. "pop1/isp2".
	Interfaces map[uint32]string `yaml:"interfaces"`
}

// DefaultConfig returns the defaults: port 2055 on every address, one
// socket per CPU, a 10s window, templates kept 30 minutes, at most
// 10,000 exporters, no exporter and no prefix.
func DefaultConfig() Config {
	return Config{
		Listen:       ":2055",
		Sockets:      runtime.NumCPU(),
		Window:       10 * time.Second,
		TemplateTTL:  30 * time.Minute,
		MaxExporters: 10_000,
	}
}

// Validate reports every bad field, each with a fix.
func (c Config) Validate() error {
	var errs []error
	def := DefaultConfig()
	_, port, err := net.SplitHostPort(c.Listen)
	if err == nil {
		_, err = strconv.ParseUint(port, 10, 16)
	}
	if err != nil {
		errs = append(errs, fmt.Errorf("listen: %q is not host:port; write e.g. %q", c.Listen, def.Listen))
	}
	if c.Sockets < 1 {
		errs = append(errs, fmt.Errorf("sockets: %d is below 1; set 1 or more, or delete the key for one per CPU", c.Sockets))
	}
	if c.Window < time.Second || c.Window%time.Second != 0 {
		errs = append(errs, fmt.Errorf("window: %v is not a whole number of seconds of 1s or more; set e.g. %v", c.Window, def.Window))
	}
	if c.TemplateTTL <= 0 {
		errs = append(errs, fmt.Errorf("template_ttl: %v is not positive; set e.g. %v", c.TemplateTTL, def.TemplateTTL))
	}
	if c.MaxExporters < 1 {
		errs = append(errs, fmt.Errorf("max_exporters: %d is below 1; set e.g. %d", c.MaxExporters, def.MaxExporters))
	}
	seen := make(map[netip.Addr]int)
	for i, e := range c.Exporters {
		at := fmt.Sprintf("exporters[%d]", i)
		if !e.Address.IsValid() {
			errs = append(errs, fmt.Errorf("%s.address: missing; write the router's source address, e.g. \"192.0.2.1\"", at))
		} else if j, dup := seen[e.Address.Unmap()]; dup {
			errs = append(errs, fmt.Errorf("%s.address: %s is also exporters[%d].address; list each exporter once", at, e.Address, j))
		}
		seen[e.Address.Unmap()] = i
		for _, ifx := range slices.Sorted(maps.Keys(e.Interfaces)) {
			if e.Interfaces[ifx] == "" {
				errs = append(errs, fmt.Errorf("%s.interfaces[%d]: empty link ID; write the link, e.g. \"pop1/isp2\"", at, ifx))
			}
		}
	}
	prefixes := make(map[netip.Prefix]int)
	for i, p := range c.Prefixes {
		switch {
		case !p.IsValid():
			errs = append(errs, fmt.Errorf("prefixes[%d]: invalid; write e.g. \"198.51.100.0/24\"", i))
		case p != p.Masked():
			errs = append(errs, fmt.Errorf("prefixes[%d]: %s has host bits set; write %s", i, p, p.Masked()))
		case p.Addr().Is4In6():
			errs = append(errs, fmt.Errorf("prefixes[%d]: %s is IPv4-mapped; write it as IPv4", i, p))
		default:
			if j, dup := prefixes[p]; dup {
				errs = append(errs, fmt.Errorf("prefixes[%d]: %s is also prefixes[%d]; list each prefix once", i, p, j))
			}
			prefixes[p] = i
		}
	}
	return errors.Join(errs...)
}
