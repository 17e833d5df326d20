package edge

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sdnoc/sdnoc/edge/inspect"
	"github.com/sdnoc/sdnoc/edge/sites"
)

// testSite is a site with the defaults the site files give, serving hosts
// from origins.
func testSite(name string, hosts []string, origins ...string) *sites.Site {
	s := &sites.Site{
		Name:  name,
		Hosts: hosts,
		Pool: sites.Pool{OriginKeepAlive: 5 * time.Second, IdleTimeout: 3750 * time.Millisecond, Warm: 2, MaxIdle: 64,
			DialTimeout: 2 * time.Second, LivenessCheck: true, Retry: true},
		HealthCheck: sites.HealthCheck{Interval: 2 * time.Second, Timeout: time.Second, Rise: 2, Fall: 3, ExpectMin: 200, ExpectMax: 399},
		Upload:      sites.Upload{EarlyResponse: "relay", Linger: 5 * time.Second},
		Timeouts:    sites.Timeouts{ResponseHeader: 60 * time.Second, ClientIdle: 60 * time.Second},
		AccessLog:   true,
		SHA256:      name,
	}
	for _, o := range origins {
		s.Origins = append(s.Origins, sites.Origin{Address: o, Weight: 1})
	}
	return s
}

func testLogger(t testing.TB) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

// startProxy starts a proxy on loopback serving ss, stopped at cleanup.
func startProxy(t testing.TB, cfg Config, ss ...*sites.Site) *Proxy {
	t.Helper()
	return startPrepared(t, cfg, nil, ss...)
}

// startPrepared is startProxy with prepare run on the proxy before it
// starts.
func startPrepared(t testing.TB, cfg Config, prepare func(*Proxy), ss ...*sites.Site) *Proxy {
	t.Helper()
	if cfg.Listen == "" && cfg.ListenTLS == "" {
		cfg.Listen = "127.0.0.1:0"
	}
	def := DefaultConfig()
	if cfg.ClientIdle == 0 {
		cfg.ClientIdle = def.ClientIdle
	}
	if cfg.DrainDeadline == 0 {
		cfg.DrainDeadline = def.DrainDeadline
	}
	if cfg.Guard == (def.Guard) || cfg.Guard.Window == 0 {
		cfg.Guard = def.Guard
	}
	if cfg.Admin == "" {
		cfg.Admin = "127.0.0.1:0"
	}
	p, err := New(cfg, Deps{Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	p.Apply(&sites.Set{Sites: ss})
	if prepare != nil {
		prepare(p)
	}
	if err := p.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		p.Stop(ctx)
	})
	return p
}

func originAddr(t testing.TB, h http.Handler) string {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

// rawExchange sends raw bytes on a new connection and returns everything
// the proxy answers until it closes the connection or 2 s pass.
func rawExchange(t *testing.T, addr, req string) string {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := io.WriteString(c, req); err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(c)
	return string(b)
}

func TestProxyServesAndForwards(t *testing.T) {
	var mu sync.Mutex
	var seen []*http.Request
	origin := originAddr(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		seen = append(seen, r)
		mu.Unlock()
		switch r.URL.Path {
		case "/chunked":
			w.Write([]byte("part1-"))
			w.(http.Flusher).Flush()
			w.Write([]byte("part2"))
		case "/echo":
			w.Header().Set("X-Len", fmt.Sprint(len(body)))
			w.Write(body)
		default:
			w.Header().Set("X-Path", r.URL.RequestURI())
			fmt.Fprintf(w, "hello %s", r.Host)
		}
	}))
	p := startProxy(t, Config{}, testSite("shop", []string{"shop.example", "*.cdn.example"}, origin))
	base := "http://" + p.Addr()
	get := func(host, path string) (*http.Response, string) {
		req, _ := http.NewRequest("GET", base+path, nil)
		req.Host = host
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, string(b)
	}
	resp, body := get("Shop.Example:80", "/a?b=c")
	if resp.StatusCode != 200 || body != "hello Shop.Example:80" || resp.Header.Get("X-Path") != "/a?b=c" {
		t.Fatalf("GET: %d %q %v", resp.StatusCode, body, resp.Header)
	}
	if resp, body = get("img.cdn.example", "/chunked"); resp.StatusCode != 200 || body != "part1-part2" {
		t.Fatalf("chunked: %d %q", resp.StatusCode, body)
	}
	if resp, _ = get("other.example", "/"); resp.StatusCode != 404 {
		t.Fatalf("unknown host: %d, want 404", resp.StatusCode)
	}
	// A POST with a body, and the forwarding fields.
	req, _ := http.NewRequest("POST", base+"/echo", strings.NewReader(strings.Repeat("x", 100000)))
	req.Host = "shop.example"
	req.Header.Set("X-Forwarded-For", "203.0.113.9")
	req.Header.Set("Connection", "X-Secret")
	req.Header.Set("X-Secret", "hop")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || len(b) != 100000 || resp.Header.Get("X-Len") != "100000" {
		t.Fatalf("POST: %d, %d bytes", resp.StatusCode, len(b))
	}
	mu.Lock()
	last := seen[len(seen)-1]
	mu.Unlock()
	if got := last.Header.Get("X-Forwarded-For"); got != "203.0.113.9, 127.0.0.1" {
		t.Errorf("X-Forwarded-For = %q, want the client's appended", got)
	}
	if last.Header.Get("X-Forwarded-Proto") != "http" || last.Header.Get("X-Forwarded-Host") != "shop.example" {
		t.Errorf("forwarding fields: %v", last.Header)
	}
	if last.Header.Get("X-Secret") != "" {
		t.Errorf("a field named in Connection was forwarded: %v", last.Header)
	}
}

func TestProxyRefusesSmuggling(t *testing.T) {
	origin := originAddr(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }))
	p := startProxy(t, Config{}, testSite("shop", []string{"shop.example"}, origin))
	for name, tc := range map[string]struct{ req, status string }{
		"CL and TE":          {"POST / HTTP/1.1\r\nHost: shop.example\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", "400"},
		"two CLs":            {"POST / HTTP/1.1\r\nHost: shop.example\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd", "400"},
		"space before colon": {"GET / HTTP/1.1\r\nHost : shop.example\r\n\r\n", "400"},
		"obs-fold":           {"GET / HTTP/1.1\r\nHost: shop.example\r\nX: a\r\n b\r\n\r\n", "400"},
		"TE gzip":            {"POST / HTTP/1.1\r\nHost: shop.example\r\nTransfer-Encoding: gzip\r\n\r\n", "501"},
		"no host":            {"GET / HTTP/1.1\r\n\r\n", "400"},
		"bad version":        {"GET / HTTP/2.0\r\nHost: shop.example\r\n\r\n", "400"},
		"huge head":          {"GET / HTTP/1.1\r\nHost: shop.example\r\nX: " + strings.Repeat("a", 70000) + "\r\n\r\n", "431"},
		"fine":               {"GET / HTTP/1.1\r\nHost: shop.example\r\nConnection: close\r\n\r\n", "200"},
	} {
		t.Run(name, func(t *testing.T) {
			got := rawExchange(t, p.Addr(), tc.req)
			if !strings.HasPrefix(got, "HTTP/1.1 "+tc.status+" ") {
				t.Fatalf("answer %q, want status %s", clip([]byte(got)), tc.status)
			}
		})
	}
}

func TestProxyKeepAliveAndPipelining(t *testing.T) {
	origin := originAddr(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, r.URL.Path) }))
	p := startProxy(t, Config{}, testSite("shop", []string{"shop.example"}, origin))
	c, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	io.WriteString(c, "GET /one HTTP/1.1\r\nHost: shop.example\r\n\r\nHEAD /two HTTP/1.1\r\nHost: shop.example\r\n\r\nGET /three HTTP/1.1\r\nHost: shop.example\r\n\r\n")
	br := bufio.NewReader(c)
	for _, want := range []struct {
		method, body string
	}{{"GET", "/one"}, {"HEAD", ""}, {"GET", "/three"}} {
		resp, err := http.ReadResponse(br, &http.Request{Method: want.method})
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 || string(b) != want.body {
			t.Fatalf("%s: %d %q, want %q", want.method, resp.StatusCode, b, want.body)
		}
		if want.method == "HEAD" && resp.ContentLength != 4 {
			t.Fatalf("HEAD Content-Length %d, want the GET's 4", resp.ContentLength)
		}
	}
}

// Requests are spread over a site's origins; one that fails its health
// check gets none until it passes again.
func TestLoadBalancingAndHealthChecks(t *testing.T) {
	var down sync.Map
	newOrigin := func(name string) string {
		return originAddr(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if _, ok := down.Load(name); ok && r.URL.Path == "/health" {
				http.Error(w, "sick", http.StatusServiceUnavailable)
				return
			}
			io.WriteString(w, name)
		}))
	}
	s := testSite("shop", []string{"shop.example"}, newOrigin("a"), newOrigin("b"))
	s.Origins[1].Weight = 3
	s.HealthCheck = sites.HealthCheck{Path: "/health", Interval: 20 * time.Millisecond, Timeout: 500 * time.Millisecond, Rise: 2, Fall: 2, ExpectMin: 200, ExpectMax: 299}
	p := startProxy(t, Config{}, s)
	count := func(n int) map[string]int {
		got := map[string]int{}
		for range n {
			req, _ := http.NewRequest("GET", "http://"+p.Addr()+"/", nil)
			req.Host = "shop.example"
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			got[string(b)]++
		}
		return got
	}
	if got := count(400); got["a"] != 100 || got["b"] != 300 {
		t.Fatalf("spread %v, want a:100 b:300 by weight", got)
	}
	down.Store("b", true)
	waitFor(t, func() bool { return !p.table.Load().byName["shop"].origins[1].healthy.Load() })
	if got := count(50); got["b"] != 0 || got["a"] != 50 {
		t.Fatalf("with b down: %v, want everything on a", got)
	}
	down.Delete("b")
	waitFor(t, func() bool { return p.table.Load().byName["shop"].origins[1].healthy.Load() })
	if got := count(40); got["b"] == 0 {
		t.Fatalf("b back up but got nothing: %v", got)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 5 s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

type panicInspector struct{}

func (panicInspector) Inspect(*inspect.Request) (inspect.Verdict, error) {
	panic("inspection module bug")
}

// Fail-open: a rule module that panics for one site is switched off there
// and its requests still reach the origin; other sites are still inspected.
func TestInspectionFailsOpenPerSite(t *testing.T) {
	origin := originAddr(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "origin") }))
	a := testSite("a", []string{"a.example"}, origin)
	b := testSite("b", []string{"b.example"}, origin)
	for _, s := range []*sites.Site{a, b} {
		s.Rules = []sites.Rule{{Name: "no-admin", Path: "^/admin", Action: "block", Status: 403}}
	}
	p := startPrepared(t, Config{}, func(p *Proxy) { p.table.Load().byName["a"].inspector = panicInspector{} }, a, b)
	get := func(host, path string) string {
		return rawExchange(t, p.Addr(), "GET "+path+" HTTP/1.1\r\nHost: "+host+"\r\nConnection: close\r\n\r\n")
	}
	for i := range 3 {
		if got := get("a.example", "/admin"); !strings.HasPrefix(got, "HTTP/1.1 200 ") || !strings.HasSuffix(got, "origin") {
			t.Fatalf("request %d to the site whose module panics: %q", i, clip([]byte(got)))
		}
	}
	if got := get("b.example", "/admin"); !strings.HasPrefix(got, "HTTP/1.1 403 ") || !strings.Contains(got, "no-admin") {
		t.Fatalf("other site no longer inspected: %q", clip([]byte(got)))
	}
	if got := get("b.example", "/shop"); !strings.HasPrefix(got, "HTTP/1.1 200 ") {
		t.Fatalf("other site, allowed path: %q", clip([]byte(got)))
	}
	st := p.guard.Status()
	if len(st.Disabled) != 1 || st.Disabled[0].Site != "a" || st.Global {
		t.Fatalf("guard status %+v", st)
	}
	resp, err := http.Get("http://" + p.AdminAddr() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	m, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(m), `sdnoc_edge_inspection_disabled{site="a"} 1`) {
		t.Fatal("/metrics does not show site a's inspection switched off")
	}
}
