package gnmiagent

import (
	"fmt"
	"testing"
	"time"

	"github.com/openconfig/gnmi/proto/gnmi"
)

// BenchmarkSample100 reads 100 interfaces from a fake sysfs and builds
// the notification of a /interfaces subscription: the agent's work per
// sample interval for a 100-interface router.
func BenchmarkSample100(b *testing.B) {
	root := b.TempDir()
	for i := range 100 {
		writeIf(b, root, fmt.Sprintf("eth%d", i), "up", uint64(i)*1000, uint64(i)*2000)
	}
	a, err := New(testConfig(root), Deps{})
	if err != nil {
		b.Fatal(err)
	}
	qs := [][]*gnmi.PathElem{p("", "interfaces").Elem}
	var leaves int
	for b.Loop() {
		ls, ts, err := a.read(b.Context(), qs)
		if err != nil {
			b.Fatal(err)
		}
		leaves += len(notification(nil, ts, ls, qs...).Update)
	}
	perSample := b.Elapsed() / time.Duration(b.N)
	b.ReportMetric(float64(leaves)/b.Elapsed().Seconds(), "leaves/s")
	b.ReportMetric(100*perSample.Seconds(), "cpu%@1s")
}

// BenchmarkGet is one Get of one counter over gRPC on loopback.
func BenchmarkGet(b *testing.B) {
	root := b.TempDir()
	writeIf(b, root, "eth0", "up", 1, 2)
	_, c := startAgent(b, testConfig(root))
	req := &gnmi.GetRequest{Path: []*gnmi.Path{p("", "interfaces", "interface[name=eth0]", "state", "counters", "in-octets")}}
	for b.Loop() {
		if _, err := c.Get(b.Context(), req); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "gets/s")
}
