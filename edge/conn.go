package edge

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sdnoc/sdnoc/edge/inspect"
)

// clientConn is one client connection served by the HTTP/1.1 engine.
type clientConn struct {
	p        *Proxy
	c        net.Conn
	r        *bufio.Reader
	w        *bufio.Writer
	pinned   *site // a site's dedicated listener serves only that site
	site     *site // the site of the last request
	scheme   string
	clientIP string

	req        head
	lr         io.LimitedReader
	busy       atomic.Bool // between a request's head and its end
	up         atomic.Pointer[upConn]
	chunkedOut bool      // the current response is chunk-encoded to the client
	pipelined  bool      // the current request has no body: a next one may already be buffered
	deadline   time.Time // the read deadline last set
}

var connPool = sync.Pool{New: func() any { return new(clientConn) }}

// serveConn runs the keep-alive loop of one client connection.
func (p *Proxy) serveConn(c net.Conn, pinned *site, scheme string) {
	cc := connPool.Get().(*clientConn)
	*cc = clientConn{p: p, c: c, pinned: pinned, scheme: scheme, req: cc.req}
	if cc.r == nil {
		cc.r = bufio.NewReaderSize(c, 8<<10)
		cc.w = bufio.NewWriterSize(c, 4<<10)
	} else {
		cc.r.Reset(c)
		cc.w.Reset(c)
	}
	cc.clientIP = remoteIP(c)
	p.track(cc, true)
	p.m.conns.Inc()
	defer func() {
		if v := recover(); v != nil {
			// A bug in the engine costs one connection, never the process.
			p.log.Error("panic serving a connection", "panic", v, "stack", string(debug.Stack()))
			p.m.panics.Inc()
		}
		c.Close()
		p.track(cc, false)
		p.m.conns.Dec()
		r, w := cc.r, cc.w
		r.Reset(nil)
		w.Reset(nil)
		*cc = clientConn{r: r, w: w, req: cc.req}
		connPool.Put(cc)
	}()
	idle := p.cfg.ClientIdle
	for !p.draining.Load() {
		cc.setReadDeadline(idle)
		n, err := readHead(cc.r, &cc.req)
		if err != nil {
			if n > 0 {
				cc.refuse(err)
			}
			// Answers held back for a pipelined request that never came
			// whole still go out.
			cc.w.Flush()
			return
		}
		cc.busy.Store(true)
		p.inflight.Add(1)
		closeAfter, linger := cc.serveRequest()
		p.inflight.Add(-1)
		cc.busy.Store(false)
		if closeAfter {
			cc.w.Flush()
			if linger > 0 {
				cc.linger(linger)
			}
			return
		}
		if cc.site != nil {
			idle = cc.site.cfg.Timeouts.ClientIdle
		}
		if p.handBack(cc) {
			return
		}
	}
	cc.w.Flush()
}

// setReadDeadline sets the deadline d from now, without touching the
// runtime's timer when the last one is still close enough: a keep-alive
// connection would otherwise reset a timer on every request.
func (cc *clientConn) setReadDeadline(d time.Duration) {
	now := time.Now()
	want := now.Add(d)
	if want.Sub(cc.deadline) < time.Second && cc.deadline.After(now) {
		return
	}
	cc.deadline = want
	cc.c.SetReadDeadline(want)
}

// refuse answers a request that cannot be parsed, then the connection
// closes: its framing can no longer be trusted.
func (cc *clientConn) refuse(err error) {
	status := http.StatusBadRequest
	switch {
	case errors.Is(err, errHeadTooLarge):
		status = http.StatusRequestHeaderFieldsTooLarge
	case errors.Is(err, errUnsupportedTE):
		status = http.StatusNotImplemented
	case isTimeout(err), errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, net.ErrClosed):
		return
	}
	cc.p.m.malformed.Inc()
	cc.p.log.Debug("refused a malformed request", "client", cc.clientIP, "err", err)
	cc.fail(status, http.StatusText(status), true)
}

// serveRequest handles the request whose head is in cc.req. It reports
// whether the connection must close afterwards, and for how long to keep
// reading an unwanted request body first.
func (cc *clientConn) serveRequest() (closeAfter bool, linger time.Duration) {
	p := cc.p
	start := time.Now()
	r := &cc.req
	if err := parseRequest(r); err != nil {
		cc.refuse(err)
		return true, 0
	}
	closeAfter = !r.keepsAlive()
	target := r.target
	if len(target) > 0 && target[0] != '/' && target[0] != '*' {
		host, path, ok := splitAbsolute(target)
		if !ok {
			cc.refuse(errMalformed)
			return true, 0
		}
		r.host, r.target = host, path
	}
	s := cc.pinned
	if s == nil {
		s = p.table.Load().lookup(r.host)
	}
	hasBody := r.chunked || r.contentLength > 0
	if s == nil {
		// The connection stays unless the request has a body we did not
		// read; either way the response says so.
		p.m.unknownHost.Inc()
		closeAfter = closeAfter || hasBody
		cc.fail(http.StatusNotFound, "no site is configured for this host", closeAfter)
		return closeAfter, 0
	}
	cc.site = s
	x := &exchange{site: s, req: r, clientIP: cc.clientIP, scheme: cc.scheme, closeAfter: closeAfter || p.draining.Load(), bodyLen: -1}
	defer func() { p.finish(x, start) }()

	if s.inspector != nil {
		if v := p.inspect(s, r); v.Block {
			x.status = v.Status
			cc.fail(v.Status, "blocked by rule "+v.Rule, x.closeAfter || hasBody)
			return x.closeAfter || hasBody, 0
		}
	}
	switch {
	case r.chunked:
		x.body = &chunkedBody{cr: httputil.NewChunkedReader(cc.r), r: cc.r, cc: cc}
	case r.contentLength > 0:
		cc.lr = io.LimitedReader{R: cc.r, N: r.contentLength}
		x.body = &timedBody{r: &cc.lr, cc: cc}
		x.bodyLen = r.contentLength
	}
	cc.pipelined = x.body == nil
	p.relay(context.Background(), x, cc)
	if x.upgraded {
		return true, 0
	}
	if x.body != nil && !x.bodyDone {
		x.closeAfter = true
		if s.cfg.Upload.EarlyResponse != "abort" {
			linger = s.cfg.Upload.Linger
		}
	}
	return x.closeAfter, linger
}

// linger keeps reading and dropping what the client still sends (the rest
// of a body the origin did not want) after the response, so that closing
// does not reset the connection before the client has read the response:
// a reset makes the client's kernel drop it. nginx does the same
// (lingering_close).
func (cc *clientConn) linger(d time.Duration) {
	if tc, ok := cc.c.(interface{ CloseWrite() error }); ok {
		tc.CloseWrite()
	}
	cc.c.SetReadDeadline(time.Now().Add(d))
	bufp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bufp)
	for {
		if _, err := cc.r.Read(*bufp); err != nil {
			return
		}
	}
}

// timedBody extends the client connection's read deadline as a body
// arrives, so a long upload is bounded per read, not as a whole.
type timedBody struct {
	r  io.Reader
	cc *clientConn
}

func (b *timedBody) Read(p []byte) (int, error) {
	b.cc.setReadDeadline(b.cc.p.cfg.ClientIdle)
	n, err := b.r.Read(p)
	if errors.Is(err, io.EOF) {
		return n, io.EOF
	}
	return n, err
}

// chunkedBody reads a chunked request body and the trailer section after
// it. Trailers are dropped: they are rare in requests and few origins
// read them.
type chunkedBody struct {
	cr io.Reader
	r  *bufio.Reader
	cc *clientConn
}

func (b *chunkedBody) Read(p []byte) (int, error) {
	b.cc.setReadDeadline(b.cc.p.cfg.ClientIdle)
	n, err := b.cr.Read(p)
	if errors.Is(err, io.EOF) {
		if _, terr := readTrailers(b.r, nil); terr != nil {
			return n, terr
		}
	}
	return n, err
}

// splitAbsolute splits an absolute-form target (RFC 9112 §3.2.2) into its
// authority and its path.
func splitAbsolute(t []byte) (host, path []byte, ok bool) {
	i := 0
	switch {
	case len(t) > 7 && equalFold(t[:7], "http://"):
		i = 7
	case len(t) > 8 && equalFold(t[:8], "https://"):
		i = 8
	default:
		return nil, nil, false
	}
	rest := t[i:]
	for j, c := range rest {
		if c == '/' || c == '?' {
			if c == '?' {
				return rest[:j], append([]byte("/"), rest[j:]...), true
			}
			return rest[:j], rest[j:], true
		}
	}
	return rest, []byte("/"), true
}

// inspect runs the site's rules through the fail-open guard.
func (p *Proxy) inspect(s *site, r *head) inspect.Verdict {
	path := r.target
	for i, c := range path {
		if c == '?' {
			path = path[:i]
			break
		}
	}
	req := inspect.Request{
		Method: string(r.method),
		Path:   string(path),
		Header: func(name string) string {
			for _, f := range r.fields {
				if equalFoldString(f.name, name) {
					return string(f.value)
				}
			}
			return ""
		},
	}
	return p.guard.Inspect(s.cfg.Name, s.inspector, &req)
}

func equalFoldString(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := range len(b) {
		x, y := b[i], s[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}

// The responder side of the HTTP/1.1 engine.

func (cc *clientConn) interim(resp *head) error {
	if cc.req.minor < 1 {
		return nil // HTTP/1.0 clients do not expect 1xx responses
	}
	writeInterim(cc.w, resp)
	return cc.w.Flush()
}

// writeInterim writes a 1xx response as it goes to the client.
func writeInterim(w *bufio.Writer, resp *head) {
	appendStatusLine(w, resp.status, resp.reason)
	for _, f := range resp.fields {
		if !resp.hopByHop(f.name) {
			writeField(w, f.name, f.value)
		}
	}
	w.WriteString("\r\n")
}

func (cc *clientConn) header(resp *head, fr framing, closeAfter bool) error {
	var err error
	cc.chunkedOut, err = writeResponseHead(cc.w, &cc.req, resp, fr, closeAfter || cc.p.draining.Load())
	return err
}

// endsByClose: a body without a length goes to an HTTP/1.0 client, which
// knows no chunks, as it is, and ends when we close the connection.
func endsByClose(req *head, fr framing) bool {
	return (fr == chunkBody || fr == closeBody) && req.minor == 0
}

// writeResponseHead writes resp's head as it goes to the client of req:
// the origin's end-to-end fields, our framing, and whether the connection
// stays. It reports whether the body goes chunk-encoded, and the
// writer's error.
func writeResponseHead(w *bufio.Writer, req, resp *head, fr framing, closeAfter bool) (chunked bool, err error) {
	closeAfter = closeAfter || endsByClose(req, fr)
	appendStatusLine(w, resp.status, resp.reason)
	for _, f := range resp.fields {
		if !resp.hopByHop(f.name) {
			writeField(w, f.name, f.value)
		}
	}
	switch fr {
	case lengthBody:
		writeLength(w, resp.contentLength)
	case noBody:
		// A HEAD or 304 response states the length the full one would
		// have; 204 and 1xx carry none.
		if resp.contentLength >= 0 && resp.status != 204 && resp.status >= 200 {
			writeLength(w, resp.contentLength)
		}
	default:
		if req.minor >= 1 {
			chunked = true
			w.WriteString("Transfer-Encoding: chunked\r\n")
		}
	}
	switch {
	case closeAfter:
		w.WriteString("Connection: close\r\n")
	case req.minor == 0:
		w.WriteString("Connection: keep-alive\r\n")
	}
	_, err = w.WriteString("\r\n")
	return chunked, err
}

func (cc *clientConn) body() (*bufio.Writer, bool) { return cc.w, cc.chunkedOut }

func (cc *clientConn) endBody() error {
	// A pipelined request already waiting is answered first; the flush
	// happens after it.
	if cc.pipelined && cc.r.Buffered() > 0 {
		return nil
	}
	return cc.w.Flush()
}

func (cc *clientConn) fail(status int, msg string, closeAfter bool) error {
	writeFail(cc.w, status, msg, closeAfter)
	return cc.w.Flush()
}

// writeFail writes a response of our own: an error status and msg.
func writeFail(w *bufio.Writer, status int, msg string, closeAfter bool) {
	appendStatusLine(w, status, nil)
	w.WriteString("Content-Type: text/plain; charset=utf-8\r\n")
	writeLength(w, int64(len(msg)+1))
	if closeAfter {
		w.WriteString("Connection: close\r\n")
	}
	w.WriteString("\r\n")
	w.WriteString(msg)
	w.WriteString("\n")
}

func (cc *clientConn) interrupt() { cc.c.SetReadDeadline(time.Now()) }

func (cc *clientConn) using(uc *upConn) { cc.up.Store(uc) }

// cut closes the connection and the origin connection it waits on.
func (cc *clientConn) cut() {
	cc.c.Close()
	if uc := cc.up.Load(); uc != nil {
		uc.c.Close()
	}
}

// upgrader is a responder that can hand its connection over to a protocol
// switched to by a 101 response (WebSocket).
type upgrader interface {
	tunnel(resp *head, uc *upConn)
}

// tunnel relays the 101 response and then bytes both ways until either
// side closes.
func (cc *clientConn) tunnel(resp *head, uc *upConn) {
	w := cc.w
	appendStatusLine(w, resp.status, resp.reason)
	for _, f := range resp.fields {
		if !resp.hopByHop(f.name) || equalFold(f.name, "upgrade") {
			writeField(w, f.name, f.value)
		}
	}
	w.WriteString("Connection: Upgrade\r\n\r\n")
	if err := w.Flush(); err != nil {
		return
	}
	cc.c.SetReadDeadline(time.Time{})
	var wg sync.WaitGroup
	wg.Go(func() {
		io.Copy(uc.c, cc.r)
		if tc, ok := uc.c.(interface{ CloseWrite() error }); ok {
			tc.CloseWrite()
		}
	})
	io.Copy(cc.c, uc.r)
	cc.c.Close()
	uc.c.Close()
	wg.Wait()
}

func remoteIP(c net.Conn) string {
	if a, ok := c.RemoteAddr().(*net.TCPAddr); ok {
		return a.AddrPort().Addr().Unmap().String()
	}
	host, _, err := net.SplitHostPort(c.RemoteAddr().String())
	if err != nil {
		return c.RemoteAddr().String()
	}
	return host
}
