package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sdnoc/sdnoc/lab/loopback"
)

// labTopology writes a topology file for a three-ISP loopback lab.
func labTopology(t *testing.T, lab *loopback.Lab) string {
	t.Helper()
	var b strings.Builder
	b.WriteString("name: daemon-test\npops:\n  - name: pop1\n    speaker: { router_id: 198.18.0.1, asn: 65000 }\n    links:\n")
	for i, x := range lab.ISPs {
		var targets []string
		for _, tg := range x.Targets() {
			targets = append(targets, tg.String())
		}
		fmt.Fprintf(&b, "      - { name: %s, peer_asn: %d, neighbor: %s, neighbor_port: %d, local: %s, capacity: 10G, probe_targets: [%s] }\n",
			x.Name, 64501+i, x.Neighbor.Addr(), x.Neighbor.Port(), x.Local, strings.Join(targets, ", "))
	}
	b.WriteString("prefixes:\n  - prefix: 198.51.100.0/24\n  - prefix: 2001:db8:100::/48\n")
	b.WriteString("bgp: { connect_retry: 1s, hold_time: 9s, keepalive: 3s }\n")
	path := filepath.Join(t.TempDir(), "topology.yaml")
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func get(url string) (int, string, error) {
	resp, err := http.Get(url)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// TestDaemon runs `sdnoc daemon` on a loopback lab: it must publish the
// prefixes to the real ISP routers, serve health, metrics and status, and
// stop cleanly on SIGTERM (the context the signal cancels).
func TestDaemon(t *testing.T) {
	lab, err := loopback.StartLab(t.Context(), 73, 65000,
		[]loopback.LinkSpec{{Name: "isp1", PeerASN: 64501}, {Name: "isp2", PeerASN: 64502}, {Name: "isp3", PeerASN: 64503}}, nil)
	t.Cleanup(func() { lab.Stop(context.Background()) })
	if err != nil {
		t.Fatal(err)
	}
	cfgPath := labTopology(t, lab)
	journalPath := filepath.Join(t.TempDir(), "journal.jsonl")
	admin := freeAddr(t)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	root := newRoot()
	var stderr syncBuffer
	root.SetErr(&stderr)
	root.SetArgs([]string{"daemon", "--config", cfgPath, "--journal", journalPath, "--listen", admin, "--log-level", "warn"})
	done := make(chan error, 1)
	go func() { done <- root.ExecuteContext(ctx) }()

	deadline := time.Now().Add(20 * time.Second)
	for {
		if code, _, err := get("http://" + admin + "/healthz"); err == nil && code == http.StatusOK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("/healthz never answered")
		}
		time.Sleep(50 * time.Millisecond)
	}
	for _, x := range lab.ISPs {
		wctx, wcancel := context.WithTimeout(t.Context(), 20*time.Second)
		rs, _, err := x.Router.WaitRoutes(wctx, func(rs []netip.Prefix) bool { return len(rs) == 2 }, 20*time.Millisecond)
		wcancel()
		if err != nil {
			t.Fatalf("%s's RIB = %v: the daemon did not publish both prefixes: %v", x.Name, rs, err)
		}
	}
	time.Sleep(2 * time.Second) // a few probe windows and a session poll
	_, metrics, err := get("http://" + admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		`sdnoc_collectors_probes_loss_ratio{link="pop1/isp1"}`,
		`sdnoc_collectors_probes_rtt_seconds{link="pop1/isp2"}`,
		`sdnoc_controller_link_state{link="pop1/isp3"} 1`,
		`sdnoc_controller_intent_prefixes_total{action="announce",rule="publish"} 6`,
		`sdnoc_actuators_bgp_session_up{neighbor="pop1/isp1"} 1`,
		`sdnoc_controller_step_seconds_count`,
		`go_goroutines`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	_, status, err := get("http://" + admin + "/status")
	if err != nil {
		t.Fatal(err)
	}
	var links []struct {
		Link      string `json:"link"`
		State     string `json:"state"`
		Published int    `json:"published"`
	}
	if err := json.Unmarshal([]byte(status), &links); err != nil || len(links) != 3 || links[0].State != "healthy" || links[0].Published != 2 {
		t.Fatalf("/status = %s (%v); want 3 healthy links publishing 2 prefixes", status, err)
	}

	cancel() // SIGTERM
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("daemon exited with %v; stderr:\n%s", err, stderr.String())
		}
	case <-time.After(15 * time.Second):
		t.Fatal("daemon did not stop within 15 s of SIGTERM")
	}
	b, err := os.ReadFile(journalPath)
	if err != nil || !bytes.Contains(b, []byte(`"kind":"start"`)) || !bytes.Contains(b, []byte(`"kind":"applied"`)) {
		t.Fatalf("journal after the run: %q, %v", b, err)
	}
}

// TestDaemonRefusesBadConfig: a bad topology is refused as a whole, with
// the file, the field and the fix, before anything listens.
func TestDaemonRefusesBadConfig(t *testing.T) {
	path := filepath.Join(t.TempDir(), "bad.yaml")
	doc := "pops:\n  - name: pop1\n    speaker: { router_id: 198.18.0.1, asn: 65000 }\n    links:\n" +
		"      - { name: isp1, peer_asn: 64501, neighbor: 10.0.0.300, local: 198.18.1.1, capacity: 10G, probe_targets: [198.18.9.1] }\n" +
		"prefixes:\n  - prefix: 198.51.100.0/24\n"
	if err := os.WriteFile(path, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	admin := freeAddr(t)
	root := newRoot()
	root.SetArgs([]string{"daemon", "--config", path, "--journal", filepath.Join(t.TempDir(), "j"), "--listen", admin})
	err := root.ExecuteContext(t.Context())
	if err == nil || !strings.Contains(err.Error(), "bad.yaml: pops[0].links[0].neighbor: \"10.0.0.300\" is not an IP address") {
		t.Fatalf("err = %v; want the file, field path and problem", err)
	}
	if ln, err := net.Listen("tcp", admin); err != nil {
		t.Fatalf("the admin address is taken after a refused start: %v", err)
	} else {
		ln.Close()
	}
}

// TestDaemonDryRunTouchesNothing: with --dry-run the daemon probes and
// plans, logs what it would do, opens no BGP session (the ISPs get no
// route) and writes no journal (invariant 8).
func TestDaemonDryRunTouchesNothing(t *testing.T) {
	lab, err := loopback.StartLab(t.Context(), 74, 65000,
		[]loopback.LinkSpec{{Name: "isp1", PeerASN: 64501}, {Name: "isp2", PeerASN: 64502}, {Name: "isp3", PeerASN: 64503}}, nil)
	t.Cleanup(func() { lab.Stop(context.Background()) })
	if err != nil {
		t.Fatal(err)
	}
	journalPath := filepath.Join(t.TempDir(), "journal.jsonl")
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	root := newRoot()
	var logs syncBuffer
	root.SetErr(&logs)
	root.SetArgs([]string{"daemon", "--dry-run", "--config", labTopology(t, lab), "--journal", journalPath, "--listen", freeAddr(t), "--log-format", "json"})
	done := make(chan error, 1)
	go func() { done <- root.ExecuteContext(ctx) }()
	time.Sleep(3 * time.Second) // longer than a real daemon takes to publish (see TestDaemon)
	for _, x := range lab.ISPs {
		if rs, err := x.Router.Routes(t.Context()); err != nil || len(rs) != 0 {
			t.Errorf("%s got routes %v (%v) from a dry run", x.Name, rs, err)
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(journalPath); !os.IsNotExist(err) {
		t.Errorf("dry run wrote a journal: %v", err)
	}
	if !strings.Contains(logs.String(), `"msg":"would announce"`) {
		t.Errorf("dry run did not explain what it would do; logs:\n%s", logs.String())
	}
}
