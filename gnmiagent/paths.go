package gnmiagent

import (
	"slices"

	"github.com/openconfig/gnmi/proto/gnmi"
)

// leaf is one value the agent serves, at its full path (elements only).
type leaf struct {
	path []*gnmi.PathElem
	val  *gnmi.TypedValue
}

func elem(name string, kv ...string) *gnmi.PathElem {
	e := &gnmi.PathElem{Name: name}
	if len(kv) > 0 {
		e.Key = make(map[string]string, len(kv)/2)
		for i := 0; i+1 < len(kv); i += 2 {
			e.Key[kv[i]] = kv[i+1]
		}
	}
	return e
}

func uintVal(v uint64) *gnmi.TypedValue {
	return &gnmi.TypedValue{Value: &gnmi.TypedValue_UintVal{UintVal: v}}
}

func stringVal(v string) *gnmi.TypedValue {
	return &gnmi.TypedValue{Value: &gnmi.TypedValue_StringVal{StringVal: v}}
}

// interfaceLeaves are the openconfig-interfaces state leaves of itfs:
// /interfaces/interface[name=X]/state/{oper-status,counters/...}.
func interfaceLeaves(itfs []Interface) []leaf {
	out := make([]leaf, 0, 9*len(itfs))
	for _, itf := range itfs {
		base := []*gnmi.PathElem{elem("interfaces"), elem("interface", "name", itf.Name), elem("state")}
		out = append(out, leaf{append(slices.Clip(base), elem("oper-status")), stringVal(itf.OperStatus)})
		c := itf.Counters
		for _, kv := range []struct {
			name string
			v    uint64
		}{
			{"in-octets", c.InOctets}, {"out-octets", c.OutOctets},
			{"in-pkts", c.InPkts}, {"out-pkts", c.OutPkts},
			{"in-errors", c.InErrors}, {"out-errors", c.OutErrors},
			{"in-discards", c.InDiscards}, {"out-discards", c.OutDiscards},
		} {
			out = append(out, leaf{append(slices.Clip(base), elem("counters"), elem(kv.name)), uintVal(kv.v)})
		}
	}
	return out
}

// neighborLeaves are the openconfig-network-instance BGP session-state
// leaves of ns, in the default network instance.
func neighborLeaves(ns []Neighbor) []leaf {
	out := make([]leaf, 0, len(ns))
	for _, n := range ns {
		out = append(out, leaf{[]*gnmi.PathElem{
			elem("network-instances"), elem("network-instance", "name", "default"),
			elem("protocols"), elem("protocol", "identifier", "BGP", "name", "BGP"),
			elem("bgp"), elem("neighbors"), elem("neighbor", "neighbor-address", n.Address.String()),
			elem("state"), elem("session-state"),
		}, stringVal(n.SessionState)})
	}
	return out
}

// fullPath joins a request's prefix and path, as gNMI §2.4.1 defines.
func fullPath(prefix, p *gnmi.Path) []*gnmi.PathElem {
	return append(slices.Clip(prefix.GetElem()), p.GetElem()...)
}

// match reports whether a leaf at path l is under the request path q.
// q may use "*" for any one element name or key value, and "..." for
// any number of elements (gNMI path conventions); a q that ends before
// the leaf selects the whole subtree.
func match(q, l []*gnmi.PathElem) bool {
	for i, e := range q {
		if e.GetName() == "..." {
			for j := i; j <= len(l); j++ {
				if match(q[i+1:], l[j:]) {
					return true
				}
			}
			return false
		}
		if i >= len(l) {
			return false
		}
		if e.GetName() != "*" && e.GetName() != l[i].GetName() {
			return false
		}
		for k, v := range e.GetKey() {
			lv, ok := l[i].GetKey()[k]
			if !ok || (v != "*" && v != lv) {
				return false
			}
		}
	}
	return true
}

// wants reports whether request path q may select leaves under the
// top-level container top, so that a request reads only the sources it
// needs.
func wants(q []*gnmi.PathElem, top string) bool {
	if len(q) == 0 {
		return true
	}
	n := q[0].GetName()
	return n == top || n == "*" || n == "..."
}
