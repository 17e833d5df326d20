package edge

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
)

// BenchmarkProxyGET measures one keep-alive client's GETs through each
// HTTP/1.1 engine to a raw origin, for a response with a length and a
// chunked one; allocs/op counts the whole process (client and origin here
// allocate nothing per request). The loop's time here is not its time in
// production: the client and origin goroutines of this process make the
// scheduler take the P from a loop waiting in epoll_wait, which a proxy
// alone in its process does not see. bench/proxy.sh measures that (at
// two connections: loop 21.9k req/s, goroutines 18.0k, nginx 23.0k).
func BenchmarkProxyGET(b *testing.B) {
	const payload = "hello from origin, a small response body of 64 bytes..........\n"
	responses := map[string]string{
		"length":  fmt.Sprintf("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n\r\n%s", len(payload), payload),
		"chunked": fmt.Sprintf("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n%x\r\n%s\r\n0\r\n\r\n", len(payload), payload),
	}
	for _, engine := range engines() {
		for _, framing := range []string{"length", "chunked"} {
			b.Run(engine+"/"+framing, func(b *testing.B) {
				resp := responses[framing]
				origin := rawOriginB(b, func(c net.Conn, br *bufio.Reader) {
					h := &head{}
					for {
						if _, err := readHead(br, h); err != nil {
							return
						}
						io.WriteString(c, resp)
					}
				})
				p := startProxy(b, Config{Engine: engine}, testSite("bench", []string{"bench.local"}, origin))
				c, err := net.Dial("tcp", p.Addr())
				if err != nil {
					b.Fatal(err)
				}
				defer c.Close()
				br := bufio.NewReader(c)
				req := []byte("GET / HTTP/1.1\r\nHost: bench.local\r\nUser-Agent: bench\r\nAccept: */*\r\n\r\n")
				h := &head{}
				body := make([]byte, len(payload))
				b.ReportAllocs()
				for b.Loop() {
					if _, err := c.Write(req); err != nil {
						b.Fatal(err)
					}
					if _, err := readHead(br, h); err != nil {
						b.Fatal(err)
					}
					if framing == "length" {
						_, err = io.ReadFull(br, body)
					} else {
						err = skipChunked(br)
					}
					if err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "req/s")
			})
		}
	}
}

// skipChunked reads a chunked body without allocating.
func skipChunked(br *bufio.Reader) error {
	for {
		line, err := br.ReadSlice('\n')
		if err != nil {
			return err
		}
		n := 0
		for _, c := range bytes.TrimRight(line, "\r\n") {
			d := strings.IndexByte("0123456789abcdef", c|0x20)
			if d < 0 {
				return fmt.Errorf("chunk size %q", line)
			}
			n = n<<4 | d
		}
		if _, err := br.Discard(n + 2); err != nil {
			return err
		}
		if n == 0 {
			return nil
		}
	}
}

func rawOriginB(b *testing.B, handle func(net.Conn, *bufio.Reader)) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				handle(c, bufio.NewReader(c))
			}()
		}
	}()
	return ln.Addr().String()
}

// A 101 response switches the connection to a tunnel both ways
// (WebSocket).
func TestUpgradeTunnel(t *testing.T) {
	origin := rawOrigin(t, func(c net.Conn, br *bufio.Reader) {
		req, err := http.ReadRequest(br)
		if err != nil || req.Header.Get("Upgrade") != "websocket" || !strings.EqualFold(req.Header.Get("Connection"), "upgrade") {
			io.WriteString(c, "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
			return
		}
		io.WriteString(c, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
		io.Copy(c, br) // echo
	})
	p := startProxy(t, Config{}, testSite("shop", []string{"shop.example"}, origin))
	c, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "GET /ws HTTP/1.1\r\nHost: shop.example\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != 101 || resp.Header.Get("Upgrade") != "websocket" {
		t.Fatalf("upgrade: %v %v", resp, err)
	}
	io.WriteString(c, "ping across the tunnel")
	got := make([]byte, len("ping across the tunnel"))
	if _, err := io.ReadFull(br, got); err != nil || string(got) != "ping across the tunnel" {
		t.Fatalf("echo: %q %v", got, err)
	}
}
