package api

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sdnoc/sdnoc/actuators/cli"
	"github.com/sdnoc/sdnoc/controller"
	"github.com/sdnoc/sdnoc/decisions"
	"github.com/sdnoc/sdnoc/journal"
	"github.com/sdnoc/sdnoc/playbooks"
)

// fakeCtl stands in for the controller: the API's job is transport,
// auth and errors; the controller's own tests run it on real BGP peers.
type fakeCtl struct {
	mu      sync.Mutex
	applied []string // name via
	refuse  bool
}

func (f *fakeCtl) Health() error { return nil }
func (f *fakeCtl) Status() []decisions.LinkStatus {
	return []decisions.LinkStatus{{Link: "pop1/isp1", PoP: "pop1", State: decisions.Healthy}}
}
func (f *fakeCtl) Publications(context.Context) ([]decisions.Publication, error) {
	return []decisions.Publication{{Link: "pop1/isp1"}}, nil
}
func (f *fakeCtl) Alerts() []decisions.Alert {
	return []decisions.Alert{{Link: "pop1/isp2", Kind: "unknown", Text: "pop1/isp2: state unknown"}}
}
func (f *fakeCtl) Overrides() []journal.Manual { return nil }
func (f *fakeCtl) Records(after uint64, limit int) ([]journal.Record, error) {
	return []journal.Record{{Seq: after + 1, Note: fmt.Sprint(limit)}}, nil
}
func (f *fakeCtl) PlanPlaybook(_ context.Context, pb *playbooks.Playbook) (controller.Plan, error) {
	return controller.Plan{Playbook: pb.Name}, nil
}
func (f *fakeCtl) ApplyPlaybook(_ context.Context, pb *playbooks.Playbook, via string) (controller.Plan, error) {
	if f.refuse {
		return controller.Plan{Playbook: pb.Name, Refusals: []string{"x would be stranded"}}, fmt.Errorf("%w: x would be stranded", controller.ErrRefused)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.applied = append(f.applied, pb.Name+" "+via)
	return controller.Plan{Playbook: pb.Name}, nil
}
func (f *fakeCtl) Release(_ context.Context, id string, a journal.Audit) error {
	if id != "known" {
		return errors.New("no active playbook")
	}
	return nil
}

func (f *fakeCtl) ChangeRouter(_ context.Context, ch cli.Change, a journal.Audit) (cli.Result, error) {
	if ch.Router != "br1" {
		return cli.Result{Router: ch.Router, RolledBack: true, Diff: "+x\n"}, fmt.Errorf("%w: boom", cli.ErrRolledBack)
	}
	return cli.Result{Router: ch.Router, Diff: "+ " + ch.Commands[0] + "\n"}, nil
}
func (f *fakeCtl) RouterRunning(_ context.Context, name string) (string, error) {
	return "hostname " + name, nil
}

var book = &playbooks.Playbook{Name: "isp2-out", Kind: playbooks.DisableISP, ISP: "isp2", Reason: "r", Author: "alice", Expiry: time.Hour}

func serve(t *testing.T, s *Server, ln net.Listener) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
}

func TestUnixSocket(t *testing.T) {
	f := &fakeCtl{}
	s, err := New(Config{Topology: "lab"}, Deps{Controller: f})
	if err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(t.TempDir(), "api.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	serve(t, s, ln)
	c, _ := NewClient(sock, "")
	ctx := t.Context()
	st, err := c.Status(ctx)
	if err != nil || st.Topology != "lab" || len(st.Links) != 1 || st.Health != "ok" || len(st.Alerts) != 1 || st.Alerts[0].Kind != "unknown" {
		t.Fatalf("status = %+v, %v", st, err)
	}
	if pubs, err := c.Publications(ctx); err != nil || len(pubs) != 1 || pubs[0].Link != "pop1/isp1" {
		t.Fatalf("publications = %+v, %v", pubs, err)
	}
	if p, err := c.Plan(ctx, book); err != nil || p.Playbook != "isp2-out" {
		t.Fatalf("plan = %+v, %v", p, err)
	}
	if _, err := c.Apply(ctx, book); err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf("isp2-out unix uid %d pid %d", os.Getuid(), os.Getpid())
	if len(f.applied) != 1 || f.applied[0] != want {
		t.Fatalf("applied = %q; want %q (the audit names the socket's peer)", f.applied, want)
	}
	f.refuse = true
	p, err := c.Apply(ctx, book)
	var ae *APIError
	if !errors.As(err, &ae) || ae.Code != http.StatusConflict || len(p.Refusals) != 1 {
		t.Fatalf("refused apply: plan %+v, err %v; want 409 with the plan", p, err)
	}
	bad := *book
	bad.Expiry = 48 * time.Hour
	if _, err := c.Plan(ctx, &bad); !errors.As(err, &ae) || ae.Code != http.StatusBadRequest || !strings.Contains(err.Error(), "expiry") {
		t.Fatalf("48h playbook: err = %v; want 400 naming expiry", err)
	}
	if err := c.Release(ctx, "unknown", Release{Author: "a", Reason: "r"}); !errors.As(err, &ae) || ae.Code != http.StatusNotFound {
		t.Fatalf("release unknown: %v", err)
	}
	if err := c.Release(ctx, "known", Release{Author: "a"}); !errors.As(err, &ae) || ae.Code != http.StatusBadRequest {
		t.Fatalf("release without reason: %v", err)
	}
	if err := c.Release(ctx, "known", Release{Author: "a", Reason: "r"}); err != nil {
		t.Fatal(err)
	}
	rr, err := c.ChangeRouter(ctx, "br1", RouterChange{Commands: []string{"router bgp 1"}, Author: "a", Reason: "r"})
	if err != nil || rr.Result.Diff != "+ router bgp 1\n" {
		t.Fatalf("router change = %+v, %v", rr, err)
	}
	rr, err = c.ChangeRouter(ctx, "br2", RouterChange{Commands: []string{"x"}, Author: "a", Reason: "r"})
	if !errors.As(err, &ae) || ae.Code != http.StatusBadGateway || !rr.Result.RolledBack || rr.Result.Diff != "+x\n" {
		t.Fatalf("failed router change = %+v, %v; want 502 with the result", rr, err)
	}
	if _, err = c.ChangeRouter(ctx, "br1", RouterChange{Commands: []string{"a\nb"}, Author: "a", Reason: "r"}); !errors.As(err, &ae) || ae.Code != http.StatusBadRequest {
		t.Fatalf("multi-line command: %v", err)
	}
	if _, err = c.ChangeRouter(ctx, "br1", RouterChange{Commands: []string{"a"}}); !errors.As(err, &ae) || ae.Code != http.StatusBadRequest {
		t.Fatalf("no author: %v", err)
	}
	if txt, err := c.RouterRunning(ctx, "br1"); err != nil || txt != "hostname br1" {
		t.Fatalf("running = %q, %v", txt, err)
	}
	recs, err := c.Journal(ctx, 41, 7)
	if err != nil || len(recs) != 1 || recs[0].Seq != 42 || recs[0].Note != "7" {
		t.Fatalf("journal = %+v, %v", recs, err)
	}
}

func TestTCPNeedsToken(t *testing.T) {
	dir := t.TempDir()
	tok := filepath.Join(dir, "token")
	if err := os.WriteFile(tok, []byte("s3cret-token\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	f := &fakeCtl{}
	var logs bytes.Buffer
	var mu sync.Mutex
	log := slog.New(slog.NewTextHandler(writerFunc(func(b []byte) (int, error) {
		mu.Lock()
		defer mu.Unlock()
		return logs.Write(b)
	}), nil))
	if _, err := New(Config{TokenFile: tok}, Deps{Controller: f}); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("world-readable token file: err = %v", err)
	}
	os.Chmod(tok, 0o600)
	empty := filepath.Join(dir, "empty")
	os.WriteFile(empty, nil, 0o600)
	if _, err := New(Config{TokenFile: empty}, Deps{Controller: f}); err == nil || !strings.Contains(err.Error(), "empty") {
		t.Fatalf("empty token file: err = %v", err)
	}
	// TCP without any token file is refused outright.
	noTok, _ := New(Config{}, Deps{Controller: f})
	ln0, _ := net.Listen("tcp", "127.0.0.1:0")
	if err := noTok.Serve(t.Context(), ln0); err == nil || !strings.Contains(err.Error(), "token") {
		t.Fatalf("TCP without token: %v", err)
	}
	ln0.Close()

	s, err := New(Config{TokenFile: tok}, Deps{Controller: f, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	serve(t, s, ln)
	url := "http://" + ln.Addr().String()
	ctx := t.Context()
	for _, token := range []string{"", "wrong"} {
		c, _ := NewClient(url, token)
		_, err := c.Apply(ctx, book)
		var ae *APIError
		if !errors.As(err, &ae) || ae.Code != http.StatusUnauthorized {
			t.Fatalf("token %q: err = %v; want 401", token, err)
		}
		if _, err := c.Status(ctx); !errors.As(err, &ae) || ae.Code != http.StatusUnauthorized {
			t.Fatalf("token %q: status err = %v; want 401 (reads need the token too)", token, err)
		}
	}
	if len(f.applied) != 0 {
		t.Fatalf("applied without a token: %v", f.applied)
	}
	mu.Lock()
	n := strings.Count(logs.String(), "no valid bearer token")
	mu.Unlock()
	if n != 4 {
		t.Fatalf("%d refusals logged, want 4:\n%s", n, logs.String())
	}
	c, _ := NewClient(url, "s3cret-token")
	if _, err := c.Apply(ctx, book); err != nil {
		t.Fatal(err)
	}
	if len(f.applied) != 1 || !strings.HasPrefix(f.applied[0], "isp2-out tcp 127.0.0.1:") {
		t.Fatalf("applied = %q", f.applied)
	}
}

type writerFunc func([]byte) (int, error)

func (w writerFunc) Write(b []byte) (int, error) { return w(b) }
