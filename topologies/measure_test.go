package topologies

import (
	"net/netip"
	"strings"
	"testing"
	"time"
)

// routersDoc adds routers to baseDoc: ams has one with gNMI and flows,
// fra one with flows only.
func routersDoc(tb testing.TB) string {
	return edit(tb, baseDoc,
		"    links:\n      - name: isp1\n", `    routers:
      - {name: ams-br1, gnmi: "198.18.0.11:9339", gnmi_tls: insecure, flow_exporter: 198.18.0.11}
    links:
      - name: isp1
        router: ams-br1
        interface: eth1
        ifindex: 3
`,
		"        capacity: 1G\n", "        capacity: 1G\n        router: ams-br1\n        interface: eth2\n        ifindex: 4\n",
		"    links:\n      - name: isp3\n", `    routers:
      - {name: fra-br1, flow_exporter: 198.18.0.21, flow_sampling_rate: 1000}
    links:
      - name: isp3
        router: fra-br1
        ifindex: 7
`,
		"name: test\n", "name: test\nflow: {listen: \"127.0.0.1:6343\", window: 5s}\ntelemetry: {interval: 250ms}\n",
	)
}

func TestParseRouters(t *testing.T) {
	top, err := Parse("t.yaml", []byte(routersDoc(t)))
	if err != nil {
		t.Fatal(err)
	}
	ams, fra := top.PoPs[0], top.PoPs[1]
	want := Router{Name: "ams-br1", GNMI: "198.18.0.11:9339", GNMITLS: TLSInsecure, FlowExporter: netip.MustParseAddr("198.18.0.11")}
	if len(ams.Routers) != 1 || ams.Routers[0] != want {
		t.Errorf("ams routers = %+v, want [%+v]", ams.Routers, want)
	}
	if r := fra.Routers[0]; r.GNMITLS != TLSVerify || r.FlowSamplingRate != 1000 || r.GNMI != "" {
		t.Errorf("fra router = %+v, want TLS verify by default, sampling 1000, no gNMI", r)
	}
	if l := ams.Links[1]; l.Router != "ams-br1" || l.Interface != "eth2" || l.IfIndex != 4 {
		t.Errorf("ams/isp2 = router %q interface %q ifindex %d", l.Router, l.Interface, l.IfIndex)
	}
	if r, ok := fra.RouterOf(fra.Links[0]); !ok || r.Name != "fra-br1" {
		t.Errorf("RouterOf(fra/isp3) = %+v, %v", r, ok)
	}
	if top.Flow.Listen != "127.0.0.1:6343" || top.Flow.Window != 5*time.Second || top.Flow.TemplateTTL != 30*time.Minute {
		t.Errorf("flow = %+v", top.Flow)
	}
	if top.Telemetry.Interval != 250*time.Millisecond {
		t.Errorf("telemetry = %+v", top.Telemetry)
	}
	if !top.HasFlows() || !top.HasTelemetry() {
		t.Errorf("HasFlows, HasTelemetry = %v, %v; want both", top.HasFlows(), top.HasTelemetry())
	}
	plain, err := Parse("t.yaml", []byte(baseDoc))
	if err != nil {
		t.Fatal(err)
	}
	if plain.HasFlows() || plain.HasTelemetry() || plain.Flow != DefaultFlow() || plain.Telemetry != DefaultTelemetry() {
		t.Errorf("without routers: HasFlows %v HasTelemetry %v flow %+v telemetry %+v", plain.HasFlows(), plain.HasTelemetry(), plain.Flow, plain.Telemetry)
	}
}

func TestParseRouterErrors(t *testing.T) {
	for _, tt := range []struct {
		name  string
		edits []string
		want  []string
	}{
		{"unknown router", []string{"router: ams-br1\n        interface: eth2", "router: ams-br2\n        interface: eth2"},
			[]string{`t.yaml: pops[0].links[1].router: no router "ams-br2" in this PoP; add it to the PoP's routers, or name one of them`}},
		{"router of another PoP", []string{"router: fra-br1", "router: ams-br1"},
			[]string{`t.yaml: pops[1].links[0].router: no router "ams-br1" in this PoP`}},
		{"interface missing for gNMI", []string{"        interface: eth1\n", ""},
			[]string{`t.yaml: pops[0].links[0].interface: missing; router "ams-br1" has gnmi, so write the link's interface name on it`}},
		{"ifindex missing for flows", []string{"        ifindex: 7\n", ""},
			[]string{`t.yaml: pops[1].links[0].ifindex: missing; router "fra-br1" exports flows`}},
		{"bracket in interface", []string{"interface: eth1", "interface: eth1[0]"},
			[]string{`t.yaml: pops[0].links[0].interface: "eth1[0]" has a bracket`}},
		{"ifindex not a number", []string{"ifindex: 3", "ifindex: eth1"},
			[]string{`t.yaml: pops[0].links[0].ifindex: "eth1" is not an interface index; write the router's SNMP ifIndex`}},
		{"ifindex zero", []string{"ifindex: 3", "ifindex: 0"},
			[]string{`t.yaml: pops[0].links[0].ifindex: "0" is not an interface index`}},
		{"same ifindex twice", []string{"ifindex: 4", "ifindex: 3"},
			[]string{`t.yaml: pops[0].links[1].ifindex: 3 on router "ams-br1" is already pops[0].links[0]'s; flows are attributed by ifindex, so each link needs its own`}},
		{"same interface twice", []string{"interface: eth2", "interface: eth1"},
			[]string{`t.yaml: pops[0].links[1].interface: "eth1" on router "ams-br1" is already pops[0].links[0]'s`}},
		{"router name reused across PoPs", []string{"name: fra-br1", "name: ams-br1", "router: fra-br1", "router: ams-br1"},
			[]string{`t.yaml: pops[1].routers[0].name: "ams-br1" is already the name of pops[0].routers[0]; router names must be unique`}},
		{"bad gnmi address", []string{`gnmi: "198.18.0.11:9339"`, `gnmi: "198.18.0.11"`},
			[]string{`t.yaml: pops[0].routers[0].gnmi: "198.18.0.11" is not host:port; write the router's gNMI target, such as 198.18.0.11:9339`}},
		{"bad tls mode", []string{"gnmi_tls: insecure", "gnmi_tls: plain"},
			[]string{`t.yaml: pops[0].routers[0].gnmi_tls: "plain" is not a TLS mode; write verify (the default), skip_verify or insecure`}},
		{"bad exporter", []string{"flow_exporter: 198.18.0.21", "flow_exporter: fra-br1"},
			[]string{`t.yaml: pops[1].routers[0].flow_exporter: "fra-br1" is not an IP address`}},
		{"sampling without exporter", []string{"flow_exporter: 198.18.0.21, ", ""},
			[]string{`t.yaml: pops[1].routers[0].flow_sampling_rate: set, but the router has no flow_exporter`}},
		{"unknown router key", []string{"gnmi_tls: insecure", "gnmi_tls: insecure, gnmi_port: 1"},
			[]string{`t.yaml: pops[0].routers[0].gnmi_port: unknown key`}},
		{"flow window not whole seconds", []string{"window: 5s", "window: 1500ms"},
			[]string{`t.yaml: flow.window: 1.5s is not a whole number of seconds of 1s or more; write e.g. 10s, or delete the key for the default (10s)`}},
		{"flow listen", []string{`listen: "127.0.0.1:6343"`, `listen: "6343"`},
			[]string{`t.yaml: flow.listen: "6343" is not host:port`}},
		{"telemetry interval", []string{"interval: 250ms", "interval: 1ms"},
			[]string{`t.yaml: telemetry.interval: 1ms is below 10ms; write e.g. 1s, or delete the key for the default (1s)`}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("t.yaml", []byte(edit(t, routersDoc(t), tt.edits...)))
			if err == nil {
				t.Fatal("Parse() = nil error")
			}
			lines := strings.Split(err.Error(), "\n")
			if len(lines) != len(tt.want) {
				t.Fatalf("%d lines, want %d:\n%v", len(lines), len(tt.want), err)
			}
			for i, w := range tt.want {
				if !strings.Contains(lines[i], w) {
					t.Errorf("line %d:\n got %s\nwant %s", i, lines[i], w)
				}
			}
		})
	}
}
