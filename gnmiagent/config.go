package gnmiagent

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"time"
)

// Config is the configuration of an Agent.
type Config struct {
	// Listen is the TCP host:port of the gNMI server; 9339 is the IANA
	// gNMI port.
	Listen string `yaml:"listen"`
	// TLSCert and TLSKey are PEM files; both empty serves plain gRPC
	// (insecure, logged as such), one without the other is an error.
	TLSCert string `yaml:"tls_cert"`
	TLSKey  string `yaml:"tls_key"`
	// SysfsRoot holds one directory per interface, as /sys/class/net.
	SysfsRoot string `yaml:"sysfs_root"`
	// BGPCommand is the argv that prints FRR's `show bgp neighbors json`;
	// empty serves no BGP neighbours.
	BGPCommand []string `yaml:"bgp_command"`
	// MinSampleInterval is the shortest sample interval served: shorter
	// requested intervals are raised to it. A zero requested interval
	// gets DefaultSampleInterval.
	MinSampleInterval time.Duration `yaml:"min_sample_interval"`
}

// DefaultSampleInterval is the interval of a SAMPLE subscription that
// asks for none (sample_interval 0: "the target's lowest").
const DefaultSampleInterval = time.Second

// DefaultConfig returns the defaults: the gNMI port on every address,
// no TLS, the host's interfaces, FRR's vtysh for BGP, 100ms at least
// between samples.
func DefaultConfig() Config {
	return Config{
		Listen:            ":9339",
		SysfsRoot:         "/sys/class/net",
		BGPCommand:        []string{"vtysh", "-c", "show bgp neighbors json"},
		MinSampleInterval: 100 * time.Millisecond,
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
	if (c.TLSCert == "") != (c.TLSKey == "") {
		errs = append(errs, errors.New("tls_cert, tls_key: only one is set; set both for TLS, or neither for plain gRPC"))
	}
	if c.SysfsRoot == "" {
		errs = append(errs, fmt.Errorf("sysfs_root: empty; set %q, or a directory laid out like it", def.SysfsRoot))
	}
	if c.MinSampleInterval < time.Millisecond {
		errs = append(errs, fmt.Errorf("min_sample_interval: %v is below 1ms; set e.g. %v", c.MinSampleInterval, def.MinSampleInterval))
	}
	return errors.Join(errs...)
}
