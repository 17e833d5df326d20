package main

import (
	"context"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/sdnoc/sdnoc/lab/loopback"
)

// buildSdnoc builds the binary once for the subprocess tests.
func buildSdnoc(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "sdnoc")
	cmd := exec.CommandContext(t.Context(), "go", "build", "-o", bin, ".")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// daemonProc runs `sdnoc daemon` as a process of its own, so that it can
// be signalled and can die like the real thing.
type daemonProc struct {
	cmd  *exec.Cmd
	done chan error
}

func startDaemon(t *testing.T, bin string, args ...string) *daemonProc {
	t.Helper()
	cmd := exec.Command(bin, append([]string{"daemon", "--log-level", "warn"}, args...)...)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &daemonProc{cmd: cmd, done: make(chan error, 1)}
	go func() { p.done <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-p.done
	})
	return p
}

func (p *daemonProc) stop(t *testing.T, sig os.Signal) {
	t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-p.done:
		p.done <- err // for the cleanup
		if sig == syscall.SIGTERM && err != nil {
			t.Fatalf("daemon exited with %v after SIGTERM", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("daemon did not exit")
	}
}

func waitEstablished(t *testing.T, isp *loopback.ISP, want bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		up, err := isp.Established(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if up == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%v: session established = %v after 30 s, want %v", isp, up, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func waitRIB(t *testing.T, x *loopback.LabISP, n int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	if rs, _, err := x.Router.WaitRoutes(ctx, func(rs []netip.Prefix) bool { return len(rs) == n }, 10*time.Millisecond); err != nil {
		t.Fatalf("%s's RIB = %v, want %d prefixes: %v", x.Name, rs, n, err)
	}
}

// TestDaemonRestartKeepsRoutes: SIGTERM stops the daemon without closing
// its BGP sessions cleanly, so the ISPs keep the edge's routes (graceful
// restart) while it is gone; restarted on the same journal, it
// re-announces exactly what it had before any End-of-RIB, keeps the link
// it had withdrawn withdrawn, and no prefix disappears from a healthy
// ISP at any moment once the new sessions are up (invariant 7).
func TestDaemonRestartKeepsRoutes(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and restarts it")
	}
	bin := buildSdnoc(t)
	lab, err := loopback.StartLab(t.Context(), 76, 65000,
		[]loopback.LinkSpec{{Name: "isp1", PeerASN: 64501}, {Name: "isp2", PeerASN: 64502}, {Name: "isp3", PeerASN: 64503}}, nil)
	t.Cleanup(func() { lab.Stop(context.Background()) })
	if err != nil {
		t.Fatal(err)
	}
	args := []string{"--config", labTopology(t, lab), "--journal", filepath.Join(t.TempDir(), "journal.jsonl"), "--listen", freeAddr(t)}
	d := startDaemon(t, bin, args...)
	for _, x := range lab.ISPs {
		waitRIB(t, x, 2)
	}
	lab.ISPs[1].SetBlackhole(true)
	waitRIB(t, lab.ISPs[1], 0)

	d.stop(t, syscall.SIGTERM)
	for _, x := range lab.ISPs {
		waitEstablished(t, x.Router, false)
	}
	// The ISPs are not read while the edge reconnects: GoBGP v3.37.0's
	// ListPath races the new OPEN on stale paths (see bgp.TestGracefulRestart).
	for i, want := range []int{2, 0, 2} {
		rs, err := lab.ISPs[i].Router.Routes(t.Context())
		if err != nil || len(rs) != want {
			t.Fatalf("%s after SIGTERM: routes %v, %v; want %d kept by graceful restart", lab.ISPs[i].Name, rs, err, want)
		}
	}

	startDaemon(t, bin, args...)
	for _, x := range lab.ISPs {
		waitEstablished(t, x.Router, true)
	}
	// From the first moment the sessions are up again, the healthy ISPs
	// hold both prefixes in every sample until the restart settles, and
	// the dark one never gets them.
	until := time.Now().Add(5 * time.Second)
	samples := 0
	for time.Now().Before(until) {
		for i, want := range []int{2, 0, 2} {
			rs, err := lab.ISPs[i].Router.Routes(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			if len(rs) != want {
				t.Fatalf("%s after the restart: %v; want %d prefixes at every moment", lab.ISPs[i].Name, rs, want)
			}
		}
		samples++
		time.Sleep(5 * time.Millisecond)
	}
	t.Logf("%d samples over 5 s after the restart: no prefix flapped", samples)
}

// TestDaemonWithdrawOnExit: with --withdraw-on-exit, SIGTERM takes every
// prefix off every ISP before the daemon exits.
func TestDaemonWithdrawOnExit(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := buildSdnoc(t)
	lab, err := loopback.StartLab(t.Context(), 77, 65000,
		[]loopback.LinkSpec{{Name: "isp1", PeerASN: 64501}, {Name: "isp2", PeerASN: 64502}, {Name: "isp3", PeerASN: 64503}}, nil)
	t.Cleanup(func() { lab.Stop(context.Background()) })
	if err != nil {
		t.Fatal(err)
	}
	d := startDaemon(t, bin, "--config", labTopology(t, lab), "--journal", filepath.Join(t.TempDir(), "journal.jsonl"),
		"--listen", freeAddr(t), "--withdraw-on-exit")
	for _, x := range lab.ISPs {
		waitRIB(t, x, 2)
	}
	d.stop(t, syscall.SIGTERM)
	for _, x := range lab.ISPs {
		waitEstablished(t, x.Router, false)
		if rs, err := x.Router.Routes(t.Context()); err != nil || len(rs) != 0 {
			t.Fatalf("%s after SIGTERM with --withdraw-on-exit: %v, %v; want no routes", x.Name, rs, err)
		}
	}
}
