package probes_test

import (
	"fmt"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sdnoc/sdnoc/collectors/probes"
	"github.com/sdnoc/sdnoc/internal/starttest"
)

// startReflector starts a reflector on listen and stops it when the test
// ends.
func startReflector(t testing.TB, listen string) (*probes.Reflector, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	r, err := probes.NewReflector(probes.ReflectorConfig{Listen: listen}, probes.ReflectorDeps{Reg: reg})
	if err != nil {
		t.Fatal(err)
	}
	starttest.Start(t, r)
	return r, reg
}

// recorder keeps the samples a collector reports.
type recorder struct {
	mu      sync.Mutex
	samples []probes.Sample
}

func (r *recorder) add(s probes.Sample) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.samples = append(r.samples, s)
}

// of returns a copy of the samples of link so far.
func (r *recorder) of(link string) []probes.Sample {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []probes.Sample
	for _, s := range r.samples {
		if s.Link == link {
			out = append(out, s)
		}
	}
	return out
}

// waitFor polls until cond holds for link's samples, or fails the test
// after timeout. It returns the samples that satisfied cond.
func (r *recorder) waitFor(t *testing.T, link string, timeout time.Duration, what string, cond func([]probes.Sample) bool) []probes.Sample {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		s := r.of(link)
		if cond(s) {
			return s
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %v, link %s: still waiting for %s; samples:\n%s", timeout, link, what, dump(s))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// atLeast is a waitFor condition: n samples.
func atLeast(n int) func([]probes.Sample) bool {
	return func(s []probes.Sample) bool { return len(s) >= n }
}

func dump(ss []probes.Sample) string {
	var b []byte
	for _, s := range ss {
		b = append(b, sampleString(s)...)
		b = append(b, '\n')
	}
	return string(b)
}

func sampleString(s probes.Sample) string {
	return fmt.Sprintf("%s %s known=%v sent=%d senderr=%d recv=%d lost=%d late=%d out=%d rtt=%v/%v/%v jitter=%v since=%v",
		s.Link, s.End.Format("15:04:05.000"), s.Known, s.Sent, s.SendErrors, s.Received, s.Lost, s.Late,
		s.Outstanding, s.RTTMin, s.RTTAvg, s.RTTP95, s.Jitter, s.SinceReply)
}

// startCollector starts a collector and stops it when the test ends.
func startCollector(t *testing.T, cfg probes.Config) (*probes.Collector, *recorder, *prometheus.Registry) {
	t.Helper()
	rec := &recorder{}
	reg := prometheus.NewPedanticRegistry()
	c, err := probes.New(cfg, probes.Deps{Reg: reg, OnSample: rec.add})
	if err != nil {
		t.Fatal(err)
	}
	starttest.Start(t, c)
	return c, rec, reg
}

// checkAccounting checks that every probe is resolved once: across
// consecutive samples, Outstanding = previous Outstanding + Sent −
// Received − Lost, starting from 0. Summed, Σ(Received+Lost) = ΣSent −
// the probes still outstanding.
func checkAccounting(t *testing.T, ss []probes.Sample) {
	t.Helper()
	out := 0
	for i, s := range ss {
		if want := out + s.Sent - s.Received - s.Lost; s.Outstanding != want {
			t.Errorf("sample %d: outstanding %d, want %d + %d sent − %d received − %d lost = %d",
				i, s.Outstanding, out, s.Sent, s.Received, s.Lost, want)
		}
		if i > 0 && !s.Start.Equal(ss[i-1].End) {
			t.Errorf("sample %d starts at %v, the previous ended at %v", i, s.Start, ss[i-1].End)
		}
		sent, recv, lost := 0, 0, 0
		for _, ts := range s.Targets {
			sent += ts.Sent
			recv += ts.Received
			lost += ts.Lost
		}
		if sent != s.Sent || recv != s.Received || lost != s.Lost {
			t.Errorf("sample %d: targets add up to sent %d received %d lost %d, the link says %d %d %d",
				i, sent, recv, lost, s.Sent, s.Received, s.Lost)
		}
		out = s.Outstanding
	}
}

// metric returns the value of the counter or gauge name with the given
// label values (in any order), or fails the test.
func metric(t *testing.T, reg *prometheus.Registry, name string, labels ...string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			for i := 0; i+1 < len(labels); i += 2 {
				found := false
				for _, lp := range m.GetLabel() {
					if lp.GetName() == labels[i] && lp.GetValue() == labels[i+1] {
						found = true
					}
				}
				if !found {
					continue next
				}
			}
			if m.GetCounter() != nil {
				return m.GetCounter().GetValue()
			}
			return m.GetGauge().GetValue()
		}
	}
	t.Fatalf("no metric %s%v", name, labels)
	return 0
}

// udpAddr returns a's address as an AddrPort.
func udpAddr(t testing.TB, a net.Addr) netip.AddrPort {
	t.Helper()
	ap, err := netip.ParseAddrPort(a.String())
	if err != nil {
		t.Fatal(err)
	}
	return ap
}
