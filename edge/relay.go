package edge

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http/httputil"
	"os"
	"strconv"
	"sync"
	"time"
)

// responder is the client side of an exchange: the raw HTTP/1.1 engine
// (conn.go) or net/http for TLS and HTTP/2 (tls.go).
type responder interface {
	// interim relays a 1xx response other than 101.
	interim(resp *head) error
	// header writes the final response head; fr is how the origin frames
	// the body.
	header(resp *head, fr framing, closeAfter bool) error
	// body returns where the response body goes, and a flush that pushes
	// what is buffered to the client.
	body() (w *bufio.Writer, chunked bool)
	// endBody finishes the body (the last chunk) and flushes.
	endBody() error
	// fail answers with an error status of our own, when no response head
	// has been written yet.
	fail(status int, msg string, closeAfter bool) error
	// interrupt wakes a goroutine blocked reading the request body.
	interrupt()
	// using tells which origin connection the exchange is on (nil: none),
	// so that a drain's deadline can cut it.
	using(uc *upConn)
}

// exchange is one request being relayed to an origin.
type exchange struct {
	site     *site
	req      *head
	body     io.Reader // the request body without its framing; nil when none
	bodyLen  int64     // -1: not known in advance (chunked to the origin)
	clientIP string
	scheme   string // "http" or "https"

	// Filled in by relay.
	status     int
	sent       int64 // response body bytes sent to the client
	origin     string
	bodyDone   bool // the request body was read to its end
	closeAfter bool // the client connection must close after this exchange
	early      bool // the origin answered before the request body was sent
	upgraded   bool
}

// Statuses of responses we make ourselves.
const (
	statusBadRequest     = 400
	statusBadGateway     = 502
	statusGatewayTimeout = 504
)

var bufPool = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

func isIdempotent(method []byte) bool {
	switch string(method) {
	case "GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE":
		return true
	}
	return false
}

// relay forwards x to one of its site's origins and its response to out.
// A request without a body that fails on a reused connection before any
// byte of the response is retried once on a fresh connection: the origin
// closed that connection under us (seed 002), and an idempotent request
// that it never answered is safe to send again.
func (p *Proxy) relay(ctx context.Context, x *exchange, out responder) {
	s := x.site
	for attempt := 0; ; attempt++ {
		op := s.pick()
		x.origin = op.addr
		// A request that may be retried can skip the liveness check on a
		// connection that was busy a moment ago: the check costs a
		// syscall, and the retry covers the rare close in between.
		retryable := x.body == nil && isIdempotent(x.req.method) && s.cfg.Pool.Retry
		uc, err := op.get(ctx, attempt > 0, retryable)
		if err == nil && ctx.Done() != nil {
			// The client went away (net/http cancels its context): stop
			// waiting for the origin.
			cut := context.AfterFunc(ctx, func() { uc.c.SetDeadline(time.Now()) })
			defer cut()
		}
		if err != nil {
			p.log.Warn("origin unreachable", "site", s.cfg.Name, "origin", op.addr, "err", err)
			x.status = statusBadGateway
			out.fail(statusBadGateway, "origin unreachable", x.closeAfter)
			return
		}
		op.inflight.Add(1)
		stale := p.exchangeOn(x, op, uc, out)
		op.inflight.Add(-1)
		if !stale {
			return
		}
		op.m.stale.WithLabelValues("reuse_failed").Inc()
		if attempt > 0 || x.body != nil || !isIdempotent(x.req.method) || !s.cfg.Pool.Retry {
			x.status = statusBadGateway
			out.fail(statusBadGateway, "origin closed the connection", x.closeAfter)
			return
		}
		s.m.retries.Inc()
	}
}

// exchangeOn runs x on one origin connection. It returns true, having
// written nothing to the client, when a reused connection failed before
// any byte of a response: the caller may retry.
func (p *Proxy) exchangeOn(x *exchange, op *originPool, uc *upConn, out responder) (stale bool) {
	reusable := false
	out.using(uc)
	defer func() {
		out.using(nil)
		if reusable {
			uc.reused = true
			op.put(uc)
		} else {
			uc.c.Close()
		}
	}()
	writeRequestHead(uc.w, x)
	if err := uc.w.Flush(); err != nil {
		if uc.reused && x.body == nil {
			return true
		}
		p.upstreamError(x, out, "writing the request", err)
		return false
	}

	// Set before the body writer starts: a body that breaks off at once
	// cuts this deadline, and must not find it set again afterwards.
	timeout := x.site.cfg.Timeouts.ResponseHeader
	uc.c.SetReadDeadline(time.Now().Add(timeout))

	// The body goes up in its own goroutine while this one waits for the
	// response, so that an origin answering before it has read the whole
	// body (seed 000) is heard at once.
	var bw *bodyWriter
	if x.body != nil {
		bw = startBodyWriter(uc, x.body, x.bodyLen)
	}
	stop := func() {
		if bw != nil {
			bw.stop(uc, out)
		}
	}

	resp := getHead()
	defer putHead(resp)
	for {
		n, err := readHead(uc.r, resp)
		if err == nil {
			err = parseResponse(resp)
		}
		if err != nil {
			if n == 0 && uc.reused && bw == nil && !isTimeout(err) {
				return true
			}
			// Settled before stop: stop's own interrupt is not the
			// client's fault.
			clientFailed := isTimeout(err) && bw.headIn()
			stop()
			if clientFailed {
				x.status = statusBadRequest
				x.closeAfter = true
				out.fail(statusBadRequest, "the request body broke off", true)
				return false
			}
			if isTimeout(err) {
				x.status = statusGatewayTimeout
				p.log.Warn("origin response timeout", "site", x.site.cfg.Name, "origin", op.addr, "timeout", timeout)
				out.fail(statusGatewayTimeout, "origin did not answer in time", x.closeAfter || bw != nil)
				x.closeAfter = x.closeAfter || bw != nil
				return false
			}
			p.upstreamError(x, out, "reading the response head", err)
			return false
		}
		if resp.status >= 200 {
			break
		}
		if resp.status == 101 {
			if !x.req.upgrade {
				stop()
				p.upstreamError(x, out, "reading the response head", errors.New("101 to a request that asked for no upgrade"))
				return false
			}
			break
		}
		if err := out.interim(resp); err != nil {
			stop()
			x.closeAfter = true
			return false
		}
	}
	bw.headIn()
	uc.c.SetReadDeadline(time.Time{})

	if resp.status == 101 {
		x.status = 101
		x.upgraded = true
		if u, ok := out.(upgrader); ok {
			u.tunnel(resp, uc)
		}
		x.closeAfter = true
		return false
	}

	fr := responseFraming(x.req, resp)
	originKeeps := resp.keepsAlive() && fr != closeBody
	if bw != nil && !bw.finished() {
		x.early = true
		switch {
		case x.site.cfg.Upload.EarlyResponse == "abort":
			x.site.m.earlyAborted.Inc()
			stop()
			x.closeAfter = true
		case !originKeeps:
			// The origin said it closes: stop sending at once and close
			// our side (RFC 9112 §9.6).
			x.site.m.earlyRelayed.Inc()
			stop()
		default:
			// The origin keeps the connection and may go on reading: the
			// body keeps flowing to it (the fix in seed 000).
			x.site.m.earlyRelayed.Inc()
		}
	}

	x.status = resp.status
	x.closeAfter = x.closeAfter || endsByClose(x.req, fr)
	if err := out.header(resp, fr, x.closeAfter); err != nil {
		stop()
		x.closeAfter = true
		return false
	}
	relayed, err := p.relayBody(x, uc, out, fr, resp)
	if err != nil {
		stop()
		x.closeAfter = true
		var we errWrite
		if !errors.As(err, &we) {
			p.log.Warn("origin response cut short", "site", x.site.cfg.Name, "origin", op.addr, "err", err)
		}
		return false
	}
	bodySent := true
	if bw != nil {
		bodySent = bw.wait() == nil
		x.bodyDone = bw.clientDone
	} else {
		x.bodyDone = true
	}
	if !x.bodyDone {
		x.closeAfter = true
	}
	reusable = relayed && originKeeps && bodySent
	return false
}

// relayBody copies the response body from the origin to the client.
func (p *Proxy) relayBody(x *exchange, uc *upConn, out responder, fr framing, resp *head) (bool, error) {
	w, chunked := out.body()
	bufp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bufp)
	buf := *bufp
	var cw io.Writer = w
	var cwc io.WriteCloser
	if chunked && (fr == chunkBody || fr == closeBody) {
		cwc = httputil.NewChunkedWriter(w)
		cw = cwc
	}
	var n int64
	var err error
	switch fr {
	case noBody:
	case lengthBody:
		n, err = copyLength(w, uc.r, resp.contentLength, buf)
	case chunkBody:
		cr := bufio.NewReader(httputil.NewChunkedReader(uc.r))
		n, err = copyUntilEOF(cw, w.Flush, cr, buf)
		if err == nil {
			_, err = readTrailers(uc.r, nil)
		}
	case closeBody:
		n, err = copyUntilEOF(cw, w.Flush, uc.r, buf)
	}
	x.sent = n
	if err != nil {
		return false, err
	}
	if cwc != nil {
		if err := cwc.Close(); err != nil {
			return false, errWrite{err}
		}
		w.WriteString("\r\n")
	}
	if err := out.endBody(); err != nil {
		return false, errWrite{err}
	}
	return fr != closeBody, nil
}

func (p *Proxy) upstreamError(x *exchange, out responder, what string, err error) {
	p.log.Warn("origin failed", "site", x.site.cfg.Name, "origin", x.origin, "while", what, "err", err)
	x.site.m.originErrors.Inc()
	x.status = statusBadGateway
	x.closeAfter = x.closeAfter || x.body != nil
	out.fail(statusBadGateway, "origin failed", x.closeAfter)
}

// responseFraming decides how a response's body is delimited
// (RFC 9112 §6.3).
func responseFraming(req, resp *head) framing {
	switch {
	case string(req.method) == "HEAD", resp.status == 204, resp.status == 304, resp.status < 200:
		return noBody
	case resp.chunked:
		return chunkBody
	case resp.contentLength >= 0:
		return lengthBody
	}
	return closeBody
}

// writeRequestHead writes the request as it goes to the origin: the
// client's end-to-end fields, the framing we use, and the forwarding
// fields.
func writeRequestHead(w *bufio.Writer, x *exchange) {
	r := x.req
	w.Write(r.method)
	w.WriteByte(' ')
	w.Write(r.target)
	w.WriteString(" HTTP/1.1\r\n")
	for _, f := range r.fields {
		if r.hopByHop(f.name) || isForwarding(f.name) {
			continue
		}
		writeField(w, f.name, f.value)
	}
	if r.upgrade {
		for _, f := range r.fields {
			if equalFold(f.name, "upgrade") {
				writeField(w, f.name, f.value)
			}
		}
		w.WriteString("Connection: Upgrade\r\n")
	}
	switch {
	case x.body != nil && x.bodyLen >= 0:
		writeLength(w, x.bodyLen)
	case x.body != nil:
		w.WriteString("Transfer-Encoding: chunked\r\n")
	case r.contentLength == 0:
		w.WriteString("Content-Length: 0\r\n")
	}
	host := r.host
	if host == nil {
		// HTTP/1.0 without Host, on a site's dedicated address: the
		// origin still gets one.
		host = []byte(x.defaultHost())
		w.WriteString("Host: ")
		w.Write(host)
		w.WriteString("\r\n")
	}
	w.WriteString("X-Forwarded-For: ")
	if len(r.xff) > 0 {
		w.Write(r.xff)
		w.WriteString(", ")
	}
	w.WriteString(x.clientIP)
	w.WriteString("\r\nX-Forwarded-Proto: ")
	w.WriteString(x.scheme)
	w.WriteString("\r\nX-Forwarded-Host: ")
	w.Write(host)
	w.WriteString("\r\n\r\n")
}

// defaultHost is the site's first name, for requests that gave none.
func (x *exchange) defaultHost() string {
	if x.site != nil && len(x.site.cfg.Hosts) > 0 {
		if h, ok := cutWildcard(x.site.cfg.Hosts[0]); ok {
			return h
		}
		return x.site.cfg.Hosts[0]
	}
	return "localhost"
}

func isForwarding(name []byte) bool {
	return len(name) > 12 && (name[0] == 'x' || name[0] == 'X') &&
		(equalFold(name, "x-forwarded-for") || equalFold(name, "x-forwarded-proto") || equalFold(name, "x-forwarded-host"))
}

// bodyWriter sends a request body to the origin.
type bodyWriter struct {
	done       chan struct{}
	err        error
	clientDone bool // the client's body was read to its end
	once       sync.Once

	// A client body that breaks off (malformed chunks, cut short) while
	// the origin has not answered yet would leave the origin waiting for
	// the rest and us waiting for its answer: the writer then cuts our
	// wait for the response head, and the client gets a 400.
	mu         sync.Mutex
	headRead   bool // the response head is in: no more cutting
	clientFail bool
}

func startBodyWriter(uc *upConn, body io.Reader, length int64) *bodyWriter {
	bw := &bodyWriter{done: make(chan struct{})}
	go func() {
		defer close(bw.done)
		bw.err = copyRequestBody(uc.w, body, length, &bw.clientDone)
		if bw.err == nil {
			bw.err = uc.w.Flush()
		}
		var we errWrite
		if bw.err != nil && !errors.As(bw.err, &we) {
			bw.mu.Lock()
			if !bw.headRead {
				bw.clientFail = true
				uc.c.SetReadDeadline(time.Now())
			}
			bw.mu.Unlock()
		}
	}()
	return bw
}

// headIn ends the cutting: the response head arrived. It reports whether
// the wait for it was cut because the client's body broke off.
func (bw *bodyWriter) headIn() (clientFailed bool) {
	if bw == nil {
		return false
	}
	bw.mu.Lock()
	defer bw.mu.Unlock()
	bw.headRead = true
	return bw.clientFail
}

func (bw *bodyWriter) finished() bool {
	select {
	case <-bw.done:
		return true
	default:
		return false
	}
}

// stop makes the writer give up, wherever it is blocked: writing to the
// origin or reading from the client. The client's connection is then not
// reusable, and the caller closes it.
func (bw *bodyWriter) stop(uc *upConn, out responder) {
	bw.once.Do(func() {
		uc.c.SetWriteDeadline(time.Now())
		out.interrupt()
	})
	<-bw.done
}

func (bw *bodyWriter) wait() error {
	<-bw.done
	return bw.err
}

// copyRequestBody sends body up with the framing announced in the head.
func copyRequestBody(w *bufio.Writer, body io.Reader, length int64, clientDone *bool) error {
	bufp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bufp)
	buf := *bufp
	var sent int64
	for {
		k, rerr := body.Read(buf)
		if k > 0 {
			if length < 0 {
				w.WriteString(strconv.FormatInt(int64(k), 16))
				w.WriteString("\r\n")
			}
			if _, err := w.Write(buf[:k]); err != nil {
				return errWrite{err}
			}
			if length < 0 {
				w.WriteString("\r\n")
			}
			sent += int64(k)
			// Push as it comes: the origin may answer after a part of it.
			if err := w.Flush(); err != nil {
				return errWrite{err}
			}
		}
		if errors.Is(rerr, io.EOF) {
			if length >= 0 && sent < length {
				return fmt.Errorf("client body ended after %d of %d bytes: %w", sent, length, io.ErrUnexpectedEOF)
			}
			*clientDone = true
			if length < 0 {
				w.WriteString("0\r\n\r\n")
			}
			return nil
		}
		if rerr != nil {
			return fmt.Errorf("reading the client's body: %w", rerr)
		}
	}
}

func isTimeout(err error) bool {
	return errors.Is(err, os.ErrDeadlineExceeded)
}

// heads are reused across exchanges: a head's buffers are the largest
// per-request allocation.
var headPool = sync.Pool{New: func() any { return &head{contentLength: -1} }}

func getHead() *head  { return headPool.Get().(*head) }
func putHead(h *head) { headPool.Put(h) }
