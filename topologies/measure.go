package topologies

import (
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// Router is a PoP's border router as the load collectors see it: a gNMI
// target for interface counters and oper-status, and a flow exporter.
// Either may be absent. Links name the router they land on.
type Router struct {
	// Name is unique among the topology's routers, a-z, 0-9 and '-'.
	Name string
	// GNMI is the router's gNMI target, host:port; "" for none.
	GNMI string
	// GNMITLS is how the gNMI connection is secured: "verify" (TLS
	// checked against the system roots, the default), "skip_verify" (TLS,
	// certificate not checked) or "insecure" (plain gRPC, for labs).
	GNMITLS string
	// GNMIUsername and GNMIPassword are sent as gRPC metadata when set.
	GNMIUsername, GNMIPassword string
	// FlowExporter is the source address of the router's flow datagrams
	// (sFlow, NetFlow, IPFIX); the zero Addr for none.
	FlowExporter netip.Addr
	// FlowSamplingRate overrides the 1-in-N sampling rate the router's
	// datagrams announce; 0 uses theirs.
	FlowSamplingRate uint32
}

// gNMI TLS modes.
const (
	TLSVerify     = "verify"
	TLSSkipVerify = "skip_verify"
	TLSInsecure   = "insecure"
)

// Flow is how the flow collector listens and averages.
type Flow struct {
	// Listen is the UDP host:port the collector binds.
	Listen string
	// Window is the period rates are averaged over: whole seconds, >= 1s.
	Window time.Duration
	// TemplateTTL is how long a NetFlow v9 or IPFIX template stays valid
	// after its exporter last sent it.
	TemplateTTL time.Duration
	// Sockets is the number of SO_REUSEPORT sockets, each with a worker;
	// 0 is one per CPU.
	Sockets int
}

// DefaultFlow returns the flow settings used for keys a topology leaves
// out.
func DefaultFlow() Flow {
	return Flow{Listen: ":2055", Window: 10 * time.Second, TemplateTTL: 30 * time.Minute}
}

// Telemetry is how the gNMI collector samples the routers.
type Telemetry struct {
	// Interval is the sample interval asked of the routers.
	Interval time.Duration
}

// DefaultTelemetry returns the telemetry settings used for keys a topology
// leaves out.
func DefaultTelemetry() Telemetry {
	return Telemetry{Interval: time.Second}
}

var flowFields = []field[Flow]{
	{"listen", func(f *Flow) any { return &f.Listen }},
	{"window", func(f *Flow) any { return &f.Window }},
	{"template_ttl", func(f *Flow) any { return &f.TemplateTTL }},
	{"sockets", func(f *Flow) any { return &f.Sockets }},
}

var telemetryFields = []field[Telemetry]{
	{"interval", func(t *Telemetry) any { return &t.Interval }},
}

func (f Flow) check() []problem {
	var ps []problem
	bad := func(key, format string, args ...any) {
		ps = append(ps, problem{key, []string{key}, fmt.Sprintf(format, args...)})
	}
	_, port, err := net.SplitHostPort(f.Listen)
	if err == nil {
		_, err = strconv.ParseUint(port, 10, 16)
	}
	if err != nil {
		bad("listen", "%q is not host:port; write e.g. \":2055\" or \"127.0.0.1:2055\"", f.Listen)
	}
	if f.Window < time.Second || f.Window%time.Second != 0 {
		bad("window", "%s is not a whole number of seconds of 1s or more; write e.g. 10s", showDuration(f.Window))
	}
	if f.TemplateTTL <= 0 {
		bad("template_ttl", "%s is not above 0; write e.g. 30m", showDuration(f.TemplateTTL))
	}
	if f.Sockets < 0 {
		bad("sockets", "%d is negative; write 0 for one socket per CPU, or a count", f.Sockets)
	}
	return ps
}

func (t Telemetry) check() []problem {
	if t.Interval < 10*time.Millisecond {
		return []problem{{"interval", []string{"interval"}, fmt.Sprintf("%s is below 10ms; write e.g. 1s", showDuration(t.Interval))}}
	}
	return nil
}

// rawRouter is a router as written.
type rawRouter struct {
	Name, GNMI, GNMITLS, GNMIUsername, GNMIPassword string
	FlowExporter, FlowSamplingRate                  string
}

var routerKeys = []string{"name", "gnmi", "gnmi_tls", "gnmi_username", "gnmi_password", "flow_exporter", "flow_sampling_rate"}

func (d decoder) router(path string, v any) rawRouter {
	m := d.mapping(path, v, "router", routerKeys)
	s := func(key string) string { return d.scalar(path+"."+key, m[key]) }
	return rawRouter{
		Name: s("name"), GNMI: s("gnmi"), GNMITLS: s("gnmi_tls"),
		GNMIUsername: s("gnmi_username"), GNMIPassword: s("gnmi_password"),
		FlowExporter: s("flow_exporter"), FlowSamplingRate: s("flow_sampling_rate"),
	}
}

func (rr rawRouter) convert(e *errList, path string) Router {
	r := Router{
		Name: rr.Name, GNMI: rr.GNMI, GNMITLS: rr.GNMITLS,
		GNMIUsername: rr.GNMIUsername, GNMIPassword: rr.GNMIPassword,
		FlowExporter: parseAddr(e, path+".flow_exporter", rr.FlowExporter,
			"is not an IP address; write the source address of the router's flow datagrams, such as 198.18.0.11"),
	}
	if rr.FlowExporter != "" && !r.FlowExporter.IsValid() {
		// Already reported; "sampling rate without an exporter" would
		// only say it again.
		e.markFailed(path + ".flow_sampling_rate")
	}
	if r.GNMITLS == "" {
		r.GNMITLS = TLSVerify
	}
	if rr.FlowSamplingRate != "" {
		n, err := strconv.ParseUint(rr.FlowSamplingRate, 10, 32)
		if err != nil {
			e.fail(path+".flow_sampling_rate", "%q is not a whole number; write the router's 1-in-N rate, such as 1000, or delete the key to use the rate its datagrams announce", rr.FlowSamplingRate)
		}
		r.FlowSamplingRate = uint32(n)
	}
	return r
}

// parseIfIndex parses a link's ifindex; "" is 0, unset.
func parseIfIndex(e *errList, path, s string) uint32 {
	if s == "" {
		return 0
	}
	n, err := strconv.ParseUint(s, 10, 32)
	if err != nil || n == 0 {
		e.fail(path, "%q is not an interface index; write the router's SNMP ifIndex of the link's interface, 1 to 4294967295", s)
		return 0
	}
	return uint32(n)
}

// checkRouters reports a PoP's bad routers; at is where each router name
// was first seen in the topology, so that names stay unique across PoPs.
func checkRouters(e *errList, path string, pop PoP, at map[string]string) {
	exporterAt := make(map[netip.Addr]int)
	for k, r := range pop.Routers {
		rp := fmt.Sprintf("%s.routers[%d]", path, k)
		checkName(e, rp+".name", r.Name, "router", pop.Name+"-br1")
		if prev, dup := at[r.Name]; dup && r.Name != "" {
			e.add(rp+".name", "%q is already the name of %s; router names must be unique", r.Name, prev)
		} else {
			at[r.Name] = rp
		}
		if r.GNMI != "" {
			_, port, err := net.SplitHostPort(r.GNMI)
			if err == nil {
				var n uint64
				n, err = strconv.ParseUint(port, 10, 16)
				if n == 0 {
					err = fmt.Errorf("port 0")
				}
			}
			if err != nil {
				e.add(rp+".gnmi", "%q is not host:port; write the router's gNMI target, such as 198.18.0.11:9339", r.GNMI)
			}
		}
		switch r.GNMITLS {
		case TLSVerify, TLSSkipVerify, TLSInsecure:
		default:
			e.add(rp+".gnmi_tls", "%q is not a TLS mode; write verify (the default), skip_verify or insecure", r.GNMITLS)
		}
		if r.GNMI == "" && (r.GNMIUsername != "" || r.GNMIPassword != "") {
			e.add(rp+".gnmi", "missing, but gnmi_username or gnmi_password is set; write the router's gNMI target, such as 198.18.0.11:9339, or delete the credentials")
		}
		if a := r.FlowExporter; a.IsValid() {
			if msg := checkHost(a); msg != "" {
				e.add(rp+".flow_exporter", "%s", msg)
			}
			if j, dup := exporterAt[a]; dup {
				e.add(rp+".flow_exporter", "%s is already the flow_exporter of %s.routers[%d]; each router exports from its own address", a, path, j)
			}
			exporterAt[a] = k
		} else if r.FlowSamplingRate != 0 {
			e.add(rp+".flow_sampling_rate", "set, but the router has no flow_exporter; write its exporter address, or delete the key")
		}
	}
}

// checkLinkRouter reports a link's router, interface and ifindex keys
// that do not fit its PoP's routers.
func checkLinkRouter(e *errList, path string, pop PoP, l Link) {
	if l.Router == "" {
		switch {
		case l.Interface != "":
			e.add(path+".router", "missing, but interface is set; name the router (in this PoP's routers) the link lands on")
		case l.IfIndex != 0:
			e.add(path+".router", "missing, but ifindex is set; name the router (in this PoP's routers) the link lands on")
		}
		return
	}
	var r *Router
	for i := range pop.Routers {
		if pop.Routers[i].Name == l.Router {
			r = &pop.Routers[i]
		}
	}
	if r == nil {
		e.add(path+".router", "no router %q in this PoP; add it to the PoP's routers, or name one of them", l.Router)
		return
	}
	if r.GNMI != "" && l.Interface == "" {
		e.add(path+".interface", "missing; router %q has gnmi, so write the link's interface name on it, such as et-0/0/1", r.Name)
	}
	if strings.ContainsAny(l.Interface, "[]") {
		e.add(path+".interface", "%q has a bracket, which gNMI paths cannot carry in a key; write the name the router's gNMI reports", l.Interface)
	}
	if r.FlowExporter.IsValid() && l.IfIndex == 0 {
		e.add(path+".ifindex", "missing; router %q exports flows, so write the SNMP ifIndex of the link's interface on it, such as 531", r.Name)
	}
}

// checkIfIndexes reports two links of a PoP on the same router interface.
func checkIfIndexes(e *errList, path string, pop PoP) {
	type key struct {
		router string
		n      uint32
	}
	ifAt := make(map[key]int)
	nameAt := make(map[string]int)
	for j, l := range pop.Links {
		if l.Router == "" {
			continue
		}
		lp := fmt.Sprintf("%s.links[%d]", path, j)
		if l.IfIndex != 0 {
			k := key{l.Router, l.IfIndex}
			if prev, dup := ifAt[k]; dup {
				e.add(lp+".ifindex", "%d on router %q is already %s.links[%d]'s; flows are attributed by ifindex, so each link needs its own", l.IfIndex, l.Router, path, prev)
			} else {
				ifAt[k] = j
			}
		}
		if l.Interface != "" {
			n := l.Router + "\x00" + l.Interface
			if prev, dup := nameAt[n]; dup {
				e.add(lp+".interface", "%q on router %q is already %s.links[%d]'s; write the link's own interface", l.Interface, l.Router, path, prev)
			} else {
				nameAt[n] = j
			}
		}
	}
}

// HasFlows reports whether any router exports flows to sdnoc.
func (t *Topology) HasFlows() bool {
	for _, p := range t.PoPs {
		for _, r := range p.Routers {
			if r.FlowExporter.IsValid() {
				return true
			}
		}
	}
	return false
}

// HasTelemetry reports whether any router has a gNMI target.
func (t *Topology) HasTelemetry() bool {
	for _, p := range t.PoPs {
		for _, r := range p.Routers {
			if r.GNMI != "" {
				return true
			}
		}
	}
	return false
}

// RouterOf returns the router link l of pop lands on, if it names one.
func (p PoP) RouterOf(l Link) (Router, bool) {
	for _, r := range p.Routers {
		if l.Router != "" && r.Name == l.Router {
			return r, true
		}
	}
	return Router{}, false
}
