package telemetry

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/openconfig/gnmi/proto/gnmi"
	"google.golang.org/protobuf/proto"
)

func TestCounterRate(t *testing.T) {
	const s = int64(time.Second)
	tests := []struct {
		name   string
		vs     []uint64
		ts     []int64
		want   float64
		wantOK bool
	}{
		{"one reading", []uint64{100}, []int64{s}, 0, false},
		{"steady", []uint64{0, 1000, 2000}, []int64{s, 2 * s, 3 * s}, 8000, true},
		{"half second", []uint64{0, 1000}, []int64{s, s + s/2}, 16000, true},
		{"reset drops the interval", []uint64{0, 1000, 10}, []int64{s, 2 * s, 3 * s}, 8000, true},
		{"reset then steady", []uint64{5000, 10, 1010}, []int64{s, 2 * s, 3 * s}, 8000, true},
		{"reset first", []uint64{5000, 10}, []int64{s, 2 * s}, 0, false},
		{"repeat ignored", []uint64{0, 1000, 9999}, []int64{s, 2 * s, 2 * s}, 8000, true},
		{"wrap", []uint64{^uint64(0) - 10, 5}, []int64{s, 2 * s}, 0, false},
	}
	for _, tt := range tests {
		var r counterRate
		for i := range tt.vs {
			r.add(tt.vs[i], tt.ts[i])
		}
		if r.bps != tt.want || r.ok != tt.wantOK {
			t.Errorf("%s: %g bit/s, ok %v; want %g, %v", tt.name, r.bps, r.ok, tt.want, tt.wantOK)
		}
	}
}

func pe(name string, kv ...string) *gnmi.PathElem {
	e := &gnmi.PathElem{Name: name}
	if len(kv) == 2 {
		e.Key = map[string]string{kv[0]: kv[1]}
	}
	return e
}

func ifPath(name, leaf string) []*gnmi.PathElem {
	out := []*gnmi.PathElem{pe("interfaces"), pe("interface", "name", name), pe("state")}
	if leaf != "oper-status" {
		out = append(out, pe("counters"))
	}
	return append(out, pe(leaf))
}

var bgpPath = []*gnmi.PathElem{
	pe("network-instances"), pe("network-instance", "name", "default"), pe("protocols"),
	{Name: "protocol", Key: map[string]string{"identifier": "BGP", "name": "BGP"}},
	pe("bgp"), pe("neighbors"), pe("neighbor", "neighbor-address", "192.0.2.1"), pe("state"), pe("session-state"),
}

func upd(path []*gnmi.PathElem, v *gnmi.TypedValue) *gnmi.Update {
	return &gnmi.Update{Path: &gnmi.Path{Elem: path}, Val: v}
}

func uv(v uint64) *gnmi.TypedValue {
	return &gnmi.TypedValue{Value: &gnmi.TypedValue_UintVal{UintVal: v}}
}
func sv(v string) *gnmi.TypedValue {
	return &gnmi.TypedValue{Value: &gnmi.TypedValue_StringVal{StringVal: v}}
}
func jv(v string) *gnmi.TypedValue {
	return &gnmi.TypedValue{Value: &gnmi.TypedValue_JsonIetfVal{JsonIetfVal: []byte(v)}}
}

var applyTests = []struct {
	name    string
	n       *gnmi.Notification
	applied int
	in      uint64 // eth1's in-octets reading after apply
	oper    string
	bgp     string
}{
	{"typed values", &gnmi.Notification{Timestamp: 1, Update: []*gnmi.Update{
		upd(ifPath("eth1", "in-octets"), uv(42)), upd(ifPath("eth1", "oper-status"), sv("UP")), upd(bgpPath, sv("ESTABLISHED")),
	}}, 3, 42, "UP", "ESTABLISHED"},
	{"json_ietf values, module-qualified identity", &gnmi.Notification{Timestamp: 1, Update: []*gnmi.Update{
		upd(ifPath("eth1", "in-octets"), jv(`"18446744073709551615"`)), upd(ifPath("eth1", "oper-status"), jv(`"openconfig-interfaces:DOWN"`)),
		upd(bgpPath, jv(`"IDLE"`)),
	}}, 3, 18446744073709551615, "DOWN", "IDLE"},
	{"json number", &gnmi.Notification{Timestamp: 1, Update: []*gnmi.Update{upd(ifPath("eth1", "in-octets"), jv(`77`))}}, 1, 77, "", ""},
	{"prefix holds the interface", &gnmi.Notification{Timestamp: 1,
		Prefix: &gnmi.Path{Target: "r1", Elem: ifPath("eth1", "in-octets")[:3]},
		Update: []*gnmi.Update{upd([]*gnmi.PathElem{pe("counters"), pe("in-octets")}, uv(9))}}, 1, 9, "", ""},
	{"unknown and malformed ignored", &gnmi.Notification{Timestamp: 1, Update: []*gnmi.Update{
		upd(ifPath("eth1", "in-pkts"), uv(1)), upd(ifPath("", "in-octets"), uv(1)), upd(ifPath("eth1", "in-octets"), sv("x")),
		upd(ifPath("eth1", "in-octets"), jv(`-1`)), upd(nil, uv(1)), upd(bgpPath[:7], sv("x")),
		{Path: &gnmi.Path{Elem: ifPath("eth1", "oper-status")}},
	}}, 0, 0, "", ""},
}

func TestApply(t *testing.T) {
	for _, tt := range applyTests {
		t.Run(tt.name, func(t *testing.T) {
			st := newState()
			if got := st.apply(tt.n, time.Now()); got != tt.applied {
				t.Errorf("applied %d leaves; want %d", got, tt.applied)
			}
			var in uint64
			var oper string
			if is := st.ifs["eth1"]; is != nil {
				in, oper = is.in.v, is.oper
			}
			if in != tt.in || oper != tt.oper || st.bgp[netip.MustParseAddr("192.0.2.1")] != tt.bgp {
				t.Errorf("in-octets %d, oper %q, bgp %q; want %d, %q, %q", in, oper, st.bgp[netip.MustParseAddr("192.0.2.1")], tt.in, tt.oper, tt.bgp)
			}
		})
	}
}

// FuzzApply feeds SubscribeResponse bytes, as a router sends them, to a
// router's state: nothing may panic, and rates stay finite.
func FuzzApply(f *testing.F) {
	for _, tt := range applyTests {
		b, err := proto.Marshal(&gnmi.SubscribeResponse{Response: &gnmi.SubscribeResponse_Update{Update: tt.n}})
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var resp gnmi.SubscribeResponse
		if proto.Unmarshal(b, &resp) != nil {
			return
		}
		st := newState()
		now := time.Now()
		st.apply(resp.GetUpdate(), now)
		st.apply(resp.GetUpdate(), now.Add(time.Second))
		for _, is := range st.ifs {
			if is.in.bps < 0 || is.out.bps < 0 {
				t.Fatalf("negative rate %+v", is)
			}
		}
	})
}

func TestConfigValidate(t *testing.T) {
	good := Config{Interval: time.Second, Routers: []RouterConfig{{
		Name: "r1", Address: "127.0.0.1:9339", Insecure: true,
		Links: map[string]LinkMap{"pop1/isp1": {Interface: "eth1", Capacity: 1e9}, "pop1/isp2": {Interface: "et-0/0/1", Capacity: 1e9}},
	}}}
	if err := good.Validate(); err != nil {
		t.Fatalf("good config: %v", err)
	}
	bad := Config{Interval: time.Millisecond, Routers: []RouterConfig{
		{Name: "r1", Address: "nowhere", Insecure: true, SkipVerify: true,
			Links: map[string]LinkMap{"isp1": {Interface: "eth1[0]", Capacity: 0}}},
		{Name: "r1", Address: "127.0.0.1:9339", Links: map[string]LinkMap{"pop1/isp2": {Interface: "eth2", Capacity: 1}}},
		{Name: "r2", Address: "127.0.0.1:9339", Links: map[string]LinkMap{"pop1/isp2": {Interface: "eth2", Capacity: 1}}},
		{Name: "", Address: "127.0.0.1:0"},
	}}
	err := bad.Validate()
	for _, want := range []string{
		"interval:", "routers[0].address:", "routers[0]: insecure and skip_verify", "routers[0].links[isp1]: the link ID",
		"routers[0].links[isp1].interface:", "routers[0].links[isp1].capacity:", "routers[1].name:",
		"routers[2].links[pop1/isp2]: also on router", "routers[3].name:", "routers[3].address:", "routers[3].links:",
	} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate() = %v; want an error with %q", err, want)
		}
	}
}
