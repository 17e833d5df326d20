package edge

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"time"
)

// checkHealth probes the origin every interval on a connection of its own
// (never a pooled one, so a check does not hide a stale pool): a TCP
// connect, or a GET of the site's health path when one is set. The origin
// goes down after Fall failures in a row and up after Rise successes.
func (p *originPool) checkHealth() {
	hc := p.health
	p.m.healthy.Set(1)
	t := time.NewTicker(hc.Interval)
	defer t.Stop()
	ups, downs := 0, 0
	for {
		select {
		case <-p.stop:
			return
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(context.Background(), hc.Timeout)
		err := p.probe(ctx)
		cancel()
		if err == nil {
			ups, downs = ups+1, 0
			if !p.healthy.Load() && ups >= hc.Rise {
				p.healthy.Store(true)
				p.m.healthy.Set(1)
				p.log.Info("origin up", "after", ups)
			}
			continue
		}
		ups, downs = 0, downs+1
		if p.healthy.Load() && downs >= hc.Fall {
			p.healthy.Store(false)
			p.m.healthy.Set(0)
			p.log.Warn("origin down", "after", downs, "err", err)
		}
	}
}

func (p *originPool) probe(ctx context.Context) error {
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", p.addr)
	if err != nil {
		return err
	}
	defer c.Close()
	if p.health.Path == "" {
		return nil
	}
	if dl, ok := ctx.Deadline(); ok {
		c.SetDeadline(dl)
	}
	if _, err := fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: sdnoc-edge-health\r\nConnection: close\r\n\r\n", p.health.Path, p.host); err != nil {
		return fmt.Errorf("health check: %w", err)
	}
	h := &head{}
	if _, err := readHead(bufio.NewReader(c), h); err != nil {
		return fmt.Errorf("health check: %w", err)
	}
	if err := parseResponse(h); err != nil {
		return fmt.Errorf("health check: %w", err)
	}
	if h.status < p.health.ExpectMin || h.status > p.health.ExpectMax {
		return fmt.Errorf("health check: status %d, want %d-%d", h.status, p.health.ExpectMin, p.health.ExpectMax)
	}
	return nil
}
