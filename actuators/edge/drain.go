// Package edge drains and undrains a PoP's edge proxies through their
// admin API (POST /drain, POST /undrain; see the edge package), for the
// drain-pop playbook: BGP moves the new connections away, the drain lets
// the ones in flight finish and makes the proxies' health checks fail so
// load balancers stop sending more.
package edge

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"sync"
	"time"
)

// Config is how proxies are called.
type Config struct {
	// Timeout bounds one call to one proxy.
	Timeout time.Duration
	// Deadline is the drain deadline asked of each proxy (how long
	// requests in flight may finish); 0 leaves the proxy's own default.
	Deadline time.Duration
}

// DefaultConfig returns a 10 s call timeout and the proxies' own deadline.
func DefaultConfig() Config { return Config{Timeout: 10 * time.Second} }

// Validate reports an unusable config.
func (c Config) Validate() error {
	var errs []error
	if c.Timeout <= 0 {
		errs = append(errs, fmt.Errorf("timeout: %v is not positive; write e.g. 10s", c.Timeout))
	}
	if c.Deadline < 0 {
		errs = append(errs, fmt.Errorf("deadline: %v is negative; write 0 for the proxies' default or e.g. 30s", c.Deadline))
	}
	return errors.Join(errs...)
}

// Deps are the drainer's dependencies.
type Deps struct {
	Log *slog.Logger // nil: discard
}

// Drainer calls edge proxies' admin APIs.
type Drainer struct {
	cfg Config
	log *slog.Logger
	hc  *http.Client
}

// New checks cfg.
func New(cfg Config, deps Deps) (*Drainer, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("edge drainer: %w", err)
	}
	if deps.Log == nil {
		deps.Log = slog.New(slog.DiscardHandler)
	}
	return &Drainer{cfg: cfg, log: deps.Log, hc: &http.Client{Timeout: cfg.Timeout}}, nil
}

// Status is what a proxy answers about its drain.
type Status struct {
	Draining bool  `json:"draining"`
	InFlight int64 `json:"in_flight"`
}

// Drain asks every proxy at addrs (admin host:port) to drain, all at
// once; it returns when each has accepted, with every failure joined.
func (d *Drainer) Drain(ctx context.Context, addrs []string) error {
	q := ""
	if d.cfg.Deadline > 0 {
		q = "?deadline=" + url.QueryEscape(d.cfg.Deadline.String())
	}
	return d.each(ctx, addrs, "drain"+q, true)
}

// Undrain puts every proxy at addrs back in service.
func (d *Drainer) Undrain(ctx context.Context, addrs []string) error {
	return d.each(ctx, addrs, "undrain", false)
}

func (d *Drainer) each(ctx context.Context, addrs []string, path string, want bool) error {
	errs := make([]error, len(addrs))
	var wg sync.WaitGroup
	for i, a := range addrs {
		wg.Go(func() {
			st, err := d.post(ctx, "http://"+a+"/"+path)
			switch {
			case err != nil:
				errs[i] = fmt.Errorf("edge proxy %s: %w", a, err)
			case st.Draining != want:
				errs[i] = fmt.Errorf("edge proxy %s: answered draining=%v", a, st.Draining)
			default:
				d.log.Info("edge proxy "+map[bool]string{true: "draining", false: "in service"}[want], "proxy", a, "in_flight", st.InFlight)
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

func (d *Drainer) post(ctx context.Context, u string) (Status, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, nil)
	if err != nil {
		return Status{}, err
	}
	resp, err := d.hc.Do(req)
	if err != nil {
		return Status{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return Status{}, err
	}
	if resp.StatusCode/100 != 2 {
		return Status{}, fmt.Errorf("%s: %s", resp.Status, b)
	}
	var st Status
	if err := json.Unmarshal(b, &st); err != nil {
		return Status{}, fmt.Errorf("decode %s: %w", b, err)
	}
	return st, nil
}
