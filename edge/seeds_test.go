package edge

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/sdnoc/sdnoc/edge/sites"
)

// Seed 002: an origin whose keep-alive idle timeout is 2 s, and requests
// arriving with random gaps of 0–5 s. Each stream of requests has a site
// (so a pool) of its own, as a quiet site does in a PoP: one stream at a
// time would take hours for a few thousand requests. Through our pools
// (idle timeout below the origin's, liveness check, one retry) no request
// fails, in either engine; through naive pools (idle timeout above the
// origin's, no check, no retry) on the same traffic, many do. The naive
// pools run in the goroutine engine: the event loop hears an idle
// connection close the moment the origin closes it, so even a naive pool
// there reuses none.
func TestSeed002StalePooledConnections(t *testing.T) {
	if testing.Short() {
		t.Skip("a minute of traffic with idle gaps")
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "ok")
	}))
	srv.Config.IdleTimeout = 2 * time.Second
	srv.Start()
	t.Cleanup(srv.Close)
	origin := strings.TrimPrefix(srv.URL, "http://")

	const streams, perStream = 200, 15 // 3,000 requests each way
	var oursSites, goSites []*sites.Site
	for i := range streams {
		ours := testSite(fmt.Sprintf("ours%d", i), []string{fmt.Sprintf("s%d.ours.example", i)}, origin)
		ours.Pool.OriginKeepAlive = 2 * time.Second
		ours.Pool.IdleTimeout = 1500 * time.Millisecond
		naive := testSite(fmt.Sprintf("naive%d", i), []string{fmt.Sprintf("s%d.naive.example", i)}, origin)
		naive.Pool.IdleTimeout = 10 * time.Second
		naive.Pool.LivenessCheck = false
		naive.Pool.Retry = false
		naive.Pool.Warm = 0
		oursSites = append(oursSites, ours)
		goSites = append(goSites, ours, naive)
	}
	engines := map[string]*Proxy{EngineGoroutines: startProxy(t, Config{Engine: EngineGoroutines}, goSites...)}
	if loopEngine {
		engines[EngineLoop] = startProxy(t, Config{Engine: EngineLoop}, oursSites...)
	}

	run := func(p *Proxy, kind string) (failed int64, sample string) {
		tr := &http.Transport{MaxIdleConnsPerHost: streams, IdleConnTimeout: time.Minute}
		defer tr.CloseIdleConnections()
		client := &http.Client{Transport: tr, Timeout: 10 * time.Second}
		var fails atomic.Int64
		var once sync.Once
		var wg sync.WaitGroup
		for i := range streams {
			wg.Go(func() {
				rng := rand.New(rand.NewPCG(1, uint64(i)))
				for range perStream {
					time.Sleep(time.Duration(rng.Int64N(int64(5 * time.Second))))
					req, _ := http.NewRequest("GET", "http://"+p.Addr()+"/", nil)
					req.Host = fmt.Sprintf("s%d.%s.example", i, kind)
					resp, err := client.Do(req)
					if err != nil {
						fails.Add(1)
						once.Do(func() { sample = err.Error() })
						continue
					}
					b, _ := io.ReadAll(resp.Body)
					resp.Body.Close()
					if resp.StatusCode != 200 || string(b) != "ok" {
						fails.Add(1)
						once.Do(func() { sample = fmt.Sprintf("%d %q", resp.StatusCode, b) })
					}
				}
			})
		}
		wg.Wait()
		return fails.Load(), sample
	}
	var naiveFailed int64
	var naiveSample string
	oursFailed := map[string]int64{}
	oursSample := map[string]string{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for name, p := range engines {
		wg.Go(func() {
			n, sample := run(p, "ours")
			mu.Lock()
			oursFailed[name], oursSample[name] = n, sample
			mu.Unlock()
		})
	}
	wg.Go(func() { naiveFailed, naiveSample = run(engines[EngineGoroutines], "naive") })
	wg.Wait()

	var stale float64
	for i := range streams {
		stale += testutil.ToFloat64(engines[EngineGoroutines].m.stale.WithLabelValues(fmt.Sprintf("naive%d", i), origin, "reuse_failed"))
	}
	var expired float64
	for name, p := range engines {
		var exp, retries float64
		for i := range streams {
			exp += testutil.ToFloat64(p.m.expired.WithLabelValues(fmt.Sprintf("ours%d", i), origin))
			retries += testutil.ToFloat64(p.m.retries.WithLabelValues(fmt.Sprintf("ours%d", i)))
		}
		expired += exp
		t.Logf("ours (%s engine): %d of %d failed, %v idle connections closed by us first, %v retries",
			name, oursFailed[name], streams*perStream, exp, retries)
		if oursFailed[name] != 0 {
			t.Errorf("%d requests failed through our pools (%s engine), want 0; e.g. %s", oursFailed[name], name, oursSample[name])
		}
	}
	t.Logf("naive: %d failed (%v stale reuses), e.g. %s", naiveFailed, stale, naiveSample)
	if naiveFailed < streams*perStream/10 {
		t.Errorf("naive pools failed only %d requests: the traffic does not reproduce seed 002", naiveFailed)
	}
	if expired == 0 {
		t.Errorf("our pools closed no idle connection at their idle timeout")
	}
	if stale == 0 {
		t.Errorf("the naive pools counted no stale connection")
	}
}

// The liveness check alone catches connections the origin closed while
// idle: with an idle timeout above the origin's and no retry, a peek
// before reuse finds them.
func TestLivenessCheckFindsClosedConnection(t *testing.T) {
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }))
	srv.Config.IdleTimeout = 200 * time.Millisecond
	srv.Start()
	t.Cleanup(srv.Close)
	origin := strings.TrimPrefix(srv.URL, "http://")
	s := testSite("shop", []string{"shop.example"}, origin)
	s.Pool.IdleTimeout = 10 * time.Second
	s.Pool.Retry = false
	s.Pool.Warm = 0
	p := startProxy(t, Config{}, s)
	for i := range 3 {
		got := rawExchange(t, p.Addr(), "GET / HTTP/1.1\r\nHost: shop.example\r\nConnection: close\r\n\r\n")
		if !strings.HasPrefix(got, "HTTP/1.1 200 ") {
			t.Fatalf("request %d: %q", i, clip([]byte(got)))
		}
		time.Sleep(400 * time.Millisecond) // the origin closes the idle connection
	}
	if n := testutil.ToFloat64(p.m.stale.WithLabelValues("shop", origin, "liveness")); n < 2 {
		t.Fatalf("liveness check found %v closed connections, want 2", n)
	}
}

// patternReader yields n bytes of a repeating pattern without holding them.
type patternReader struct {
	left int64
	sent atomic.Int64 // read by the test while a client still sends
}

func (r *patternReader) Read(p []byte) (int, error) {
	if r.left <= 0 {
		return 0, io.EOF
	}
	n := min(int64(len(p)), r.left)
	for i := range p[:n] {
		p[i] = byte('a' + (r.left-int64(i))%26)
	}
	r.left -= n
	r.sent.Add(n)
	return int(n), nil
}

const upload = 100 << 20

// Seed 000: a 100 MB upload to an origin that answers 413 after reading
// 1 KB. The client gets the 413 within a second and nothing hangs.
func TestSeed000EarlyResponseToUpload(t *testing.T) {
	origin := originAddr(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.ReadFull(r.Body, make([]byte, 1024))
		http.Error(w, "too large", http.StatusRequestEntityTooLarge)
	}))
	p := startProxy(t, Config{}, testSite("shop", []string{"shop.example"}, origin))

	start := time.Now()
	body := &patternReader{left: upload}
	req, _ := http.NewRequest("POST", "http://"+p.Addr()+"/upload", body)
	req.Host = "shop.example"
	req.ContentLength = upload
	client := &http.Client{Timeout: 20 * time.Second}
	resp, err := client.Do(req)
	took := time.Since(start)
	sent := body.sent.Load()
	if err != nil {
		t.Fatalf("upload: %v after %v", err, took)
	}
	resp.Body.Close()
	if resp.StatusCode != 413 {
		t.Fatalf("status %d, want 413", resp.StatusCode)
	}
	if took > time.Second {
		t.Fatalf("413 took %v, want under 1 s", took)
	}
	// A proxy that took the whole body before answering would have made
	// the client send all of it.
	if sent > upload/2 {
		t.Fatalf("the client had sent %d of %d bytes when the 413 came", sent, upload)
	}
	t.Logf("413 after %v, %d bytes sent", took, sent)
	waitIdle(t, p)
}

// An origin that answers early but keeps the connection open, and goes on
// reading: the rest of the body keeps flowing to it (the fix in seed 000),
// and the connection serves the next request.
func TestEarlyResponseKeepsUpstreamOpen(t *testing.T) {
	got := make(chan int64, 2)
	origin := rawOrigin(t, func(c net.Conn, br *bufio.Reader) {
		for {
			req, err := http.ReadRequest(br)
			if err != nil {
				return
			}
			io.CopyN(io.Discard, req.Body, 1024)
			io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nearly")
			n, _ := io.Copy(io.Discard, req.Body)
			got <- n + 1024
		}
	})
	p := startProxy(t, Config{}, testSite("shop", []string{"shop.example"}, origin))
	// A raw client that goes on sending its body after the answer, as
	// curl does (Go's client stops and closes once it has a response).
	c, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	br := bufio.NewReader(c)
	const size = 20 << 20
	for i := range 2 {
		start := time.Now()
		wrote := make(chan error, 1)
		go func() {
			_, err := fmt.Fprintf(c, "POST /upload HTTP/1.1\r\nHost: shop.example\r\nContent-Length: %d\r\n\r\n", size)
			if err == nil {
				_, err = io.Copy(c, &patternReader{left: size})
			}
			wrote <- err
		}()
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("upload %d: %v", i, err)
		}
		answered := time.Since(start)
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 || string(b) != "early" {
			t.Fatalf("upload %d: %d %q", i, resp.StatusCode, b)
		}
		if err := <-wrote; err != nil {
			t.Fatalf("upload %d: sending the body: %v", i, err)
		}
		select {
		case n := <-got:
			if n != size {
				t.Fatalf("upload %d: the origin read %d bytes, want all %d", i, n, size)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("upload %d: the origin never got the whole body", i)
		}
		t.Logf("upload %d: answered after %v, fully delivered after %v", i, answered, time.Since(start))
	}
	if n := testutil.ToFloat64(p.m.early.WithLabelValues("shop", "relayed")); n != 2 {
		t.Errorf("early responses relayed = %v, want 2", n)
	}
}

// With early_response: abort, an early response stops the upload at once:
// the origin sees its connection closed before the body ends.
func TestEarlyResponseAbort(t *testing.T) {
	got := make(chan int64, 1)
	origin := rawOrigin(t, func(c net.Conn, br *bufio.Reader) {
		req, err := http.ReadRequest(br)
		if err != nil {
			return
		}
		io.CopyN(io.Discard, req.Body, 1024)
		io.WriteString(c, "HTTP/1.1 401 Unauthorized\r\nContent-Length: 4\r\n\r\nnope")
		n, _ := io.Copy(io.Discard, req.Body)
		got <- n + 1024
	})
	s := testSite("shop", []string{"shop.example"}, origin)
	s.Upload.EarlyResponse = "abort"
	p := startProxy(t, Config{}, s)
	req, _ := http.NewRequest("POST", "http://"+p.Addr()+"/upload", &patternReader{left: upload})
	req.Host = "shop.example"
	req.ContentLength = upload
	resp, err := http.DefaultClient.Do(req)
	if err == nil {
		resp.Body.Close()
		if resp.StatusCode != 401 {
			t.Fatalf("status %d, want 401", resp.StatusCode)
		}
	}
	select {
	case n := <-got:
		if n >= upload {
			t.Fatalf("the origin read the whole body (%d bytes); abort should have cut it", n)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the origin's connection was not closed")
	}
	waitIdle(t, p)
}

// A normal large upload still arrives whole.
func TestLargeUploadIntact(t *testing.T) {
	origin := originAddr(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := sha256.New()
		n, err := io.Copy(h, r.Body)
		if err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		fmt.Fprintf(w, "%d %s", n, hex.EncodeToString(h.Sum(nil)))
	}))
	p := startProxy(t, Config{}, testSite("shop", []string{"shop.example"}, origin))
	want := sha256.New()
	io.Copy(want, &patternReader{left: upload})
	wantLine := fmt.Sprintf("%d %s", upload, hex.EncodeToString(want.Sum(nil)))
	for _, chunked := range []bool{false, true} {
		req, _ := http.NewRequest("PUT", "http://"+p.Addr()+"/upload", io.MultiReader(&patternReader{left: upload}))
		req.Host = "shop.example"
		if !chunked {
			req.ContentLength = upload
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(b) != wantLine {
			t.Fatalf("chunked=%v: origin got %q, want %q", chunked, b, wantLine)
		}
	}
}

// waitIdle waits until the proxy has no request in flight.
func waitIdle(t *testing.T, p *Proxy) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for p.inflight.Load() != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d requests still in flight: something hangs", p.inflight.Load())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// rawOrigin serves each connection with handle, on loopback.
func rawOrigin(t *testing.T, handle func(net.Conn, *bufio.Reader)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Go(func() {
				defer c.Close()
				handle(c, bufio.NewReader(c))
			})
		}
	})
	return ln.Addr().String()
}
