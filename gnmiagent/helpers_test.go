package gnmiagent

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/openconfig/gnmi/proto/gnmi"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/sdnoc/sdnoc/internal/starttest"
)

// writeIf writes interface name into a fake sysfs tree at root: its
// operstate and its counters, rx_bytes = in and tx_bytes = out, the
// other counters derived from them so that each leaf is distinct.
func writeIf(t testing.TB, root, name, oper string, in, out uint64) {
	t.Helper()
	dir := filepath.Join(root, name, "statistics")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	files := map[string]uint64{
		"rx_bytes": in, "tx_bytes": out, "rx_packets": in / 100, "tx_packets": out / 100,
		"rx_errors": 1, "tx_errors": 2, "rx_dropped": 3, "tx_dropped": 4,
	}
	for f, v := range files {
		// Write then rename: the agent must never read a half-written file.
		tmp := filepath.Join(dir, "."+f)
		if err := os.WriteFile(tmp, fmt.Appendf(nil, "%d\n", v), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, filepath.Join(dir, f)); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(root, name, "operstate"), []byte(oper+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
}

// testConfig serves sysfs root on a free loopback port, with the sample
// FRR output as BGP source and a 50ms floor.
func testConfig(root string) Config {
	cfg := DefaultConfig()
	cfg.Listen = "127.0.0.1:0"
	cfg.SysfsRoot = root
	cfg.BGPCommand = []string{"testdata/bgp.sh"}
	cfg.MinSampleInterval = 50 * time.Millisecond
	return cfg
}

// startAgent starts an agent on cfg and returns it with a client.
func startAgent(t testing.TB, cfg Config) (*Agent, gnmi.GNMIClient) {
	t.Helper()
	a, err := New(cfg, Deps{Reg: prometheus.NewPedanticRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	starttest.Start(t, a)
	conn, err := grpc.NewClient(a.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return a, gnmi.NewGNMIClient(conn)
}

// p builds a path from elements written "name" or "name[k=v]" (one key,
// enough for the tests; the bgp path is built by bgpPath).
func p(target string, elems ...string) *gnmi.Path {
	out := &gnmi.Path{Target: target}
	for _, e := range elems {
		name, kv, ok := strings.Cut(strings.TrimSuffix(e, "]"), "[")
		if !ok {
			out.Elem = append(out.Elem, elem(e))
			continue
		}
		k, v, _ := strings.Cut(kv, "=")
		out.Elem = append(out.Elem, elem(name, k, v))
	}
	return out
}
