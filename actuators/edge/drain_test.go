package edge

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	proxy "github.com/sdnoc/sdnoc/edge"
)

// startProxy runs a real edge proxy with only its admin API on loopback.
func startProxy(t *testing.T) *proxy.Proxy {
	t.Helper()
	cfg := proxy.DefaultConfig()
	cfg.Listen, cfg.Admin = "127.0.0.1:0", "127.0.0.1:0"
	p, err := proxy.New(cfg, proxy.Deps{})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Stop(context.Background()) })
	return p
}

func healthz(t *testing.T, addr string) int {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func TestDrainRealProxies(t *testing.T) {
	a, b := startProxy(t), startProxy(t)
	cfg := DefaultConfig()
	cfg.Deadline = 5 * time.Second
	d, err := New(cfg, Deps{})
	if err != nil {
		t.Fatal(err)
	}
	addrs := []string{a.AdminAddr(), b.AdminAddr()}
	if err := d.Drain(t.Context(), addrs); err != nil {
		t.Fatal(err)
	}
	for _, p := range []*proxy.Proxy{a, b} {
		if st := p.DrainStatus(); !st.Draining {
			t.Fatalf("%s not draining", p.AdminAddr())
		}
		if c := healthz(t, p.AdminAddr()); c != http.StatusServiceUnavailable {
			t.Fatalf("healthz of a draining proxy: %d", c)
		}
	}
	if err := d.Undrain(t.Context(), addrs); err != nil {
		t.Fatal(err)
	}
	for _, p := range []*proxy.Proxy{a, b} {
		if c := healthz(t, p.AdminAddr()); c != http.StatusOK {
			t.Fatalf("healthz after undrain: %d", c)
		}
	}
	// A proxy that is not there is named in the error; the others still
	// drain.
	err = d.Drain(t.Context(), []string{"127.0.0.1:1", a.AdminAddr()})
	if err == nil || !strings.Contains(err.Error(), "edge proxy 127.0.0.1:1") {
		t.Fatalf("unreachable proxy: err = %v", err)
	}
	if !a.DrainStatus().Draining {
		t.Fatal("the reachable proxy was not drained")
	}
	if _, err := New(Config{}, Deps{}); err == nil {
		t.Fatal("zero timeout accepted")
	}
}
