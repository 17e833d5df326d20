package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sdnoc/sdnoc/edge/sites"
)

func TestEdgeCheck(t *testing.T) {
	bin := buildSdnoc(t)
	out, err := exec.Command(bin, "edge", "check", "../../edge/examples/sites/shop.yaml", "../../edge/examples/sites/api.yaml").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "shop.yaml: site shop, 2 hosts, 2 origins, 3 rules: ok") {
		t.Fatalf("examples: %v\n%s", err, out)
	}
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	os.WriteFile(bad, []byte("hosts: [a.example]\norigins: [{address: \"10.0.0.300:80\"}]\npool: {origin_keepalive: 2s, idle_timeout: 3s}\n"), 0o644)
	out, err = exec.Command(bin, "edge", "check", bad).CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 ||
		!strings.Contains(string(out), bad+`: origins[0].address: "10.0.0.300:80" is not host:port`) ||
		!strings.Contains(string(out), bad+": pool.idle_timeout: 3s is not below origin_keepalive") {
		t.Fatalf("bad file: %v\n%s", err, out)
	}
}

// The snapper on the real binary: the live site file asks for a dedicated
// address that is taken, so the proxy cannot start (a crash loop after a
// config change); the version of 10 minutes ago has the same problem; the
// supervisor lands on the version of 1 hour ago and the site is served.
func TestEdgeRunRollsBackACrashingConfig(t *testing.T) {
	bin := buildSdnoc(t)
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "origin") }))
	defer origin.Close()
	originAddr := strings.TrimPrefix(origin.URL, "http://")
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	dir, state := t.TempDir(), t.TempDir()
	good := fmt.Sprintf("hosts: [shop.example]\norigins: [{address: %q}]\n", originAddr)
	bad := good + fmt.Sprintf("listen: [%q]\n", taken.Addr().String())
	now := time.Now()
	if _, err := sites.Record(state, "shop", []byte(good), now.Add(-2*time.Hour)); err != nil {
		t.Fatal(err)
	}
	sites.Record(state, "shop", []byte(bad+"# 30 minutes ago\n"), now.Add(-30*time.Minute))
	os.WriteFile(filepath.Join(dir, "shop.yaml"), []byte(bad), 0o644)

	listen, admin := freeAddr(t), freeAddr(t)
	logs := &syncBuffer{}
	cmd := exec.Command(bin, "edge", "run", "--sites", dir, "--state", state, "--listen", listen, "--admin", admin,
		"--crashes", "2", "--within", "1m", "--access-log=false", "--log-format", "json")
	cmd.Stderr, cmd.Stdout = logs, io.Discard
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	defer func() {
		cmd.Process.Kill()
		<-done
	}()

	var served string
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		req, _ := http.NewRequest("GET", "http://"+listen+"/", nil)
		req.Host = "shop.example"
		if resp, err := http.DefaultClient.Do(req); err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			served = string(b)
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if served != "origin" {
		t.Fatalf("never served (%q); logs:\n%s", served, logs)
	}
	resp, err := http.Get("http://" + admin + "/sites")
	if err != nil {
		t.Fatal(err)
	}
	var view struct {
		AsOf  time.Time `json:"as_of"`
		Sites []struct {
			SHA256 string `json:"sha256"`
		} `json:"sites"`
	}
	json.NewDecoder(resp.Body).Decode(&view)
	resp.Body.Close()
	back := now.Sub(view.AsOf)
	if back < 55*time.Minute || back > 65*time.Minute || len(view.Sites) != 1 {
		t.Fatalf("landed as of %v (%v back), sites %+v; want about 1 h back\n%s", view.AsOf, back, view.Sites, logs)
	}
	if !strings.Contains(logs.String(), `"landed_on":"shop@`) || strings.Count(logs.String(), "crash loop: rolling the configuration back") != 2 {
		t.Fatalf("the supervisor did not report both steps and where it landed:\n%s", logs)
	}

	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-done:
		done <- err
		if err != nil {
			t.Fatalf("edge run exited with %v after SIGTERM", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("edge run did not stop")
	}
	if c, err := net.Dial("tcp", listen); err == nil {
		c.Close()
		t.Fatal("the proxy still listens after the supervisor stopped")
	}
}
