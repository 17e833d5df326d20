package telemetry

import (
	"errors"
	"fmt"
	"maps"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Config is the configuration of a Collector.
type Config struct {
	// Interval is the sample interval asked of the routers, and the
	// period of the Samples; >= 10ms.
	Interval time.Duration  `yaml:"interval"`
	Routers  []RouterConfig `yaml:"routers"` // one or more
}

// RouterConfig is one router to subscribe to.
type RouterConfig struct {
	Name    string `yaml:"name"`    // the router metric label; unique
	Address string `yaml:"address"` // gNMI host:port
	// Insecure speaks plain gRPC; otherwise TLS, verifying the router's
	// certificate against the system roots unless SkipVerify.
	Insecure   bool `yaml:"insecure"`
	SkipVerify bool `yaml:"skip_verify"`
	// Username and Password are sent as gRPC metadata when set, as gNMI
	// servers expect (and as gnmic sends them).
	Username string `yaml:"username"`
	Password string `yaml:"password"`
	// Links maps link IDs ("pop/link", as the probes name them) to the
	// router's view of them; one or more.
	Links map[string]LinkMap `yaml:"links"`
}

// LinkMap is where a link shows on its router.
type LinkMap struct {
	Interface string `yaml:"interface"` // the router's interface towards the ISP
	Capacity  uint64 `yaml:"capacity"`  // bit/s, > 0: the denominator of Utilisation
	// Neighbor is the ISP's BGP address; the zero Addr leaves
	// Sample.BGPState empty.
	Neighbor netip.Addr `yaml:"neighbor"`
}

// DefaultConfig returns the defaults: one sample a second, no routers.
func DefaultConfig() Config {
	return Config{Interval: time.Second}
}

// Validate reports every bad field, each with a fix.
func (c Config) Validate() error {
	var errs []error
	if c.Interval < 10*time.Millisecond {
		errs = append(errs, fmt.Errorf("interval: %v is below 10ms; set e.g. %v", c.Interval, DefaultConfig().Interval))
	}
	if len(c.Routers) == 0 {
		errs = append(errs, errors.New("routers: none configured; add one with a name, an address and links"))
	}
	names := make(map[string]int)
	links := make(map[string]string)
	for i, r := range c.Routers {
		at := fmt.Sprintf("routers[%d]", i)
		if r.Name == "" {
			errs = append(errs, fmt.Errorf("%s.name: empty; name the router, e.g. \"pop1-edge1\"", at))
		} else if j, dup := names[r.Name]; dup {
			errs = append(errs, fmt.Errorf("%s.name: %q is also routers[%d].name; give each router its own name", at, r.Name, j))
		}
		names[r.Name] = i
		_, port, err := net.SplitHostPort(r.Address)
		if err == nil {
			_, err = strconv.ParseUint(port, 10, 16)
		}
		if err != nil || port == "0" {
			errs = append(errs, fmt.Errorf("%s.address: %q is not host:port; write e.g. \"192.0.2.1:9339\"", at, r.Address))
		}
		if r.Insecure && r.SkipVerify {
			errs = append(errs, fmt.Errorf("%s: insecure and skip_verify both set; skip_verify is for TLS, drop one", at))
		}
		if len(r.Links) == 0 {
			errs = append(errs, fmt.Errorf("%s.links: none; map a link ID to the router's interface, e.g. pop1/isp1: {interface: eth1, capacity: 10000000000}", at))
		}
		for _, id := range slices.Sorted(maps.Keys(r.Links)) {
			l := r.Links[id]
			lat := fmt.Sprintf("%s.links[%s]", at, id)
			if pop, name, ok := strings.Cut(id, "/"); !ok || pop == "" || name == "" {
				errs = append(errs, fmt.Errorf("%s: the link ID is not \"pop/link\"; name it as the probes do, e.g. \"pop1/isp2\"", lat))
			}
			if other, dup := links[id]; dup {
				errs = append(errs, fmt.Errorf("%s: also on router %q; a link is on one router", lat, other))
			}
			links[id] = r.Name
			// Brackets would end the path key; '/' is fine inside one
			// ("interface[name=et-0/0/1]").
			if l.Interface == "" || strings.ContainsAny(l.Interface, "[]") {
				errs = append(errs, fmt.Errorf("%s.interface: %q is not an interface name; write the router's name for it, e.g. \"eth1\"", lat, l.Interface))
			}
			if l.Capacity == 0 {
				errs = append(errs, fmt.Errorf("%s.capacity: zero; set the link's capacity in bit/s, e.g. 10000000000 for 10 Gbit/s", lat))
			}
		}
	}
	return errors.Join(errs...)
}
