package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"

	"github.com/sdnoc/sdnoc/controller"
	"github.com/sdnoc/sdnoc/decisions"
	"github.com/sdnoc/sdnoc/journal"
	"github.com/sdnoc/sdnoc/playbooks"
)

// Client talks to a daemon's API.
type Client struct {
	base  string
	token string
	hc    *http.Client
}

// NewClient reaches the daemon at target: a Unix socket path, or an
// http:// or https:// URL (then token is sent as the bearer token).
func NewClient(target, token string) (*Client, error) {
	if strings.HasPrefix(target, "http://") || strings.HasPrefix(target, "https://") {
		u, err := url.Parse(target)
		if err != nil {
			return nil, fmt.Errorf("daemon %q: %w", target, err)
		}
		return &Client{base: strings.TrimSuffix(u.String(), "/"), token: token, hc: &http.Client{}}, nil
	}
	sock := target
	tr := &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", sock)
	}}
	return &Client{base: "http://sdnoc", hc: &http.Client{Transport: tr}}, nil
}

// APIError is an error answer from the daemon.
type APIError struct {
	Code int
	Msg  string
	Plan *controller.Plan // a refused playbook's plan, if any
}

func (e *APIError) Error() string { return fmt.Sprintf("daemon: %s (HTTP %d)", e.Msg, e.Code) }

func (c *Client) call(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return err
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return fmt.Errorf("reach the daemon: %w (is `sdnoc daemon` running, and is --daemon its --api socket?)", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("read the daemon's answer: %w", err)
	}
	if resp.StatusCode == http.StatusBadGateway {
		// A router change that failed still says what it did.
		var rr RouterResult
		if json.Unmarshal(b, &rr) == nil && rr.Error != "" {
			if p, ok := out.(*RouterResult); ok {
				*p = rr
			}
			return &APIError{Code: resp.StatusCode, Msg: rr.Error}
		}
	}
	if resp.StatusCode != http.StatusOK {
		var e Error
		if json.Unmarshal(b, &e) != nil || e.Error == "" {
			e.Error = strings.TrimSpace(string(b))
		}
		return &APIError{Code: resp.StatusCode, Msg: e.Error, Plan: e.Plan}
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("decode the daemon's answer to %s: %w", path, err)
	}
	return nil
}

// Status is GET /v1/status.
func (c *Client) Status(ctx context.Context) (Status, error) {
	var s Status
	return s, c.call(ctx, http.MethodGet, "/v1/status", nil, &s)
}

// Publications is GET /v1/publication.
func (c *Client) Publications(ctx context.Context) ([]decisions.Publication, error) {
	var p []decisions.Publication
	return p, c.call(ctx, http.MethodGet, "/v1/publication", nil, &p)
}

// Overrides is GET /v1/overrides.
func (c *Client) Overrides(ctx context.Context) ([]journal.Manual, error) {
	var m []journal.Manual
	return m, c.call(ctx, http.MethodGet, "/v1/overrides", nil, &m)
}

// Journal is GET /v1/journal.
func (c *Client) Journal(ctx context.Context, after uint64, limit int) ([]journal.Record, error) {
	var r []journal.Record
	return r, c.call(ctx, http.MethodGet, fmt.Sprintf("/v1/journal?after=%d&limit=%d", after, limit), nil, &r)
}

// Plan asks what pb would do.
func (c *Client) Plan(ctx context.Context, pb *playbooks.Playbook) (controller.Plan, error) {
	return c.playbook(ctx, "plan", pb)
}

// Apply applies pb; a refusal is an *APIError carrying the plan.
func (c *Client) Apply(ctx context.Context, pb *playbooks.Playbook) (controller.Plan, error) {
	return c.playbook(ctx, "apply", pb)
}

func (c *Client) playbook(ctx context.Context, verb string, pb *playbooks.Playbook) (controller.Plan, error) {
	var p controller.Plan
	err := c.call(ctx, http.MethodPost, "/v1/playbooks/"+verb, pb, &p)
	var ae *APIError
	if errors.As(err, &ae) && ae.Plan != nil {
		p = *ae.Plan
	}
	return p, err
}

// Release ends the named playbook now.
func (c *Client) Release(ctx context.Context, name string, r Release) error {
	var out map[string]string
	return c.call(ctx, http.MethodPost, "/v1/overrides/"+url.PathEscape(name)+"/release", r, &out)
}

// ChangeRouter asks the daemon to change a router's configuration. A
// failed change still returns what was done (steps, diff, rollback).
func (c *Client) ChangeRouter(ctx context.Context, name string, rc RouterChange) (RouterResult, error) {
	var rr RouterResult
	err := c.call(ctx, http.MethodPost, "/v1/routers/"+url.PathEscape(name)+"/change", rc, &rr)
	return rr, err
}

// RouterRunning returns a router's running configuration.
func (c *Client) RouterRunning(ctx context.Context, name string) (string, error) {
	var out map[string]string
	err := c.call(ctx, http.MethodGet, "/v1/routers/"+url.PathEscape(name)+"/running", nil, &out)
	return out["running"], err
}
