package edge

import (
	"bufio"
	"bytes"
	"strings"
	"testing"
)

var requestSeeds = []string{
	"GET / HTTP/1.1\r\nHost: shop.example\r\n\r\n",
	"POST /up HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello",
	"POST /up HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
	"GET http://shop.example/x?y HTTP/1.1\r\nHost: other\r\nConnection: close, X-A\r\nX-A: 1\r\n\r\n",
	"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
	"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: 1.2.3.4\r\nX-Forwarded-For: 5.6.7.8\r\nExpect: 100-continue\r\n\r\n",
	"GET / HTTP/1.1\r\nHost : a\r\n\r\n",
	"\r\n\r\nGET / HTTP/1.1\nHost: a\n\n",
}

// FuzzParseRequest feeds arbitrary bytes to the request head reader and
// parser: they must never panic, and what they accept must be a sane
// head: a token method, no conflicting framing, fields inside the buffer.
func FuzzParseRequest(f *testing.F) {
	for _, s := range requestSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		h := &head{}
		if _, err := readHead(bufio.NewReaderSize(bytes.NewReader(data), 8<<10), h); err != nil {
			return
		}
		if err := parseRequest(h); err != nil {
			return
		}
		if !isToken(h.method) {
			t.Fatalf("accepted method %q", h.method)
		}
		if h.chunked && h.contentLength >= 0 {
			t.Fatal("accepted both Content-Length and chunked")
		}
		if h.minor >= 1 && h.host == nil {
			t.Fatal("accepted HTTP/1.1 without Host")
		}
		for _, f := range h.fields {
			if !isToken(f.name) || bytes.ContainsAny(f.value, "\r\n\x00") {
				t.Fatalf("accepted field %q: %q", f.name, f.value)
			}
		}
		// What we forward must parse back to the same method and target.
		var out bytes.Buffer
		w := bufio.NewWriter(&out)
		writeRequestHead(w, &exchange{req: h, clientIP: "192.0.2.1", scheme: "http", bodyLen: -1})
		w.Flush()
		h2 := &head{}
		if _, err := readHead(bufio.NewReader(&out), h2); err != nil {
			t.Fatalf("re-reading our own head: %v\n%s", err, out.String())
		}
		if err := parseRequest(h2); err != nil {
			t.Fatalf("re-parsing our own head: %v\n%s", err, strings.ReplaceAll(out.String(), "\r\n", "\n"))
		}
		if !bytes.Equal(h2.method, h.method) || !bytes.Equal(h2.target, h.target) {
			t.Fatalf("forwarded %s %s as %s %s", h.method, h.target, h2.method, h2.target)
		}
	})
}

// FuzzParseResponse does the same for origin responses.
func FuzzParseResponse(f *testing.F) {
	for _, s := range []string{
		"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
		"HTTP/1.1 100 Continue\r\n\r\n",
		"HTTP/1.1 204\r\n\r\n",
		"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\n\r\n",
		"HTTP/1.1 413 Payload Too Large\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
		"HTTP/1.1 999 Weird\r\n\r\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		h := &head{}
		if _, err := readHead(bufio.NewReader(bytes.NewReader(data)), h); err != nil {
			return
		}
		if err := parseResponse(h); err != nil {
			return
		}
		if h.status < 100 || h.status > 599 {
			t.Fatalf("accepted status %d", h.status)
		}
		if h.chunked && h.contentLength >= 0 {
			t.Fatal("accepted both Content-Length and chunked")
		}
	})
}

// FuzzCutHead checks the event loop's head reader against readHead: on
// any bytes they take the same head, or both want more.
func FuzzCutHead(f *testing.F) {
	for _, s := range requestSeeds {
		f.Add([]byte(s))
	}
	f.Add([]byte("\r\n\r"))
	f.Add([]byte("GET / HTTP/1.1\r\nHost: a\r\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		want, got := &head{}, &head{}
		wn, werr := readHead(bufio.NewReaderSize(bytes.NewReader(data), len(data)+16), want)
		gn, gerr := cutHead(data, got)
		switch {
		case werr == nil:
			if gerr != nil || gn != wn || !bytes.Equal(got.buf, want.buf) {
				t.Fatalf("cutHead = %d, %v, %q; readHead = %d, %q", gn, gerr, got.buf, wn, want.buf)
			}
		case gerr == nil && gn > 0:
			t.Fatalf("cutHead took %d bytes (%q) that readHead refused: %v", gn, got.buf, werr)
		}
	})
}
