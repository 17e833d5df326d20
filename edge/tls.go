package edge

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// serveTLS serves l with net/http: TLS with the site's certificate (by SNI,
// or the dedicated site's), HTTP/2 or HTTP/1.1 by ALPN.
func (p *Proxy) serveTLS(l *listener) {
	cfg := &tls.Config{
		MinVersion: tls.VersionTLS12,
		NextProtos: []string{"h2", "http/1.1"},
		GetCertificate: func(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
			t := p.table.Load()
			s := t.byName[l.site]
			if s == nil {
				s = t.lookup([]byte(hello.ServerName))
			}
			if s == nil || s.cfg.TLS == nil {
				return nil, fmt.Errorf("no certificate for %q", hello.ServerName)
			}
			return &s.cfg.TLS.Certificate, nil
		},
	}
	srv := &http.Server{
		Handler:           &tlsHandler{p: p, site: l.site},
		TLSConfig:         cfg,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       p.cfg.ClientIdle,
		ErrorLog:          slog.NewLogLogger(p.log.Handler(), slog.LevelDebug),
	}
	l.srv = srv
	ln := l.ln
	p.wg.Go(func() { srv.ServeTLS(ln, "", "") })
}

// tlsHandler adapts a net/http request to the relay.
type tlsHandler struct {
	p    *Proxy
	site string // dedicated to this site; "" for the shared listener
}

func (h *tlsHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p := h.p
	start := time.Now()
	p.inflight.Add(1)
	defer p.inflight.Add(-1)
	t := p.table.Load()
	s := t.byName[h.site]
	if s == nil {
		s = t.lookup([]byte(r.Host))
	}
	if s == nil {
		p.m.unknownHost.Inc()
		http.Error(w, "no site is configured for this host", http.StatusNotFound)
		return
	}
	req := getHead()
	defer putHead(req)
	req.reset()
	req.method = []byte(r.Method)
	req.target = []byte(r.RequestURI)
	if r.RequestURI == "" {
		req.target = []byte(r.URL.RequestURI())
	}
	req.host = []byte(r.Host)
	req.minor = 1
	req.fields = append(req.fields, field{[]byte("Host"), req.host})
	for name, vals := range r.Header {
		if name == "Expect" {
			continue // net/http answers 100-continue itself when the body is read
		}
		for _, v := range vals {
			req.fields = append(req.fields, field{[]byte(name), []byte(v)})
		}
		switch name {
		case "Connection":
			for _, v := range vals {
				for tok := range strings.SplitSeq(v, ",") {
					req.connTokens = append(req.connTokens, []byte(strings.TrimSpace(tok)))
				}
			}
		case "X-Forwarded-For":
			req.xff = []byte(strings.Join(vals, ", "))
		}
	}
	req.contentLength = r.ContentLength
	x := &exchange{site: s, req: req, clientIP: hostOf(r.RemoteAddr), scheme: "https", bodyLen: r.ContentLength}
	if r.Body != nil && r.Body != http.NoBody && r.ContentLength != 0 {
		x.body = r.Body
	}
	defer func() { p.finish(x, start) }()
	if s.inspector != nil {
		if v := p.inspect(s, req); v.Block {
			x.status = v.Status
			http.Error(w, "blocked by rule "+v.Rule, v.Status)
			return
		}
	}
	rc := http.NewResponseController(w)
	rc.EnableFullDuplex() // HTTP/1.1: hear an early response while the body comes
	out := &netResponder{w: w, rc: rc, h1: r.ProtoMajor == 1}
	p.relay(r.Context(), x, out)
}

func hostOf(addr string) string {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	return host
}

// netResponder writes a relayed response through net/http.
type netResponder struct {
	w  http.ResponseWriter
	rc *http.ResponseController
	bw *bufio.Writer
	h1 bool
}

func (o *netResponder) interim(resp *head) error {
	if resp.status != http.StatusEarlyHints {
		return nil
	}
	o.copyFields(resp)
	o.w.WriteHeader(resp.status)
	return nil
}

func (o *netResponder) copyFields(resp *head) {
	hdr := o.w.Header()
	for _, f := range resp.fields {
		if !resp.hopByHop(f.name) {
			hdr.Add(string(f.name), string(f.value))
		}
	}
}

func (o *netResponder) header(resp *head, fr framing, closeAfter bool) error {
	o.copyFields(resp)
	hdr := o.w.Header()
	if (fr == lengthBody || fr == noBody) && resp.contentLength >= 0 && resp.status != 204 {
		hdr.Set("Content-Length", strconv.FormatInt(resp.contentLength, 10))
	}
	if closeAfter && o.h1 {
		hdr.Set("Connection", "close")
	}
	o.w.WriteHeader(resp.status)
	return nil
}

func (o *netResponder) body() (*bufio.Writer, bool) {
	if o.bw == nil {
		o.bw = bufio.NewWriterSize(flushWriter{o}, 16<<10)
	}
	return o.bw, false
}

// flushWriter writes to the ResponseWriter; the relay flushes its
// bufio.Writer when the origin pauses, and that must reach the client.
type flushWriter struct{ o *netResponder }

func (f flushWriter) Write(p []byte) (int, error) {
	n, err := f.o.w.Write(p)
	if err == nil {
		err = f.o.rc.Flush()
	}
	return n, err
}

func (o *netResponder) endBody() error {
	if o.bw != nil {
		return o.bw.Flush()
	}
	return o.rc.Flush()
}

func (o *netResponder) fail(status int, msg string, closeAfter bool) error {
	if closeAfter && o.h1 {
		o.w.Header().Set("Connection", "close")
	}
	http.Error(o.w, msg, status)
	return nil
}

func (o *netResponder) interrupt() { o.rc.SetReadDeadline(time.Now()) }

// using is a no-op: net/http cancels the request's context when the
// connection is cut, and relay stops waiting on the origin then.
func (o *netResponder) using(*upConn) {}
