package edge

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"errors"
	"io"
	"math/big"
	"net"
	"net/http"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/net/http2"

	"github.com/sdnoc/sdnoc/edge/sites"
)

// Drain: requests in flight finish, health says draining, new connections
// are refused so that clients (and the PoP's load balancing) go to another
// proxy; undrain takes traffic again.
func TestDrain(t *testing.T) {
	origin := originAddr(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			time.Sleep(1500 * time.Millisecond)
		}
		io.WriteString(w, "served")
	}))
	a := startProxy(t, Config{}, testSite("shop", []string{"shop.example"}, origin))
	b := startProxy(t, Config{}, testSite("shop", []string{"shop.example"}, origin))

	// A client that tries proxy A first and goes to B when A refuses.
	client := &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			var d net.Dialer
			c, err := d.DialContext(ctx, network, a.Addr())
			if err == nil {
				return c, nil
			}
			return d.DialContext(ctx, network, b.Addr())
		},
	}}
	get := func(path string) (string, error) {
		req, _ := http.NewRequest("GET", "http://shop.example"+path, nil)
		resp, err := client.Do(req)
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.Status + " " + string(body), nil
	}

	// Slow requests in flight on A, each on its own connection.
	const slow = 5
	results := make(chan string, slow)
	for range slow {
		go func() {
			c, err := net.Dial("tcp", a.Addr())
			if err != nil {
				results <- err.Error()
				return
			}
			defer c.Close()
			io.WriteString(c, "GET /slow HTTP/1.1\r\nHost: shop.example\r\n\r\n")
			b, _ := io.ReadAll(c) // until A closes: it must, once drained
			results <- string(b)
		}()
	}
	time.Sleep(300 * time.Millisecond)
	admin := "http://" + a.AdminAddr()
	resp, err := http.Post(admin+"/drain?deadline=10s", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	var st DrainStatus
	json.NewDecoder(resp.Body).Decode(&st)
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted || !st.Draining || st.InFlight != slow {
		t.Fatalf("POST /drain: %d %+v, want 202, draining, %d in flight", resp.StatusCode, st, slow)
	}
	if resp, err := http.Get(admin + "/healthz"); err != nil || resp.StatusCode != 503 {
		t.Fatalf("healthz while draining: %v %v, want 503", resp, err)
	}
	if _, err := net.Dial("tcp", a.Addr()); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("a new connection to the draining proxy: %v, want refused", err)
	}
	client.Transport.(*http.Transport).CloseIdleConnections()
	if got, err := get("/"); err != nil || got != "200 OK served" {
		t.Fatalf("a new request during the drain: %q %v, want it served by B", got, err)
	}
	for range slow {
		got := <-results
		if !strings.HasPrefix(got, "HTTP/1.1 200 ") || !strings.HasSuffix(got, "served") || !strings.Contains(got, "Connection: close") {
			t.Fatalf("a request in flight during the drain: %q", got)
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for st = a.DrainStatus(); !st.Done; st = a.DrainStatus() {
		if time.Now().After(deadline) {
			t.Fatalf("drain never done: %+v", st)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if st.InFlight != 0 || st.Connections != 0 {
		t.Fatalf("drained with %+v", st)
	}

	if resp, err := http.Post(admin+"/undrain", "", nil); err != nil || resp.StatusCode != 200 {
		t.Fatalf("undrain: %v %v", resp, err)
	}
	if got := rawExchange(t, a.Addr(), "GET / HTTP/1.1\r\nHost: shop.example\r\nConnection: close\r\n\r\n"); !strings.HasSuffix(got, "served") {
		t.Fatalf("after undrain: %q", got)
	}
	if resp, err := http.Get(admin + "/healthz"); err != nil || resp.StatusCode != 200 {
		t.Fatalf("healthz after undrain: %v %v", resp, err)
	}
}

// A request longer than the drain's deadline is cut at the deadline.
func TestDrainDeadline(t *testing.T) {
	origin := originAddr(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done(): // the drain cut the proxy's connection
		case <-time.After(5 * time.Second):
		}
	}))
	a := startProxy(t, Config{}, testSite("shop", []string{"shop.example"}, origin))
	done := make(chan struct{})
	go func() {
		defer close(done)
		rawExchange(t, a.Addr(), "GET / HTTP/1.1\r\nHost: shop.example\r\n\r\n")
	}()
	time.Sleep(200 * time.Millisecond)
	start := time.Now()
	a.Drain(300 * time.Millisecond)
	for !a.DrainStatus().Done {
		if time.Since(start) > 3*time.Second {
			t.Fatal("the drain did not end at its deadline")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if a.DrainStatus().Connections != 0 {
		t.Fatal("connections left after the deadline")
	}
	<-done
}

// selfSigned makes a certificate for names.
func selfSigned(t *testing.T, names ...string) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: names[0]}, DNSNames: names,
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, pool
}

// TLS with the site's certificate chosen by SNI, over HTTP/2 and
// HTTP/1.1, relaying to the same origin pools; an early response to an
// upload over HTTP/2 too.
func TestTLSAndHTTP2(t *testing.T) {
	origin := originAddr(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/upload" {
			io.ReadFull(r.Body, make([]byte, 1024))
			http.Error(w, "too large", http.StatusRequestEntityTooLarge)
			return
		}
		io.WriteString(w, r.Header.Get("X-Forwarded-Proto")+" "+r.Host)
	}))
	cert, roots := selfSigned(t, "shop.example")
	s := testSite("shop", []string{"shop.example"}, origin)
	s.TLS = &sites.TLS{Certificate: cert}
	p := startProxy(t, Config{ListenTLS: "127.0.0.1:0"}, s)
	dial := func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, p.TLSAddr())
	}
	h2 := &http.Client{Transport: &http2.Transport{TLSClientConfig: &tls.Config{RootCAs: roots},
		DialTLSContext: func(ctx context.Context, network, addr string, cfg *tls.Config) (net.Conn, error) {
			c, err := dial(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			tc := tls.Client(c, cfg)
			return tc, tc.HandshakeContext(ctx)
		}}}
	h1 := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}, DialContext: dial}}
	for name, c := range map[string]*http.Client{"HTTP/2.0": h2, "HTTP/1.1": h1} {
		resp, err := c.Get("https://shop.example/")
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.Proto != name || string(b) != "https shop.example" {
			t.Fatalf("%s: %s %q", name, resp.Proto, b)
		}
		start := time.Now()
		var wg sync.WaitGroup
		req, _ := http.NewRequest("POST", "https://shop.example/upload", &patternReader{left: upload})
		req.ContentLength = upload
		resp, err = c.Do(req)
		if err != nil {
			t.Fatalf("%s upload: %v", name, err)
		}
		resp.Body.Close()
		wg.Wait()
		if resp.StatusCode != 413 || time.Since(start) > time.Second {
			t.Fatalf("%s upload: %d after %v, want 413 within 1 s", name, resp.StatusCode, time.Since(start))
		}
	}
	// No certificate for a name no site serves.
	conn, err := tls.Dial("tcp", p.TLSAddr(), &tls.Config{ServerName: "other.example", RootCAs: roots})
	if err == nil {
		conn.Close()
		t.Fatal("TLS handshake for an unknown name succeeded")
	}
}

// A request whose head came before the drain but whose body comes after
// is served, not cut: the client sent it to this proxy and may not retry
// a POST elsewhere.
func TestDrainRequestComingIn(t *testing.T) {
	origin := originAddr(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		io.WriteString(w, "got "+string(b))
	}))
	for _, engine := range engines() {
		t.Run(engine, func(t *testing.T) {
			p := startProxy(t, Config{Engine: engine}, testSite("shop", []string{"shop.example"}, origin))
			c, err := net.Dial("tcp", p.Addr())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(5 * time.Second))
			io.WriteString(c, "POST /form HTTP/1.1\r\nHost: shop.example\r\nContent-Length: 10\r\n\r\nhello")
			time.Sleep(200 * time.Millisecond) // more than a loop's tick
			resp, err := http.Post("http://"+p.AdminAddr()+"/drain?deadline=5s", "", nil)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			time.Sleep(300 * time.Millisecond)
			io.WriteString(c, "world")
			got, err := io.ReadAll(c)
			if err != nil || !strings.HasPrefix(string(got), "HTTP/1.1 200 ") || !strings.HasSuffix(string(got), "got helloworld") || !strings.Contains(string(got), "Connection: close") {
				t.Fatalf("got %q, %v; want the request served and the connection closed", got, err)
			}
		})
	}
}
