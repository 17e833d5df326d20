package edge

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/sdnoc/sdnoc/edge/sites"
)

// engines are the plain HTTP/1.1 engines this platform has.
func engines() []string {
	if loopEngine {
		return []string{EngineLoop, EngineGoroutines}
	}
	return []string{EngineGoroutines}
}

// Both engines relay the same things the same way: a keep-alive sequence
// of GETs, HEAD, 204, a large body to a slow reader (the loop holds the
// origin back), chunked responses (one with a trailer, one of 8 MiB in
// many chunks), one delimited by the origin's close, request bodies, a
// 103 before the response (the loop hands that exchange
// to the goroutine engine mid-way), and pipelined requests.
func TestEnginesRelay(t *testing.T) {
	big := bytes.Repeat([]byte("0123456789abcdef"), 1<<19) // 8 MiB
	origin := originAddr(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/big":
			w.Header().Set("Content-Length", fmt.Sprint(len(big)))
			w.Write(big)
		case "/nocontent":
			w.WriteHeader(http.StatusNoContent)
		case "/chunked":
			w.Header().Set("Trailer", "X-Sum")
			for i := range 3 {
				fmt.Fprintf(w, "part %d;", i)
				w.(http.Flusher).Flush()
			}
			w.Header().Set("X-Sum", "3")
		case "/bigchunked":
			for rest := big; len(rest) > 0; rest = rest[min(len(rest), 100_000):] {
				w.Write(rest[:min(len(rest), 100_000)])
				w.(http.Flusher).Flush()
			}
		case "/events":
			// Server-sent events the old way: no length, no chunks, the
			// end of the body is the origin's close.
			w.Header().Set("Content-Type", "text/event-stream")
			w.Header().Set("Transfer-Encoding", "identity")
			for i := range 3 {
				fmt.Fprintf(w, "data: %d\n\n", i)
				w.(http.Flusher).Flush()
			}
		case "/post":
			b, _ := io.ReadAll(r.Body)
			fmt.Fprintf(w, "%s %d %x", r.Method, len(b), sha256.Sum256(b))
		case "/hints":
			w.Header().Set("Link", "</a.css>; rel=preload")
			w.WriteHeader(http.StatusEarlyHints)
			io.WriteString(w, "hinted")
		default:
			w.Header().Set("X-Seen-For", r.Header.Get("X-Forwarded-For"))
			io.WriteString(w, "path "+r.URL.Path)
		}
	}))
	for _, engine := range engines() {
		t.Run(engine, func(t *testing.T) {
			p := startProxy(t, Config{Engine: engine}, testSite("shop", []string{"shop.example"}, origin))
			c, br := dialProxy(t, p, 20*time.Second)
			get := func(method, path string) (*http.Response, []byte) {
				t.Helper()
				fmt.Fprintf(c, "%s %s HTTP/1.1\r\nHost: shop.example\r\n\r\n", method, path)
				resp, err := http.ReadResponse(br, &http.Request{Method: method})
				if err != nil {
					t.Fatalf("%s %s: %v", method, path, err)
				}
				b, err := io.ReadAll(resp.Body)
				if err != nil {
					t.Fatalf("%s %s: body: %v", method, path, err)
				}
				return resp, b
			}
			for i := range 3 {
				resp, b := get("GET", fmt.Sprintf("/n%d", i))
				if resp.StatusCode != 200 || string(b) != fmt.Sprintf("path /n%d", i) || resp.Header.Get("X-Seen-For") != "127.0.0.1" {
					t.Fatalf("GET /n%d: %d %q for %q", i, resp.StatusCode, b, resp.Header.Get("X-Seen-For"))
				}
			}
			if resp, b := get("HEAD", "/x"); resp.StatusCode != 200 || len(b) != 0 {
				t.Fatalf("HEAD: %d %q", resp.StatusCode, b)
			}
			if resp, _ := get("GET", "/nocontent"); resp.StatusCode != 204 {
				t.Fatalf("204: got %d", resp.StatusCode)
			}
			// The big body, read slowly at first.
			io.WriteString(c, "GET /big HTTP/1.1\r\nHost: shop.example\r\n\r\n")
			time.Sleep(300 * time.Millisecond)
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatal(err)
			}
			h := sha256.New()
			if _, err := io.Copy(h, resp.Body); err != nil || !bytes.Equal(h.Sum(nil), sha(big)) {
				t.Fatalf("big body: %v, checksum differs", err)
			}
			if resp, b := get("GET", "/chunked"); resp.StatusCode != 200 || string(b) != "part 0;part 1;part 2;" || len(resp.TransferEncoding) != 1 {
				t.Fatalf("chunked: %d %q %q", resp.StatusCode, b, resp.TransferEncoding)
			}
			if resp, b := get("GET", "/bigchunked"); resp.StatusCode != 200 || !bytes.Equal(sha(b), sha(big)) {
				t.Fatalf("big chunked body: %d, %d bytes, checksum differs", resp.StatusCode, len(b))
			}
			if resp, b := get("GET", "/events"); resp.StatusCode != 200 || string(b) != "data: 0\n\ndata: 1\n\ndata: 2\n\n" || resp.Close || len(resp.TransferEncoding) != 1 {
				t.Fatalf("until close: %d %q, close %v, %q; want it chunked on a kept connection", resp.StatusCode, b, resp.Close, resp.TransferEncoding)
			}
			// Request bodies the loop takes: whole in one write, and in
			// two (it waits for the rest).
			post(t, c, br, 1000, false)
			post(t, c, br, 64<<10, true)
			if resp, _ := get("GET", "/hints"); resp.StatusCode != 103 || resp.Header.Get("Link") == "" {
				t.Fatalf("early hints: %d %q", resp.StatusCode, resp.Header)
			}
			if resp, err := http.ReadResponse(br, nil); err != nil || resp.StatusCode != 200 {
				t.Fatalf("after a 103: %v %v", resp, err)
			} else if b, _ := io.ReadAll(resp.Body); string(b) != "hinted" {
				t.Fatalf("after a 103: %q", b)
			}
			// An unknown host gets a 404 and the connection stays, as the
			// response says.
			io.WriteString(c, "GET / HTTP/1.1\r\nHost: nowhere.example\r\n\r\n")
			if resp, err := http.ReadResponse(br, nil); err != nil || resp.StatusCode != 404 || resp.Close {
				t.Fatalf("unknown host: %v %v", resp, err)
			} else {
				io.ReadAll(resp.Body)
			}
			// Two pipelined requests answered in order.
			io.WriteString(c, "GET /p1 HTTP/1.1\r\nHost: shop.example\r\n\r\nGET /p2 HTTP/1.1\r\nHost: shop.example\r\n\r\n")
			for _, want := range []string{"path /p1", "path /p2"} {
				resp, err := http.ReadResponse(br, nil)
				if err != nil {
					t.Fatal(err)
				}
				b, _ := io.ReadAll(resp.Body)
				if string(b) != want {
					t.Fatalf("pipelined: %q, want %q", b, want)
				}
			}
			// A body too large for the loop: the goroutine engine
			// streams it, and keeps the connection.
			post(t, c, br, 100<<10, false)
			if resp, b := get("GET", "/after-upload"); string(b) != "path /after-upload" {
				t.Fatalf("after an upload: %d %q", resp.StatusCode, b)
			}
			waitIdle(t, p)
			if engine == EngineLoop {
				// The loop relayed all but the unknown host and the
				// upload; the engine kept the connection after the upload
				// (more may follow) and gave it back after the GET.
				if req, back := testutil.ToFloat64(p.m.handovers), testutil.ToFloat64(p.m.handbacks); req != 2 || back != 2 {
					t.Fatalf("loop handovers: %v, %v back; want 2, 2", req, back)
				}
			}
		})
	}
}

// post sends a POST of size bytes on c, in one write or with the body
// 50 ms after the head, and checks the origin got it whole.
func post(t *testing.T, c net.Conn, br *bufio.Reader, size int, split bool) {
	t.Helper()
	body := bytes.Repeat([]byte("p"), size)
	head := fmt.Sprintf("POST /post HTTP/1.1\r\nHost: shop.example\r\nContent-Length: %d\r\n\r\n", size)
	if split {
		io.WriteString(c, head)
		time.Sleep(50 * time.Millisecond)
		c.Write(body)
	} else {
		c.Write(append([]byte(head), body...))
	}
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("POST of %d bytes: %v", size, err)
	}
	b, _ := io.ReadAll(resp.Body)
	if want := fmt.Sprintf("POST %d %x", size, sha256.Sum256(body)); string(b) != want || resp.Close {
		t.Fatalf("POST of %d bytes: %q (close %v), want %q", size, b, resp.Close, want)
	}
}

// dialProxy opens a client connection to p's plain listener, closed at
// cleanup, that gives up after timeout.
func dialProxy(t *testing.T, p *Proxy, timeout time.Duration) (net.Conn, *bufio.Reader) {
	t.Helper()
	c, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(timeout))
	return c, bufio.NewReader(c)
}

func sha(b []byte) []byte {
	s := sha256.Sum256(b)
	return s[:]
}

// An origin that does not answer within the site's response_header
// timeout gets a 504 to the client, and the client's connection goes on.
func TestEnginesResponseHeaderTimeout(t *testing.T) {
	origin := rawOrigin(t, func(c net.Conn, br *bufio.Reader) {
		h := &head{}
		for {
			if _, err := readHead(br, h); err != nil {
				return
			}
			if err := parseRequest(h); err == nil && string(h.target) == "/slow" {
				continue // never answers
			}
			io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
		}
	})
	for _, engine := range engines() {
		t.Run(engine, func(t *testing.T) {
			s := testSite("shop", []string{"shop.example"}, origin)
			s.Timeouts.ResponseHeader = 300 * time.Millisecond
			p := startProxy(t, Config{Engine: engine}, s)
			c, br := dialProxy(t, p, 5*time.Second)
			start := time.Now()
			io.WriteString(c, "GET /slow HTTP/1.1\r\nHost: shop.example\r\n\r\n")
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatal(err)
			}
			io.ReadAll(resp.Body)
			took := time.Since(start)
			if resp.StatusCode != 504 || took < 300*time.Millisecond || took > 2*time.Second {
				t.Fatalf("got %d after %v; want 504 after 300 ms", resp.StatusCode, took)
			}
			io.WriteString(c, "GET /fast HTTP/1.1\r\nHost: shop.example\r\n\r\n")
			resp, err = http.ReadResponse(br, nil)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != 200 || string(b) != "ok" {
				t.Fatalf("after the 504: %d %q", resp.StatusCode, b)
			}
		})
	}
}

// An origin that closes every connection just after answering, without
// saying so: whichever way each engine learns it (the loop hears the close
// while the connection is idle, the goroutine engine peeks or retries), no
// request fails, and the stale connections are counted.
func TestEnginesOriginClosesPooled(t *testing.T) {
	origin := rawOrigin(t, func(c net.Conn, br *bufio.Reader) {
		h := &head{}
		if _, err := readHead(br, h); err != nil {
			return
		}
		io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
		time.Sleep(time.Millisecond)
	})
	for _, engine := range engines() {
		t.Run(engine, func(t *testing.T) {
			s := testSite("shop", []string{"shop.example"}, origin)
			s.Pool.Warm = 0
			p := startProxy(t, Config{Engine: engine}, s)
			c, br := dialProxy(t, p, 20*time.Second)
			for i := range 300 {
				io.WriteString(c, "GET / HTTP/1.1\r\nHost: shop.example\r\n\r\n")
				resp, err := http.ReadResponse(br, nil)
				if err != nil {
					t.Fatalf("request %d: %v", i, err)
				}
				b, _ := io.ReadAll(resp.Body)
				if resp.StatusCode != 200 || string(b) != "ok" {
					t.Fatalf("request %d: %d %q", i, resp.StatusCode, b)
				}
				if i%3 == 0 {
					time.Sleep(3 * time.Millisecond) // let some closes arrive first
				}
			}
			stale := testutil.ToFloat64(p.m.stale.WithLabelValues("shop", origin, "liveness")) +
				testutil.ToFloat64(p.m.stale.WithLabelValues("shop", origin, "reuse_failed"))
			if stale == 0 {
				t.Fatal("no stale connection counted, though the origin closed every one")
			}
			t.Logf("%v stale connections counted, %v retries", stale, testutil.ToFloat64(p.m.retries.WithLabelValues("shop")))
		})
	}
}

func TestEngineConfig(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Engine = "threads"
	err := cfg.Validate()
	if err == nil || !strings.Contains(err.Error(), `engine: "threads" is not an engine`) {
		t.Fatalf("Validate = %v; want the engine refused with its fix", err)
	}
	cfg.Engine = EngineGoroutines
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	if want := map[bool]string{true: EngineLoop, false: EngineGoroutines}[loopEngine]; DefaultConfig().Engine != want {
		t.Fatalf("default engine %q, want %q", DefaultConfig().Engine, want)
	}
}

// FuzzEngines sends the same client bytes through both engines and wants
// the same answer, byte for byte (but for the origin's Date): the loop
// must relay exactly what the goroutine engine does, and hand over
// whatever it does not relay itself.
func FuzzEngines(f *testing.F) {
	if !loopEngine {
		f.Skip("no event loop on this platform")
	}
	origin := originAddr(f, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		w.Header().Set("X-Echo", fmt.Sprintf("%s %s %d %q", r.Method, r.URL.RequestURI(), len(body), r.Header.Get("X-Forwarded-For")))
		switch {
		case strings.HasPrefix(r.URL.Path, "/chunk"):
			// One flush, so that the engine re-chunks it the same way
			// each time: chunk sizes follow reads, not the content.
			io.WriteString(w, "part 0;part 1;part 2;")
			w.(http.Flusher).Flush()
		case strings.HasPrefix(r.URL.Path, "/hint"):
			w.Header().Set("Link", "</a.css>; rel=preload")
			w.WriteHeader(http.StatusEarlyHints)
			io.WriteString(w, "hinted")
		case strings.HasPrefix(r.URL.Path, "/close"):
			w.Header().Set("Transfer-Encoding", "identity")
			io.WriteString(w, "until the end")
		case strings.HasPrefix(r.URL.Path, "/big"):
			w.Header().Set("Content-Length", "5000")
			w.Write(bytes.Repeat([]byte("b"), 5000))
		case strings.HasPrefix(r.URL.Path, "/empty"):
			w.WriteHeader(http.StatusNoContent)
		default:
			io.WriteString(w, "ok "+r.URL.Path)
		}
	}))
	site := func() *sites.Site { return testSite("shop", []string{"shop.example"}, origin) }
	loopP := startProxy(f, Config{Engine: EngineLoop}, site())
	goP := startProxy(f, Config{Engine: EngineGoroutines}, site())
	for _, s := range []string{
		"GET / HTTP/1.1\r\nHost: shop.example\r\n\r\n",
		"GET /a HTTP/1.1\r\nHost: shop.example\r\n\r\nGET /chunk HTTP/1.1\r\nHost: shop.example\r\n\r\nGET /b HTTP/1.1\r\nHost: shop.example\r\n\r\n",
		"GET /close HTTP/1.1\r\nHost: shop.example\r\n\r\nGET /chunk HTTP/1.0\r\nHost: shop.example\r\nConnection: keep-alive\r\n\r\nGET /c HTTP/1.1\r\nHost: shop.example\r\n\r\n",
		"HEAD /big HTTP/1.1\r\nHost: shop.example\r\n\r\nGET /big HTTP/1.1\r\nHost: shop.example\r\n\r\nGET /empty HTTP/1.1\r\nHost: shop.example\r\n\r\n",
		"POST /up HTTP/1.1\r\nHost: shop.example\r\nContent-Length: 5\r\n\r\nhelloGET /after HTTP/1.1\r\nHost: shop.example\r\n\r\n",
		"POST /up HTTP/1.1\r\nHost: shop.example\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
		"GET / HTTP/1.0\r\nHost: shop.example\r\nConnection: keep-alive\r\n\r\nGET /x HTTP/1.0\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: nowhere.example\r\n\r\nGET /y HTTP/1.1\r\nHost: shop.example\r\nConnection: close\r\n\r\nGET /z HTTP/1.1\r\nHost: shop.example\r\n\r\n",
		"GET http://shop.example/abs?q=1 HTTP/1.1\r\nHost: other\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: shop.example\r\nX-Forwarded-For: 192.0.2.7\r\nConnection: X-A\r\nX-A: 1\r\n\r\n",
		"GET /ws HTTP/1.1\r\nHost: shop.example\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
		"\r\n\r\nGET /lead HTTP/1.1\r\nHost: shop.example\r\n\r\nGARBAGE\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: shop.example\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
		"POST /a HTTP/1.1\r\nHost: shop.example\r\nContent-Length: 3\r\n\r\nabcPUT /b HTTP/1.1\r\nHost: shop.example\r\nContent-Length: 2\r\n\r\nxyGET /c HTTP/1.1\r\nHost: shop.example\r\n\r\n",
		"GET /hint HTTP/1.1\r\nHost: shop.example\r\n\r\nGET /hint HTTP/1.0\r\nHost: shop.example\r\nConnection: keep-alive\r\n\r\nHEAD /hint HTTP/1.1\r\nHost: shop.example\r\n\r\n",
		"POST /cut HTTP/1.1\r\nHost: shop.example\r\nContent-Length: 10\r\n\r\nhello",
		"POST /e HTTP/1.1\r\nHost: shop.example\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\nok",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		a, b := exchangeAll(t, loopP, data), exchangeAll(t, goP, data)
		if a != b {
			t.Fatalf("the engines answer differently to %q\nloop:       %q\ngoroutines: %q", data, a, b)
		}
	})
}

var dateLine = regexp.MustCompile(`(?m)^Date: [^\r\n]*\r\n`)

// exchangeAll writes data on a new connection to p, closes the sending
// side, and returns all p answers, the origin's Date fields taken out.
func exchangeAll(t *testing.T, p *Proxy, data []byte) string {
	c, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	c.Write(data)
	c.(*net.TCPConn).CloseWrite()
	got, err := io.ReadAll(c)
	if err != nil && !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("reading the answer to %q: %v", data, err)
	}
	return dateLine.ReplaceAllString(string(got), "")
}

// A chunked body that breaks off while the origin waits for the rest is
// answered 400 at once, not after the response-header timeout (FuzzEngines
// found both engines waiting there).
func TestEnginesBrokenChunkedBody(t *testing.T) {
	origin := originAddr(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.ReadAll(r.Body)
		io.WriteString(w, "read it")
	}))
	for _, engine := range engines() {
		t.Run(engine, func(t *testing.T) {
			p := startProxy(t, Config{Engine: engine}, testSite("shop", []string{"shop.example"}, origin))
			c, br := dialProxy(t, p, 5*time.Second)
			start := time.Now()
			io.WriteString(c, "POST /up HTTP/1.1\r\nHost: shop.example\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\nzz\r\n")
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != 400 || !resp.Close || time.Since(start) > 2*time.Second {
				t.Fatalf("got %d (close %v) after %v; want 400 and close at once", resp.StatusCode, resp.Close, time.Since(start))
			}
		})
	}
}

// An HTTP/1.0 client that asked to keep the connection gets a response
// without a length (the origin chunked it) ended by our close: it cannot
// tell the end any other way.
func TestEnginesHTTP10UnframedResponse(t *testing.T) {
	origin := originAddr(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/close" {
			w.Header().Set("Transfer-Encoding", "identity") // delimited by the close
		}
		io.WriteString(w, "part;")
		w.(http.Flusher).Flush()
		io.WriteString(w, "part;")
	}))
	for _, engine := range engines() {
		for _, path := range []string{"/chunked", "/close"} {
			t.Run(engine+path, func(t *testing.T) {
				p := startProxy(t, Config{Engine: engine}, testSite("shop", []string{"shop.example"}, origin))
				c, _ := dialProxy(t, p, 5*time.Second)
				io.WriteString(c, "GET "+path+" HTTP/1.0\r\nHost: shop.example\r\nConnection: keep-alive\r\n\r\n")
				got, err := io.ReadAll(c)
				if err != nil {
					t.Fatalf("the proxy did not close after an unframed response: %v (got %q)", err, got)
				}
				if !strings.HasSuffix(string(got), "\r\n\r\npart;part;") || !strings.Contains(string(got), "Connection: close\r\n") {
					t.Fatalf("got %q", got)
				}
			})
		}
	}
}

// A chunked response that the origin cuts short or malforms ends the
// client's connection without the last chunk: the client must see it
// incomplete, never a body that merely looks shorter.
func TestEnginesChunkedCutShort(t *testing.T) {
	origin := rawOrigin(t, func(c net.Conn, br *bufio.Reader) {
		req, err := http.ReadRequest(br)
		if err != nil {
			return
		}
		io.WriteString(c, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n")
		if req.URL.Path == "/malformed" {
			io.WriteString(c, "5\r\nworldXX")
			time.Sleep(time.Second) // the proxy must not wait for more
		}
	})
	for _, engine := range engines() {
		for _, path := range []string{"/cut", "/malformed"} {
			t.Run(engine+path, func(t *testing.T) {
				p := startProxy(t, Config{Engine: engine}, testSite("shop", []string{"shop.example"}, origin))
				c, _ := dialProxy(t, p, 5*time.Second)
				start := time.Now()
				io.WriteString(c, "GET "+path+" HTTP/1.1\r\nHost: shop.example\r\n\r\n")
				got, err := io.ReadAll(c)
				if err != nil && !errors.Is(err, syscall.ECONNRESET) {
					t.Fatalf("the client connection was not closed: %v (got %q)", err, got)
				}
				if !strings.Contains(string(got), "\r\n\r\n") || !strings.Contains(string(got), "hello") || strings.HasSuffix(string(got), "0\r\n\r\n") || time.Since(start) > 800*time.Millisecond {
					t.Fatalf("got %q after %v; want hello, no last chunk, at once", got, time.Since(start))
				}
			})
		}
	}
}
