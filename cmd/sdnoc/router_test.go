package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sdnoc/sdnoc/controller/api"
	"github.com/sdnoc/sdnoc/journal"
	"github.com/sdnoc/sdnoc/lab/frrssh"
)

// The router commands through a real daemon to a real FRR router over
// SSH: a neighbour shut (the BGP session goes down) and enabled, a change
// FRR refuses rolled back, every command in the daemon's journal.
func TestRouterCLI(t *testing.T) {
	r := frrssh.Start(t)
	dir := t.TempDir()
	routers := filepath.Join(dir, "routers.yaml")
	rt := r.CLI("br1")
	os.WriteFile(routers, []byte(fmt.Sprintf("timeout: 10s\nrouters:\n  - {name: br1, address: %q, user: %s, key_file: %s, known_hosts: %s}\n",
		rt.Address, rt.User, rt.KeyFile, rt.KnownHosts)), 0o600)
	_, admin, stderr := startTestDaemon(t, 81, dir, "--routers", routers)
	sock := filepath.Join(dir, "sdnoc.sock")
	for began := time.Now(); ; time.Sleep(50 * time.Millisecond) {
		if _, err := os.Stat(sock); err == nil {
			break
		}
		if time.Since(began) > 20*time.Second {
			t.Fatalf("no API socket; daemon:\n%s", stderr.String())
		}
	}

	out, err := run(t, "router", "running", "br1", "--daemon", sock)
	if err != nil || !strings.Contains(out, "router bgp 64502") {
		t.Fatalf("running: %v\n%s", err, out)
	}
	peer := r.Peer.String()
	if _, err = run(t, "router", "neighbor", "br1", "--asn", "64502", "--neighbor", peer, "--shutdown", "--daemon", sock); err == nil || !strings.Contains(err.Error(), "--reason") {
		t.Fatalf("no reason: %v", err)
	}
	out, err = run(t, "router", "neighbor", "br1", "--asn", "64502", "--neighbor", peer, "--shutdown", "--reason", "isp maintenance", "--author", "alice", "--daemon", sock)
	if err != nil || !strings.Contains(out, "+ neighbor "+peer+" shutdown") {
		t.Fatalf("shut: %v\n%s", err, out)
	}
	took := r.WaitSession(t, false)
	t.Logf("sdnoc router neighbor --shutdown: the session was down %v after the command returned", took)
	if out, err = run(t, "router", "neighbor", "br1", "--asn", "64502", "--neighbor", peer, "--enable", "--reason", "done", "--daemon", sock); err != nil {
		t.Fatalf("enable: %v\n%s", err, out)
	}
	r.WaitSession(t, true)

	before := r.Running(t)
	cmds := filepath.Join(dir, "bad.txt")
	os.WriteFile(cmds, []byte("router bgp 64502\n neighbor "+peer+" description set-by-test\n neighbor "+peer+" no-such-keyword 1\n"), 0o600)
	out, err = run(t, "router", "change", "br1", "--commands", cmds, "--reason", "test rollback", "--daemon", sock)
	if err == nil || !strings.Contains(out, "ROLLED BACK") || !strings.Contains(out, "the router is as it was before") {
		t.Fatalf("bad change: %v\n%s", err, out)
	}
	if after := r.Running(t); after != before {
		t.Fatalf("configuration changed by a rolled-back change:\n%s", after)
	}

	metric(t, admin, `sdnoc_controller_router_changes_total{outcome="applied"} 2`, `sdnoc_controller_router_changes_total{outcome="rolled_back"} 1`)
	cl, _ := api.NewClient(sock, "")
	recs, err := cl.Journal(t.Context(), 0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	var changes, commands, failed int
	var sawShutCmd, sawUndo bool
	for _, rec := range recs {
		switch rec.Kind {
		case journal.KindRouter:
			changes++
			if rec.Target != "br1" || rec.Audit == nil || rec.Audit.Reason == "" {
				t.Errorf("router record without target or audit: %+v", rec)
			}
		case journal.KindCommand:
			commands++
			sawShutCmd = sawShutCmd || rec.Command.Input == "neighbor "+peer+" shutdown"
			sawUndo = sawUndo || rec.Command.Phase == "rollback" && rec.Command.Input == "no neighbor "+peer+" description set-by-test"
		case journal.KindRouterDone:
			if rec.Error != "" {
				failed++
			}
		}
	}
	if changes != 3 || failed != 1 || !sawShutCmd || !sawUndo || commands < 12 {
		t.Fatalf("journal: %d changes, %d failed, %d commands, shut seen %v, undo seen %v", changes, failed, commands, sawShutCmd, sawUndo)
	}
}
