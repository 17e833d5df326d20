package edge

import (
	"context"
	"errors"
	"net/http"
	"sync"
	"time"
)

// DrainStatus is a drain's progress, as the admin API reports it.
type DrainStatus struct {
	Draining bool      `json:"draining"`
	Since    time.Time `json:"since,omitzero"`
	Deadline time.Time `json:"deadline,omitzero"`
	// InFlight is the requests still being served; Connections the
	// client connections still open (HTTP/1.1 engine).
	InFlight    int64 `json:"in_flight"`
	Connections int   `json:"connections"`
	// Done is true once nothing is left: traffic has moved away.
	Done bool `json:"done"`
}

// Drain stops taking new connections (health reports draining), closes
// idle keep-alive connections, lets requests in flight finish, and at the
// deadline closes what is left. It returns at once; DrainStatus reports
// progress. Draining an already draining proxy changes nothing.
func (p *Proxy) Drain(deadline time.Duration) DrainStatus {
	p.mu.Lock()
	if p.draining.Load() {
		p.mu.Unlock()
		return p.DrainStatus()
	}
	now := time.Now()
	p.draining.Store(true)
	p.m.draining.Set(1)
	p.drain = DrainStatus{Draining: true, Since: now, Deadline: now.Add(deadline)}
	var servers []*http.Server
	for _, l := range p.listeners {
		if l.srv != nil {
			servers = append(servers, l.srv)
			l.srv = nil
		}
	}
	p.closeListeners()
	for cc := range p.conns {
		if !cc.busy.Load() {
			cc.c.SetReadDeadline(now) // idle: wake it so it closes
		}
	}
	for _, l := range p.loops {
		l.wake() // it closes its idle connections
	}
	done := make(chan struct{})
	p.drainDone = done
	p.mu.Unlock()
	p.log.Info("draining", "deadline", deadline)

	go func() {
		defer close(done)
		ctx, cancel := context.WithDeadline(context.Background(), now.Add(deadline))
		defer cancel()
		var wg sync.WaitGroup
		for _, s := range servers {
			wg.Go(func() {
				if s.Shutdown(ctx) != nil {
					s.Close()
				}
			})
		}
		t := time.NewTicker(10 * time.Millisecond)
		defer t.Stop()
	wait:
		for p.draining.Load() && p.openConns() > 0 {
			select {
			case <-ctx.Done():
				p.mu.Lock()
				n := p.connCount()
				for cc := range p.conns {
					cc.cut()
				}
				for _, l := range p.loops {
					l.cut.Store(true)
					l.wake()
				}
				p.mu.Unlock()
				p.log.Warn("drain deadline reached; closed the connections left", "connections", n)
				for end := time.Now().Add(time.Second); p.openConns() > 0 && time.Now().Before(end); {
					time.Sleep(5 * time.Millisecond)
				}
				break wait
			case <-t.C:
			}
		}
		wg.Wait()
		p.log.Info("drained", "took", time.Since(now).Round(time.Millisecond))
	}()
	return p.DrainStatus()
}

func (p *Proxy) openConns() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.connCount()
}

// connCount is the client connections open in both engines. Called with
// p.mu held.
func (p *Proxy) connCount() int {
	n := len(p.conns)
	for _, l := range p.loops {
		n += int(l.open.Load())
	}
	return n
}

// DrainStatus reports the current drain, if any.
func (p *Proxy) DrainStatus() DrainStatus {
	p.mu.Lock()
	st := p.drain
	st.Connections = p.connCount()
	done := p.drainDone
	p.mu.Unlock()
	st.InFlight = p.inflight.Load()
	if st.Draining && done != nil {
		select {
		case <-done:
			st.Done = true
		default:
		}
	}
	return st
}

// Undrain takes new connections again on the same addresses.
func (p *Proxy) Undrain(ctx context.Context) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.draining.Load() {
		return nil
	}
	if p.stopped {
		return errors.New("edge proxy stopped")
	}
	p.draining.Store(false)
	for _, l := range p.loops {
		l.cut.Store(false)
	}
	p.m.draining.Set(0)
	p.drain = DrainStatus{}
	var errs []error
	for _, l := range p.listeners {
		if l.ln != nil {
			continue
		}
		if err := p.bind(ctx, l); err != nil {
			errs = append(errs, err)
		}
	}
	p.log.Info("undrained", "errors", len(errs))
	return errors.Join(errs...)
}
