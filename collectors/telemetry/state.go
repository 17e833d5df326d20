package telemetry

import (
	"encoding/json"
	"net/netip"
	"strconv"
	"time"

	"github.com/openconfig/gnmi/proto/gnmi"
)

// counterRate turns successive readings of an octet counter into bit/s.
type counterRate struct {
	v    uint64
	ts   int64 // ns, the reading's notification timestamp
	have bool  // v and ts hold a reading
	bps  float64
	ok   bool // bps was computed from two readings
}

// add records reading v at ts. A reading below the last is a counter
// reset or wrap: that interval is dropped, not read as a rate. A reading
// not after the last (a repeat) is ignored.
func (r *counterRate) add(v uint64, ts int64) {
	if r.have && ts <= r.ts {
		return
	}
	if r.have && v >= r.v {
		r.bps = float64(v-r.v) * 8 / time.Duration(ts-r.ts).Seconds()
		r.ok = true
	}
	r.v, r.ts, r.have = v, ts, true
}

// ifState is what one interface last showed.
type ifState struct {
	in, out counterRate
	oper    string
	seen    time.Time // local time of the last counter update
}

// state is what one router's current subscription has shown; a new
// subscription starts from an empty one, so that no rate spans a gap.
type state struct {
	ifs map[string]*ifState
	bgp map[netip.Addr]string
}

func newState() *state {
	return &state{ifs: make(map[string]*ifState), bgp: make(map[netip.Addr]string)}
}

func (s *state) iface(name string) *ifState {
	st := s.ifs[name]
	if st == nil {
		st = &ifState{}
		s.ifs[name] = st
	}
	return st
}

// apply records the leaves of one notification received at now. Leaves
// it does not know are ignored; it returns how many it recorded.
func (s *state) apply(n *gnmi.Notification, now time.Time) int {
	ts := n.GetTimestamp()
	if ts <= 0 {
		ts = now.UnixNano()
	}
	var applied int
	for _, u := range n.GetUpdate() {
		el := append(append([]*gnmi.PathElem(nil), n.GetPrefix().GetElem()...), u.GetPath().GetElem()...)
		if len(el) < 2 {
			continue
		}
		leafName := el[len(el)-1].GetName()
		switch {
		case el[0].GetName() == "interfaces" && el[1].GetName() == "interface":
			name := el[1].GetKey()["name"]
			if name == "" {
				continue
			}
			switch leafName {
			case "in-octets", "out-octets":
				v, ok := uintValue(u.GetVal())
				if !ok {
					continue
				}
				st := s.iface(name)
				if leafName == "in-octets" {
					st.in.add(v, ts)
				} else {
					st.out.add(v, ts)
				}
				st.seen = now
			case "oper-status":
				v, ok := stringValue(u.GetVal())
				if !ok {
					continue
				}
				s.iface(name).oper = v
			default:
				continue
			}
		case el[0].GetName() == "network-instances" && leafName == "session-state":
			var addr netip.Addr
			for _, e := range el {
				if e.GetName() == "neighbor" {
					addr, _ = netip.ParseAddr(e.GetKey()["neighbor-address"])
				}
			}
			v, ok := stringValue(u.GetVal())
			if !addr.IsValid() || !ok {
				continue
			}
			s.bgp[addr.Unmap()] = v
		default:
			continue
		}
		applied++
	}
	return applied
}

// uintValue reads a counter sent as uint_val, int_val, or JSON (a
// number, or a string as JSON_IETF encodes 64-bit integers, RFC 7951 §6.1).
func uintValue(tv *gnmi.TypedValue) (uint64, bool) {
	switch v := tv.GetValue().(type) {
	case *gnmi.TypedValue_UintVal:
		return v.UintVal, true
	case *gnmi.TypedValue_IntVal:
		return uint64(v.IntVal), v.IntVal >= 0
	case *gnmi.TypedValue_JsonVal:
		return jsonUint(v.JsonVal)
	case *gnmi.TypedValue_JsonIetfVal:
		return jsonUint(v.JsonIetfVal)
	}
	return 0, false
}

func jsonUint(b []byte) (uint64, bool) {
	var s string
	if json.Unmarshal(b, &s) == nil {
		v, err := strconv.ParseUint(s, 10, 64)
		return v, err == nil
	}
	var n json.Number
	if json.Unmarshal(b, &n) != nil {
		return 0, false
	}
	v, err := strconv.ParseUint(n.String(), 10, 64)
	return v, err == nil
}

// stringValue reads an enumeration sent as string_val or a JSON string;
// a JSON_IETF identity may carry its module ("openconfig-...:UP").
func stringValue(tv *gnmi.TypedValue) (string, bool) {
	var s string
	switch v := tv.GetValue().(type) {
	case *gnmi.TypedValue_StringVal:
		s = v.StringVal
	case *gnmi.TypedValue_JsonVal:
		if json.Unmarshal(v.JsonVal, &s) != nil {
			return "", false
		}
	case *gnmi.TypedValue_JsonIetfVal:
		if json.Unmarshal(v.JsonIetfVal, &s) != nil {
			return "", false
		}
	default:
		return "", false
	}
	for i := len(s) - 1; i >= 0; i-- {
		if s[i] == ':' {
			s = s[i+1:]
			break
		}
	}
	return s, s != ""
}
