// Package sites reads the edge proxy's site files: one YAML file per
// customer site on local disk, so that a proxy serves without any control
// plane (seed 001). Every file is validated before it takes effect, every
// accepted version is kept with its time, and the configuration as it was
// at any earlier time can be rebuilt (the snapper's rollback).
package sites

import (
	"bytes"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Site is one customer site, parsed from one file.
type Site struct {
	Name        string // the file name without .yaml / .yml
	File        string // the path it was read from
	Hosts       []string
	Listen      []string // dedicated addresses, served for this site only
	TLS         *TLS     // nil: plain HTTP only
	Origins     []Origin
	Pool        Pool
	HealthCheck HealthCheck
	Upload      Upload
	Timeouts    Timeouts
	Rules       []Rule
	AccessLog   bool
	SHA256      string // of the file's bytes
}

// TLS is a site's certificate, loaded and checked when the file is parsed.
type TLS struct {
	CertFile, KeyFile string
	Certificate       tls.Certificate
}

// Origin is one origin server.
type Origin struct {
	Address string // host:port
	Weight  int
}

// Pool is how connections to the site's origins are kept (seed 002).
type Pool struct {
	OriginKeepAlive time.Duration // the origin's own keep-alive idle timeout
	IdleTimeout     time.Duration // ours; always below OriginKeepAlive
	Warm, MaxIdle   int
	DialTimeout     time.Duration
	LivenessCheck   bool
	Retry           bool
}

// HealthCheck is how each origin is checked.
type HealthCheck struct {
	Path                 string // "": TCP connect only
	Interval, Timeout    time.Duration
	Rise, Fall           int
	ExpectMin, ExpectMax int
}

// Upload is what happens when an origin answers before a request body has
// been sent (seed 000).
type Upload struct {
	EarlyResponse string // "relay" or "abort"
	Linger        time.Duration
}

// Timeouts bound the site's exchanges.
type Timeouts struct {
	ResponseHeader, ClientIdle time.Duration
}

// Rule is one inspection rule; the patterns are Go regexps.
type Rule struct {
	Name, Method, Path, HeaderName, HeaderPattern, Action string
	Status                                                int
}

// Matches reports whether the site serves host (lowercase, no port).
func (s *Site) Matches(host string) bool {
	for _, h := range s.Hosts {
		if h == host {
			return true
		}
		if rest, ok := strings.CutPrefix(h, "*."); ok {
			if i := strings.IndexByte(host, '.'); i > 0 && host[i+1:] == rest {
				return true
			}
		}
	}
	return false
}

// The file as written. Durations are strings so that a bad one is
// reported with its field, not as a YAML type error.
type fileSite struct {
	Hosts       []string        `yaml:"hosts"`
	Listen      []string        `yaml:"listen"`
	TLS         *fileTLS        `yaml:"tls"`
	Origins     []fileOrigin    `yaml:"origins"`
	Pool        filePool        `yaml:"pool"`
	HealthCheck fileHealthCheck `yaml:"health_check"`
	Upload      fileUpload      `yaml:"upload"`
	Timeouts    fileTimeouts    `yaml:"timeouts"`
	Rules       []fileRule      `yaml:"rules"`
	AccessLog   *bool           `yaml:"access_log"`
}

type fileTLS struct {
	Cert string `yaml:"cert"`
	Key  string `yaml:"key"`
}

type fileOrigin struct {
	Address string `yaml:"address"`
	Weight  *int   `yaml:"weight"`
}

type filePool struct {
	OriginKeepAlive string `yaml:"origin_keepalive"`
	IdleTimeout     string `yaml:"idle_timeout"`
	Warm            *int   `yaml:"warm"`
	MaxIdle         *int   `yaml:"max_idle"`
	DialTimeout     string `yaml:"dial_timeout"`
	LivenessCheck   *bool  `yaml:"liveness_check"`
	Retry           *bool  `yaml:"retry"`
}

type fileHealthCheck struct {
	Path         string `yaml:"path"`
	Interval     string `yaml:"interval"`
	Timeout      string `yaml:"timeout"`
	Rise         *int   `yaml:"rise"`
	Fall         *int   `yaml:"fall"`
	ExpectStatus string `yaml:"expect_status"`
}

type fileUpload struct {
	EarlyResponse string `yaml:"early_response"`
	Linger        string `yaml:"linger"`
}

type fileTimeouts struct {
	ResponseHeader string `yaml:"response_header"`
	ClientIdle     string `yaml:"client_idle"`
}

type fileRule struct {
	Name   string `yaml:"name"`
	Method string `yaml:"method"`
	Path   string `yaml:"path"`
	Header *struct {
		Name    string `yaml:"name"`
		Pattern string `yaml:"pattern"`
	} `yaml:"header"`
	Action string `yaml:"action"`
	Status *int   `yaml:"status"`
}

// Defaults of a site file's optional fields.
const (
	DefaultOriginKeepAlive = 5 * time.Second // Apache's KeepAliveTimeout
	DefaultWarm            = 2
	DefaultMaxIdle         = 64
	DefaultDialTimeout     = 2 * time.Second
	DefaultHealthInterval  = 2 * time.Second
	DefaultHealthTimeout   = time.Second
	DefaultLinger          = 5 * time.Second
	DefaultResponseHeader  = 60 * time.Second
	DefaultClientIdle      = 60 * time.Second
)

// errs collects every problem of one file, each "file: field: what; fix".
type errs struct {
	file string
	list []error
}

func (e *errs) add(field, format string, args ...any) {
	e.list = append(e.list, fmt.Errorf("%s: %s: %s", e.file, field, fmt.Sprintf(format, args...)))
}

func (e *errs) err() error { return errors.Join(e.list...) }

// Parse reads one site file: defaults applied, everything validated, every
// problem reported at once. Relative certificate paths are relative to the
// file's directory.
func Parse(file string, data []byte) (*Site, error) {
	return parse(SiteName(file), file, filepath.Dir(file), data)
}

// SiteName is the site a file in the sites directory holds.
func SiteName(file string) string {
	return strings.TrimSuffix(strings.TrimSuffix(filepath.Base(file), ".yaml"), ".yml")
}

// parse reads a site's file; relative certificate paths are relative to
// base (the sites directory, also for a kept version read back).
func parse(name, file, base string, data []byte) (*Site, error) {
	e := &errs{file: file}
	if !validName(name) {
		e.add("(file name)", "%q is not a usable site name; name the file with letters, digits, '-', '_' or '.', e.g. shop.example.yaml", name)
	}
	var f fileSite
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil {
		var te *yaml.TypeError
		if errors.As(err, &te) {
			for _, m := range te.Errors {
				m = strings.Replace(m, " in type sites.fileSite", "", 1)
				e.add("(file)", "%s; remove the key or fix its spelling or type (see edge/examples/sites)", m)
			}
			return nil, e.err()
		}
		msg := err.Error()
		if errors.Is(err, io.EOF) {
			msg = "the file is empty"
		}
		e.add("(file)", "%s; write a YAML mapping with at least hosts and origins (see edge/examples/sites)", strings.TrimPrefix(msg, "yaml: "))
		return nil, e.err()
	}
	s := &Site{Name: name, File: file, AccessLog: true}
	sum := sha256.Sum256(data)
	s.SHA256 = hex.EncodeToString(sum[:])

	if len(f.Hosts) == 0 {
		e.add("hosts", "missing; list the host names this site serves, e.g. [shop.example.com]")
	}
	seen := map[string]bool{}
	for i, h := range f.Hosts {
		field := fmt.Sprintf("hosts[%d]", i)
		switch {
		case h != strings.ToLower(h):
			e.add(field, "%q has upper case; write it in lower case", h)
		case !validHost(h):
			e.add(field, "%q is not a host name; write e.g. shop.example.com or *.example.com (no port, no scheme)", h)
		case seen[h]:
			e.add(field, "%q is listed twice; remove one", h)
		}
		seen[h] = true
		s.Hosts = append(s.Hosts, h)
	}
	for i, a := range f.Listen {
		if !validAddr(a, true) {
			e.add(fmt.Sprintf("listen[%d]", i), "%q is not host:port with an IP; write e.g. \"198.51.100.7:443\"", a)
		}
		s.Listen = append(s.Listen, a)
	}
	if f.TLS != nil {
		s.TLS = parseTLS(e, base, f.TLS)
	}
	if len(f.Origins) == 0 {
		e.add("origins", "missing; list at least one origin, e.g. [{address: 10.1.0.10:8080}]")
	}
	for i, o := range f.Origins {
		field := fmt.Sprintf("origins[%d]", i)
		if !validAddr(o.Address, false) {
			e.add(field+".address", "%q is not host:port with an IP or name; write e.g. \"10.1.0.10:8080\"", o.Address)
		}
		w := 1
		if o.Weight != nil {
			w = *o.Weight
			if w < 1 || w > 100 {
				e.add(field+".weight", "%d is outside 1..100; set a relative weight, or delete the key for 1", w)
			}
		}
		s.Origins = append(s.Origins, Origin{Address: o.Address, Weight: w})
	}
	parsePool(e, &f.Pool, &s.Pool)
	parseHealth(e, &f.HealthCheck, &s.HealthCheck)
	s.Upload.EarlyResponse = f.Upload.EarlyResponse
	switch s.Upload.EarlyResponse {
	case "":
		s.Upload.EarlyResponse = "relay"
	case "relay", "abort":
	default:
		e.add("upload.early_response", "%q is not relay or abort; relay (the default) gives the client the origin's early answer and keeps the upload flowing while the origin reads it", f.Upload.EarlyResponse)
	}
	s.Upload.Linger = duration(e, "upload.linger", f.Upload.Linger, DefaultLinger, false)
	s.Timeouts.ResponseHeader = duration(e, "timeouts.response_header", f.Timeouts.ResponseHeader, DefaultResponseHeader, false)
	s.Timeouts.ClientIdle = duration(e, "timeouts.client_idle", f.Timeouts.ClientIdle, DefaultClientIdle, false)
	names := map[string]bool{}
	for i, r := range f.Rules {
		s.Rules = append(s.Rules, parseRule(e, fmt.Sprintf("rules[%d]", i), r, names))
	}
	if f.AccessLog != nil {
		s.AccessLog = *f.AccessLog
	}
	if err := e.err(); err != nil {
		return nil, err
	}
	return s, nil
}

func parseTLS(e *errs, base string, t *fileTLS) *TLS {
	if t.Cert == "" || t.Key == "" {
		e.add("tls", "needs both cert and key (PEM files); or delete tls to serve plain HTTP only")
		return nil
	}
	out := &TLS{CertFile: t.Cert, KeyFile: t.Key}
	for _, p := range []*string{&out.CertFile, &out.KeyFile} {
		if !filepath.IsAbs(*p) {
			*p = filepath.Join(base, *p)
		}
	}
	cert, err := tls.LoadX509KeyPair(out.CertFile, out.KeyFile)
	if err != nil {
		e.add("tls", "cannot load %s and %s: %v; give a PEM certificate chain and its private key", out.CertFile, out.KeyFile, err)
		return nil
	}
	out.Certificate = cert
	return out
}

func parsePool(e *errs, f *filePool, p *Pool) {
	p.OriginKeepAlive = duration(e, "pool.origin_keepalive", f.OriginKeepAlive, DefaultOriginKeepAlive, false)
	p.IdleTimeout = duration(e, "pool.idle_timeout", f.IdleTimeout, p.OriginKeepAlive*3/4, false)
	if p.OriginKeepAlive > 0 && p.IdleTimeout >= p.OriginKeepAlive {
		e.add("pool.idle_timeout", "%v is not below origin_keepalive (%v): the origin would close pooled connections we are about to reuse (seed 002); set it below, or delete it for 3/4 of origin_keepalive", p.IdleTimeout, p.OriginKeepAlive)
	}
	p.Warm = intField(e, "pool.warm", f.Warm, DefaultWarm, 0, 1000)
	p.MaxIdle = intField(e, "pool.max_idle", f.MaxIdle, max(DefaultMaxIdle, p.Warm), 1, 100000)
	if p.MaxIdle < p.Warm {
		e.add("pool.max_idle", "%d is below warm (%d); raise it or lower warm", p.MaxIdle, p.Warm)
	}
	p.DialTimeout = duration(e, "pool.dial_timeout", f.DialTimeout, DefaultDialTimeout, false)
	p.LivenessCheck, p.Retry = true, true
	if f.LivenessCheck != nil {
		p.LivenessCheck = *f.LivenessCheck
	}
	if f.Retry != nil {
		p.Retry = *f.Retry
	}
}

func parseHealth(e *errs, f *fileHealthCheck, h *HealthCheck) {
	h.Path = f.Path
	if h.Path != "" && (!strings.HasPrefix(h.Path, "/") || strings.ContainsAny(h.Path, " \t\r\n")) {
		e.add("health_check.path", "%q is not a path; write e.g. /healthz, or delete it to check with a TCP connect", h.Path)
	}
	h.Interval = duration(e, "health_check.interval", f.Interval, DefaultHealthInterval, false)
	h.Timeout = duration(e, "health_check.timeout", f.Timeout, min(DefaultHealthTimeout, h.Interval), false)
	if h.Interval > 0 && h.Timeout > h.Interval {
		e.add("health_check.timeout", "%v is above the interval (%v); set it to the interval or less", h.Timeout, h.Interval)
	}
	h.Rise = intField(e, "health_check.rise", f.Rise, 2, 1, 100)
	h.Fall = intField(e, "health_check.fall", f.Fall, 3, 1, 100)
	h.ExpectMin, h.ExpectMax = 200, 399
	if f.ExpectStatus != "" {
		lo, hi, ok := statusRange(f.ExpectStatus)
		if !ok {
			e.add("health_check.expect_status", "%q is not a status or range; write e.g. 200 or 200-399", f.ExpectStatus)
		}
		h.ExpectMin, h.ExpectMax = lo, hi
	}
}

func statusRange(s string) (int, int, bool) {
	lo, hi, found := strings.Cut(s, "-")
	a, err1 := strconv.Atoi(strings.TrimSpace(lo))
	b := a
	var err2 error
	if found {
		b, err2 = strconv.Atoi(strings.TrimSpace(hi))
	}
	if err1 != nil || err2 != nil || a < 100 || b > 599 || a > b {
		return 0, 0, false
	}
	return a, b, true
}

func parseRule(e *errs, field string, r fileRule, names map[string]bool) Rule {
	out := Rule{Name: r.Name, Method: r.Method, Path: r.Path, Action: r.Action}
	switch {
	case r.Name == "":
		e.add(field+".name", "missing; name the rule (it is logged and counted by name)")
	case names[r.Name]:
		e.add(field+".name", "%q is used by another rule; names must be unique in the file", r.Name)
	}
	names[r.Name] = true
	if r.Header != nil {
		out.HeaderName, out.HeaderPattern = r.Header.Name, r.Header.Pattern
		if !validToken(r.Header.Name) {
			e.add(field+".header.name", "%q is not a header field name; write e.g. User-Agent", r.Header.Name)
		}
	}
	for _, p := range []struct{ key, re string }{{"method", r.Method}, {"path", r.Path}, {"header.pattern", out.HeaderPattern}} {
		if _, err := regexp.Compile(p.re); err != nil {
			e.add(field+"."+p.key, "%q is not a Go regexp: %v", p.re, err)
		}
	}
	if r.Method == "" && r.Path == "" && r.Header == nil {
		e.add(field, "matches every request; give at least one of method, path or header")
	}
	switch out.Action {
	case "":
		out.Action = "block"
	case "block", "allow":
	default:
		e.add(field+".action", "%q is not block or allow", r.Action)
	}
	out.Status = 403
	if r.Status != nil {
		out.Status = *r.Status
		if out.Status < 400 || out.Status > 599 {
			e.add(field+".status", "%d is not an error status; use 400..599 (default 403)", out.Status)
		}
	}
	return out
}

// duration parses a Go duration, or gives def when the key is absent.
func duration(e *errs, field, s string, def time.Duration, zeroOK bool) time.Duration {
	if s == "" {
		return def
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		e.add(field, "%q is not a duration; write a Go duration such as 5s, 1500ms or 2m", s)
		return def
	}
	if d < 0 || (d == 0 && !zeroOK) {
		e.add(field, "%v must be above zero; delete the key for the default (%v)", d, def)
		return def
	}
	return d
}

func intField(e *errs, field string, v *int, def, lo, hi int) int {
	if v == nil {
		return def
	}
	if *v < lo || *v > hi {
		e.add(field, "%d is outside %d..%d; delete the key for the default (%d)", *v, lo, hi, def)
		return def
	}
	return *v
}

func validName(s string) bool {
	if s == "" || s == "." || s == ".." || len(s) > 200 {
		return false
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return true
}

// validHost accepts a DNS name, optionally with a leading "*." wildcard.
func validHost(h string) bool {
	h = strings.TrimPrefix(h, "*.")
	if h == "" || len(h) > 253 {
		return false
	}
	// An all-digit last label is a mistyped IP address, not a name.
	if last := h[strings.LastIndexByte(h, '.')+1:]; strings.Trim(last, "0123456789") == "" {
		return false
	}
	for label := range strings.SplitSeq(h, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, c := range label {
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
				return false
			}
		}
	}
	return true
}

func validAddr(a string, ipOnly bool) bool {
	host, port, err := net.SplitHostPort(a)
	if err != nil {
		return false
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 1 || n > 65535 {
		return false
	}
	if net.ParseIP(host) != nil {
		return true
	}
	return !ipOnly && validHost(strings.ToLower(host)) && !strings.HasPrefix(host, "*.")
}

func validToken(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range s {
		if c > 126 || c <= 32 || strings.ContainsRune("\"(),/:;<=>?@[\\]{}", c) {
			return false
		}
	}
	return true
}
