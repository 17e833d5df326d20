package bgp

import (
	"errors"
	"fmt"
	"net/netip"
	"time"
)

// Neighbor is one ISP link: a single eBGP session, run by its own GoBGP server.
type Neighbor struct {
	// Name identifies the link, e.g. "pop1/isp2". Every Speaker method takes it,
	// and it is the "neighbor" label of the metrics.
	Name string `yaml:"name"`
	// Address is the neighbour's IP address.
	Address string `yaml:"address"`
	// Port is the neighbour's TCP port; 0 means 179.
	Port int `yaml:"port"`
	// PeerASN is the ISP's AS number.
	PeerASN uint32 `yaml:"peer_asn"`
	// LocalAddress is our address on the link; the session is sourced from it.
	LocalAddress string `yaml:"local_address"`
	// ListenPort is our listening port on LocalAddress. 0 and -1 mean active
	// only: we dial, and never listen (no port 179 needed, no root).
	ListenPort int32 `yaml:"listen_port"`
	// NextHopV4 is the next hop of IPv4 prefixes; empty means LocalAddress,
	// which must then be IPv4.
	NextHopV4 string `yaml:"next_hop_v4"`
	// ASN and RouterID, when set, replace the Config's for this session:
	// one Speaker can then run the links of several PoPs, each with its
	// PoP's identity, and start all their servers together (see Start).
	ASN      uint32 `yaml:"asn"`
	RouterID string `yaml:"router_id"`
	// NextHopV6 is the next hop of IPv6 prefixes; empty means LocalAddress when
	// it is IPv6, else its IPv4-mapped form ::ffff:a.b.c.d (RFC 4291 §2.5.5.2),
	// which lets IPv6 prefixes ride an IPv4 session.
	NextHopV6 string `yaml:"next_hop_v6"`
}

// Config is the BGP speaker of one PoP: one local AS and router ID, one
// session per ISP link.
type Config struct {
	// RouterID is the BGP identifier, an IPv4 address (RFC 4271 §4.2).
	RouterID string `yaml:"router_id"`
	// ASN is the edge's AS number.
	ASN uint32 `yaml:"asn"`
	// Neighbors are the ISP links, at least one.
	Neighbors []Neighbor `yaml:"neighbors"`
	// HoldTime is proposed in OPEN (RFC 4271 §4.2); 0 means the default.
	HoldTime time.Duration `yaml:"hold_time"`
	// KeepaliveInterval is the time between KEEPALIVEs; 0 means a third of
	// HoldTime.
	KeepaliveInterval time.Duration `yaml:"keepalive_interval"`
	// ConnectRetry is the time between connection attempts; 0 means the default.
	ConnectRetry time.Duration `yaml:"connect_retry"`
	// GracefulRestartTime is the Restart Time we advertise (RFC 4724 §3):
	// how long an ISP keeps our routes after our TCP session dies without a
	// NOTIFICATION. 0 means the default.
	GracefulRestartTime time.Duration `yaml:"graceful_restart_time"`
}

// DefaultConfig returns the defaults: RFC 4271's suggested hold time (and
// so a 30 s keepalive), a 5 s connect retry and a two-minute graceful
// restart window. KeepaliveInterval stays 0, a third of HoldTime, so that
// setting HoldTime alone keeps the two consistent. RouterID, ASN and
// Neighbors have no default.
func DefaultConfig() Config {
	return Config{
		HoldTime:            90 * time.Second,
		ConnectRetry:        5 * time.Second,
		GracefulRestartTime: 120 * time.Second,
	}
}

const (
	defaultPort    = 179
	activeOnly     = -1
	maxRestartTime = 4095 * time.Second // 12-bit field, RFC 4724 §3
	minHoldTime    = 3 * time.Second    // RFC 4271 §4.2
	maxTimer       = 65535 * time.Second
)

// Validate reports every bad field, one per line, each with a fix.
func (c Config) Validate() error {
	var errs []error
	everyRID, everyASN := len(c.Neighbors) > 0, len(c.Neighbors) > 0
	for _, n := range c.Neighbors {
		everyRID = everyRID && n.RouterID != ""
		everyASN = everyASN && n.ASN != 0
	}
	if a, err := netip.ParseAddr(c.RouterID); (err != nil || !a.Is4()) && !(c.RouterID == "" && everyRID) {
		errs = append(errs, fmt.Errorf("router_id: %q is not an IPv4 address; BGP identifiers are 32 bits, write e.g. \"198.18.0.1\"", c.RouterID))
	}
	if c.ASN == 0 && !everyASN {
		errs = append(errs, errors.New("asn: missing; set the edge's AS number, e.g. 65000"))
	}
	c = c.withDefaults()
	d := DefaultConfig()
	errs = append(errs, checkTimer("hold_time", c.HoldTime, minHoldTime, maxTimer, d.HoldTime.String())...)
	errs = append(errs, checkTimer("keepalive_interval", c.KeepaliveInterval, time.Second, maxTimer, "a third of hold_time")...)
	if c.KeepaliveInterval >= c.HoldTime {
		errs = append(errs, fmt.Errorf("keepalive_interval: %v is not below hold_time %v; use a third of it, e.g. %v",
			c.KeepaliveInterval, c.HoldTime, (c.HoldTime/3).Truncate(time.Second)))
	}
	errs = append(errs, checkTimer("connect_retry", c.ConnectRetry, time.Second, maxTimer, d.ConnectRetry.String())...)
	errs = append(errs, checkTimer("graceful_restart_time", c.GracefulRestartTime, time.Second, maxRestartTime, d.GracefulRestartTime.String())...)
	if len(c.Neighbors) == 0 {
		errs = append(errs, errors.New("neighbors: empty; list at least one ISP link"))
	}
	names := make(map[string]int, len(c.Neighbors))
	for i, n := range c.Neighbors {
		if j, dup := names[n.Name]; dup && n.Name != "" {
			errs = append(errs, fmt.Errorf("neighbors[%d].name: %q is also neighbors[%d]; give each link its own name", i, n.Name, j))
		}
		names[n.Name] = i
		errs = append(errs, n.validate(fmt.Sprintf("neighbors[%d]", i))...)
	}
	return errors.Join(errs...)
}

func checkTimer(field string, d, lo, hi time.Duration, def string) []error {
	var errs []error
	if d%time.Second != 0 {
		errs = append(errs, fmt.Errorf("%s: %v is not a whole number of seconds; BGP timers count seconds, write e.g. %v",
			field, d, d.Round(time.Second)))
	}
	if d < lo || d > hi {
		errs = append(errs, fmt.Errorf("%s: %v is outside %v..%v; pick a value in range, or delete the key for the default (%s)",
			field, d, lo, hi, def))
	}
	return errs
}

func (n Neighbor) validate(at string) []error {
	var errs []error
	if n.Name == "" {
		errs = append(errs, fmt.Errorf("%s.name: missing; name the link, e.g. \"pop1/isp2\"", at))
	}
	remote, err := netip.ParseAddr(n.Address)
	if err != nil || remote.Zone() != "" || remote.Is4In6() {
		remote = netip.Addr{}
		errs = append(errs, fmt.Errorf("%s.address: %q is not an IP address; write the ISP's address, e.g. \"198.18.0.2\"", at, n.Address))
	}
	if n.Port < 0 || n.Port > 65535 {
		errs = append(errs, fmt.Errorf("%s.port: %d is not a TCP port; use 1..65535, or 0 for %d", at, n.Port, defaultPort))
	}
	if n.RouterID != "" {
		if a, err := netip.ParseAddr(n.RouterID); err != nil || !a.Is4() {
			errs = append(errs, fmt.Errorf("%s.router_id: %q is not an IPv4 address; write e.g. \"198.18.0.1\", or leave it empty for the speaker's", at, n.RouterID))
		}
	}
	if n.PeerASN == 0 {
		errs = append(errs, fmt.Errorf("%s.peer_asn: missing; set the ISP's AS number", at))
	}
	local, err := netip.ParseAddr(n.LocalAddress)
	if err != nil || local.Zone() != "" || local.Is4In6() {
		errs = append(errs, fmt.Errorf("%s.local_address: %q is not an IP address; write our address on the link, e.g. \"198.18.0.1\"", at, n.LocalAddress))
	} else if remote.IsValid() && remote.Is4() != local.Is4() {
		errs = append(errs, fmt.Errorf("%s.local_address: %s and address %s are not the same IP version; source the session from an address of the neighbour's family", at, local, remote))
	}
	if n.ListenPort < activeOnly || n.ListenPort > 65535 {
		errs = append(errs, fmt.Errorf("%s.listen_port: %d is not a TCP port; use 1..65535, or -1 to only dial out", at, n.ListenPort))
	}
	if n.NextHopV4 != "" {
		if a, err := netip.ParseAddr(n.NextHopV4); err != nil || !a.Is4() {
			errs = append(errs, fmt.Errorf("%s.next_hop_v4: %q is not an IPv4 address; write e.g. \"198.18.0.1\"", at, n.NextHopV4))
		}
	} else if local.IsValid() && !local.Is4() {
		errs = append(errs, fmt.Errorf("%s.next_hop_v4: missing while local_address %s is IPv6; set the IPv4 next hop of the link", at, local))
	}
	if n.NextHopV6 != "" {
		if a, err := netip.ParseAddr(n.NextHopV6); err != nil || !a.Is6() || a.Zone() != "" {
			errs = append(errs, fmt.Errorf("%s.next_hop_v6: %q is not an IPv6 address; write e.g. \"2001:db8::1\" or \"::ffff:198.18.0.1\"", at, n.NextHopV6))
		}
	}
	return errs
}

// withDefaults replaces zero values by their defaults.
func (c Config) withDefaults() Config {
	d := DefaultConfig()
	if c.HoldTime == 0 {
		c.HoldTime = d.HoldTime
	}
	if c.KeepaliveInterval == 0 {
		c.KeepaliveInterval = max(time.Second, (c.HoldTime / 3).Truncate(time.Second))
	}
	if c.ConnectRetry == 0 {
		c.ConnectRetry = d.ConnectRetry
	}
	if c.GracefulRestartTime == 0 {
		c.GracefulRestartTime = d.GracefulRestartTime
	}
	ns := make([]Neighbor, len(c.Neighbors))
	for i, n := range c.Neighbors {
		ns[i] = n.withDefaults()
	}
	c.Neighbors = ns
	return c
}

// withDefaults fills the port, listen port and next hops, and writes the
// addresses in canonical form: GoBGP keys its neighbours by address string.
// It expects a neighbour that passed validate.
func (n Neighbor) withDefaults() Neighbor {
	if n.Port == 0 {
		n.Port = defaultPort
	}
	if n.ListenPort == 0 {
		n.ListenPort = activeOnly
	}
	canon := func(s string) string {
		if a, err := netip.ParseAddr(s); err == nil {
			return a.String()
		}
		return s
	}
	n.Address = canon(n.Address)
	n.LocalAddress = canon(n.LocalAddress)
	local, err := netip.ParseAddr(n.LocalAddress)
	if err != nil {
		return n
	}
	if n.NextHopV4 == "" && local.Is4() {
		n.NextHopV4 = local.String()
	}
	if n.NextHopV6 == "" {
		if local.Is4() {
			n.NextHopV6 = netip.AddrFrom16(local.As16()).String()
		} else {
			n.NextHopV6 = local.String()
		}
	}
	n.NextHopV4 = canon(n.NextHopV4)
	n.NextHopV6 = canon(n.NextHopV6)
	return n
}
