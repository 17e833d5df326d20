package main

import (
	"context"
	"encoding/json"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sdnoc/sdnoc/controller/api"
	"github.com/sdnoc/sdnoc/lab/loopback"
)

// run runs one sdnoc command to completion and returns its output.
func run(t *testing.T, args ...string) (string, error) {
	t.Helper()
	root := newRoot()
	var out syncBuffer
	root.SetOut(&out)
	root.SetErr(&out)
	root.SetArgs(args)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	err := root.ExecuteContext(ctx)
	return out.String(), err
}

// The NOC's commands against a real daemon on a loopback lab: status,
// playbook plan, apply (the ISP's own RIB empties), list, release (it
// fills again), and the API over TCP refusing a client without the token.
func TestPlaybookCLI(t *testing.T) {
	dir := t.TempDir()
	token := filepath.Join(dir, "token")
	if err := os.WriteFile(token, []byte("t0ken-for-the-test\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	apiTCP := freeAddr(t)
	lab, admin, stderr := startTestDaemon(t, 80, dir, "--api-tcp", apiTCP, "--api-token-file", token)
	sock := filepath.Join(dir, "sdnoc.sock") // the default: beside the journal
	rib := func(i int, what string, cond func([]netip.Prefix) bool) {
		t.Helper()
		wctx, wcancel := context.WithTimeout(t.Context(), 20*time.Second)
		defer wcancel()
		if rs, _, err := lab.ISPs[i].Router.WaitRoutes(wctx, cond, 20*time.Millisecond); err != nil {
			t.Fatalf("%s: %s's RIB = %v: %v\ndaemon:\n%s", what, lab.ISPs[i].Name, rs, err, stderr.String())
		}
	}
	both := func(rs []netip.Prefix) bool { return len(rs) == 2 }
	none := func(rs []netip.Prefix) bool { return len(rs) == 0 }
	for i := range 3 {
		rib(i, "start", both)
	}
	time.Sleep(1500 * time.Millisecond) // probe windows, a session poll

	out, err := run(t, "status", "--daemon", sock)
	if err != nil {
		t.Fatalf("status: %v\n%s", err, out)
	}
	for _, want := range []string{"sdnoc daemon-test at ", "POP", "pop1  isp2", "healthy", "2/2", "up", "no playbook active"} {
		if !strings.Contains(out, want) {
			t.Errorf("status lacks %q:\n%s", want, out)
		}
	}

	pbFile := filepath.Join(dir, "isp2-out.yaml")
	os.WriteFile(pbFile, []byte("kind: disable-isp\nisp: isp2\nreason: isp2 maintenance\nauthor: alice\nexpires: 1h\n"), 0o600)
	out, err = run(t, "playbook", "plan", pbFile, "--daemon", sock)
	if err != nil {
		t.Fatalf("plan: %v\n%s", err, out)
	}
	if !strings.Contains(out, "playbook isp2-out (disable-isp) would change:") || !strings.Contains(out, "pop1/isp2 (neighbor "+lab.ISPs[1].Neighbor.Addr().String()+", AS64502):") ||
		!strings.Contains(out, "withdraw 2: 198.51.100.0/24 2001:db8:100::/48") {
		t.Fatalf("plan output:\n%s", out)
	}
	rib(1, "after plan (nothing applied)", both)

	if out, err = run(t, "playbook", "apply", pbFile, "--daemon", sock); err != nil {
		t.Fatalf("apply: %v\n%s", err, out)
	}
	rib(1, "after apply", none)
	rib(0, "isp1 untouched", both)

	out, _ = run(t, "status", "--daemon", sock)
	if !strings.Contains(out, "playbook isp2-out until") || !strings.Contains(out, "isp2-out  disable-isp by alice (unix uid") {
		t.Fatalf("status under the playbook:\n%s", out)
	}
	metric(t, admin, "sdnoc_controller_playbooks_active 1", `sdnoc_controller_playbook_writes_total{outcome="applied"} 1`)
	out, _ = run(t, "playbook", "list", "--daemon", sock, "--json")
	var list []struct {
		Override struct{ ID string }
		Audit    struct{ Author, Via string }
	}
	if err := json.Unmarshal([]byte(out), &list); err != nil || len(list) != 1 || list[0].Override.ID != "isp2-out" || list[0].Audit.Author != "alice" {
		t.Fatalf("list --json = %s (%v)", out, err)
	}

	// Over TCP: no token, no answer; with it, the same view.
	if out, err = run(t, "status", "--daemon", "http://"+apiTCP); err == nil || !strings.Contains(err.Error(), "HTTP 401") {
		t.Fatalf("status over TCP without a token: %v\n%s", err, out)
	}
	if !strings.Contains(stderr.String(), "api request refused: no valid bearer token") {
		t.Errorf("the refusal is not logged:\n%s", stderr.String())
	}
	if out, err = run(t, "status", "--daemon", "http://"+apiTCP, "--token-file", token, "--json"); err != nil || !strings.Contains(out, `"isp2-out"`) {
		t.Fatalf("status over TCP with the token: %v\n%s", err, out)
	}

	if _, err = run(t, "playbook", "release", "isp2-out", "--daemon", sock); err == nil || !strings.Contains(err.Error(), "--reason") {
		t.Fatalf("release without a reason: %v", err)
	}
	if out, err = run(t, "playbook", "release", "isp2-out", "--reason", "isp2 done", "--author", "bob", "--daemon", sock); err != nil {
		t.Fatalf("release: %v\n%s", err, out)
	}
	rib(1, "after release", both)
	if _, err = run(t, "playbook", "release", "isp2-out", "--reason", "again", "--daemon", sock); err == nil || !strings.Contains(err.Error(), "no active playbook") {
		t.Fatalf("second release: %v", err)
	}

	// Draining the only PoP means nothing: an error, no plan.
	drain := filepath.Join(dir, "drain.yaml")
	os.WriteFile(drain, []byte("kind: drain-pop\npop: pop1\nreason: r\nauthor: a\nexpires: 1h\n"), 0o600)
	if out, err = run(t, "playbook", "apply", drain, "--daemon", sock); err == nil || !strings.Contains(err.Error(), "only PoP") {
		t.Fatalf("drain of the only PoP: %v\n%s", err, out)
	}
	// Refused: taking out every ISP strands the prefixes; exit status 1.
	all := filepath.Join(dir, "all-out.yaml")
	os.WriteFile(all, []byte("kind: disable-isp\nisp: isp1\nreason: r\nauthor: a\nexpires: 1h\n"), 0o600)
	os.WriteFile(filepath.Join(dir, "isp2.yaml"), []byte("kind: disable-isp\nisp: isp2\nreason: r\nauthor: a\nexpires: 1h\n"), 0o600)
	os.WriteFile(filepath.Join(dir, "isp3.yaml"), []byte("kind: disable-isp\nisp: isp3\nreason: r\nauthor: a\nexpires: 1h\n"), 0o600)
	for _, f := range []string{all, filepath.Join(dir, "isp2.yaml")} {
		if out, err = run(t, "playbook", "apply", f, "--daemon", sock); err != nil {
			t.Fatalf("apply %s: %v\n%s", f, err, out)
		}
	}
	out, err = run(t, "playbook", "apply", filepath.Join(dir, "isp3.yaml"), "--daemon", sock)
	if !errors.Is(err, errFailed) || !strings.Contains(out, "REFUSED: 198.51.100.0/24 would be published nowhere") || !strings.Contains(out, "refused: nothing was applied") {
		t.Fatalf("last ISP out: %v\n%s", err, out)
	}
	rib(2, "isp3 keeps them", both)
	if out, err = run(t, "playbook", "apply", filepath.Join(dir, "isp2.yaml"), "--daemon", sock); err == nil || !strings.Contains(err.Error(), "isp2 already pins") {
		t.Fatalf("apply twice: %v\n%s", err, out)
	}
	restore := filepath.Join(dir, "restore.yaml")
	os.WriteFile(restore, []byte("kind: restore\nall: true\nreason: done\nauthor: carol\n"), 0o600)
	if out, err = run(t, "playbook", "apply", restore, "--daemon", sock); err != nil || !strings.Contains(out, "releases: all-out, isp2") {
		t.Fatalf("restore: %v\n%s", err, out)
	}
	rib(1, "after the refusal", both)

	metric(t, admin, "sdnoc_controller_playbooks_active 0", `sdnoc_controller_playbook_writes_total{outcome="applied"} 3`,
		`sdnoc_controller_playbook_writes_total{outcome="denied"} 3`, `sdnoc_controller_playbook_writes_total{outcome="released"} 3`)
	cl, _ := api.NewClient(sock, "")
	recs, err := cl.Journal(t.Context(), 0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	var audit []string
	for _, r := range recs {
		switch {
		case r.Manual != nil:
			audit = append(audit, string(r.Kind)+" "+r.Manual.Audit.Author)
		case r.Audit != nil:
			audit = append(audit, string(r.Kind)+" "+r.Audit.Author)
		}
	}
	if strings.Join(audit, ", ") != "override alice, release bob, denied a, override a, override a, denied a, denied a, release carol, release carol" {
		t.Fatalf("journal audit: %v", audit)
	}
}

// metric waits until the daemon's /metrics holds every line of want.
func metric(t *testing.T, admin string, want ...string) {
	t.Helper()
	var body string
	for began := time.Now(); time.Since(began) < 5*time.Second; time.Sleep(100 * time.Millisecond) {
		_, b, err := get("http://" + admin + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		body = b
		missing := false
		for _, w := range want {
			missing = missing || !strings.Contains(body, w+"\n")
		}
		if !missing {
			return
		}
	}
	for _, w := range want {
		if !strings.Contains(body, w+"\n") {
			t.Errorf("/metrics lacks %q", w)
		}
	}
}

// startTestDaemon runs `sdnoc daemon` in this process on a three-ISP
// loopback lab on 127.base.x.y, its journal (and so its API socket) in
// dir, plus args; it is stopped at cleanup. It returns the lab, the
// daemon's --listen address and its standard error.
func startTestDaemon(t *testing.T, base byte, dir string, args ...string) (*loopback.Lab, string, *syncBuffer) {
	t.Helper()
	lab, err := loopback.StartLab(t.Context(), base, 65000,
		[]loopback.LinkSpec{{Name: "isp1", PeerASN: 64501}, {Name: "isp2", PeerASN: 64502}, {Name: "isp3", PeerASN: 64503}}, nil)
	t.Cleanup(func() { lab.Stop(context.Background()) })
	if err != nil {
		t.Fatal(err)
	}
	admin := freeAddr(t)
	ctx, cancel := context.WithCancel(t.Context())
	root := newRoot()
	stderr := &syncBuffer{}
	root.SetErr(stderr)
	root.SetArgs(append([]string{"daemon", "--config", labTopology(t, lab), "--journal", filepath.Join(dir, "journal.jsonl"), "--listen", admin,
		"--log-level", "warn"}, args...))
	done := make(chan error, 1)
	go func() { done <- root.ExecuteContext(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			t.Error("daemon did not stop")
		}
	})
	return lab, admin, stderr
}
