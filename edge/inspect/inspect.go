// Package inspect is the edge proxy's request inspection: a small per-site
// rule engine, and the Guard that runs any inspection module fail-open
// (seed 001): a module that panics or errors is switched off for that site
// and the request goes through; when it keeps failing for several sites it
// is switched off everywhere. A security module's failure never drops a
// request.
package inspect

import (
	"errors"
	"fmt"
	"regexp"
)

// Rule is one rule; empty patterns match anything.
type Rule struct {
	Name, Method, Path, HeaderName, HeaderPattern, Action string
	Status                                                int
}

// Request is what rules look at.
type Request struct {
	Method, Path string
	// Header returns a field's first value (name case-insensitive).
	Header func(name string) string
}

// Verdict is an inspection's outcome.
type Verdict struct {
	Block  bool
	Rule   string
	Status int
}

// Inspector inspects a request.
type Inspector interface {
	Inspect(r *Request) (Verdict, error)
}

type compiled struct {
	name          string
	method, path  *regexp.Regexp
	header        string
	headerPattern *regexp.Regexp
	block         bool
	status        int
}

type rules []compiled

// Compile builds the rule engine: rules in order, first match wins, no
// match allows.
func Compile(rs []Rule) (Inspector, error) {
	var out rules
	var errs []error
	for i, r := range rs {
		c := compiled{name: r.Name, header: r.HeaderName, status: r.Status}
		for _, p := range []struct {
			dst  **regexp.Regexp
			key  string
			expr string
		}{{&c.method, "method", r.Method}, {&c.path, "path", r.Path}, {&c.headerPattern, "header pattern", r.HeaderPattern}} {
			if p.expr == "" {
				continue
			}
			re, err := regexp.Compile(p.expr)
			if err != nil {
				errs = append(errs, fmt.Errorf("rule %d (%s): %s: %w", i, r.Name, p.key, err))
				continue
			}
			*p.dst = re
		}
		switch r.Action {
		case "", "block":
			c.block = true
		case "allow":
		default:
			errs = append(errs, fmt.Errorf("rule %d (%s): action %q is not block or allow", i, r.Name, r.Action))
		}
		if c.status == 0 {
			c.status = 403
		}
		out = append(out, c)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return out, nil
}

// Inspect applies the rules.
func (rs rules) Inspect(r *Request) (Verdict, error) {
	for i := range rs {
		c := &rs[i]
		if c.method != nil && !c.method.MatchString(r.Method) {
			continue
		}
		if c.path != nil && !c.path.MatchString(r.Path) {
			continue
		}
		if c.header != "" || c.headerPattern != nil {
			v := ""
			if r.Header != nil && c.header != "" {
				v = r.Header(c.header)
			}
			if c.headerPattern != nil && !c.headerPattern.MatchString(v) {
				continue
			}
			if c.headerPattern == nil && v == "" {
				continue
			}
		}
		return Verdict{Block: c.block, Rule: c.name, Status: c.status}, nil
	}
	return Verdict{}, nil
}
