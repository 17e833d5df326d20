// Package playbooks reads the NOC's playbooks, YAML files of manual intents
// (drain a PoP, take an ISP out, shift a prefix range, restore), and turns
// them into the decision engine's overrides for a topology. Planning,
// applying and releasing them is the daemon's job, through its API; this
// package only says what a playbook means, and refuses, naming the file,
// the field and the fix, one that means nothing or too much.
package playbooks

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/sdnoc/sdnoc/decisions"
	"github.com/sdnoc/sdnoc/topologies"
)

// Kind is what a playbook does.
type Kind string

// The kinds of playbook.
const (
	DrainPoP    Kind = "drain-pop"    // withdraw a PoP's prefixes from all its ISPs, drain its proxies
	DisableISP  Kind = "disable-isp"  // withdraw everything from one ISP, everywhere or in one PoP
	ShiftPrefix Kind = "shift-prefix" // move a prefix range from one PoP to others
	Restore     Kind = "restore"      // release active playbooks
)

// Prepending limits: at most MaxPrepend extra copies of the AS, for at
// most MaxPrependFor; DefaultPrependFor when a playbook prepends and says
// not for how long.
const (
	MaxPrepend        = 10
	MaxPrependFor     = 30 * time.Minute
	DefaultPrependFor = time.Minute
)

// MaxExpiry is the longest a playbook may hold: a forgotten override must
// not outlive a shift change by much (the daemon may set a shorter cap).
const MaxExpiry = 24 * time.Hour

// Playbook is a parsed, valid playbook. It travels as JSON from the CLI to
// the daemon, which resolves it against its own topology.
type Playbook struct {
	Name   string        `json:"name"`
	Kind   Kind          `json:"kind"`
	Reason string        `json:"reason"`
	Author string        `json:"author"`
	Expiry time.Duration `json:"expiry"` // from apply; 0 < Expiry <= MaxExpiry

	PoP          string         `json:"pop,omitempty"`      // drain-pop; disable-isp (optional); shift-prefix: from
	ISP          string         `json:"isp,omitempty"`      // disable-isp: a link's isp or name
	Prefixes     []netip.Prefix `json:"prefixes,omitempty"` // shift-prefix: every edge prefix inside one of these moves
	To           []string       `json:"to,omitempty"`       // drain-pop, shift-prefix: receiving PoPs; empty: every other PoP
	DrainProxies bool           `json:"drain_proxies"`      // drain-pop: drain the PoP's edge proxies too
	// Prepend, for a drain-pop, first announces the PoP's prefixes with
	// that many extra copies of the edge's AS for PrependFor, so that
	// traffic that can come in elsewhere leaves gently, then withdraws.
	Prepend    int           `json:"prepend,omitempty"`
	PrependFor time.Duration `json:"prepend_for,omitempty"`
	Release    []string      `json:"release,omitempty"` // restore: the playbooks to release
	All        bool          `json:"all,omitempty"`     // restore: release every active playbook

	File string `json:"file,omitempty"`
}

// fileBook is the YAML form.
type fileBook struct {
	Name         string   `yaml:"name"`
	Kind         string   `yaml:"kind"`
	Reason       string   `yaml:"reason"`
	Author       string   `yaml:"author"`
	Expires      string   `yaml:"expires"`
	PoP          string   `yaml:"pop"`
	From         string   `yaml:"from"`
	ISP          string   `yaml:"isp"`
	Prefixes     []string `yaml:"prefixes"`
	To           []string `yaml:"to"`
	DrainProxies *bool    `yaml:"drain_proxies"`
	Prepend      int      `yaml:"prepend"`
	PrependFor   string   `yaml:"prepend_for"`
	Release      []string `yaml:"release"`
	All          bool     `yaml:"all"`
}

// Error is one problem in a playbook file.
type Error struct {
	File, Field, Msg string
}

func (e Error) Error() string { return e.File + ": " + e.Field + ": " + e.Msg }

type errs struct {
	file string
	list []error
}

func (e *errs) add(field, format string, a ...any) {
	e.list = append(e.list, Error{File: e.file, Field: field, Msg: fmt.Sprintf(format, a...)})
}

func (e *errs) err() error { return errors.Join(e.list...) }

var nameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,62}$`)

// NameOf is the name a playbook file gets when it sets none: its base
// name without .yaml.
func NameOf(file string) string {
	return strings.TrimSuffix(strings.TrimSuffix(filepath.Base(file), ".yaml"), ".yml")
}

// Parse reads a playbook file. Every problem is reported, each as
// "file: field: what is wrong; the fix".
func Parse(file string, data []byte) (*Playbook, error) {
	e := &errs{file: file}
	var f fileBook
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil {
		var te *yaml.TypeError
		if errors.As(err, &te) {
			for _, m := range te.Errors {
				e.add("(file)", "%s; remove the key or fix its spelling or type (see playbooks/examples)", strings.Replace(m, " in type playbooks.fileBook", "", 1))
			}
			return nil, e.err()
		}
		msg := strings.TrimPrefix(err.Error(), "yaml: ")
		if errors.Is(err, io.EOF) {
			msg = "the file is empty"
		}
		e.add("(file)", "%s; write a YAML mapping with kind, reason, author and expires (see playbooks/examples)", msg)
		return nil, e.err()
	}
	p := &Playbook{Name: f.Name, Kind: Kind(f.Kind), Reason: strings.TrimSpace(f.Reason), Author: strings.TrimSpace(f.Author), File: file}
	if p.Name == "" {
		p.Name = NameOf(file)
	}
	if !nameRE.MatchString(p.Name) {
		e.add("name", "%q is not a usable name; use lower-case letters, digits, '.', '_' and '-', e.g. drain-pop1-maintenance", p.Name)
	}
	kinds := []Kind{DrainPoP, DisableISP, ShiftPrefix, Restore}
	if !slices.Contains(kinds, p.Kind) {
		e.add("kind", "%q is not a playbook kind; write one of drain-pop, disable-isp, shift-prefix, restore", f.Kind)
	}
	if p.Reason == "" {
		e.add("reason", "missing; say why, e.g. \"line card swap on pop1-br, CHG-1234\": the journal keeps it")
	}
	if p.Author == "" {
		e.add("author", "missing; write who is responsible, e.g. your login")
	}
	if p.Kind != Restore {
		switch d, err := parseExpiry(f.Expires); {
		case f.Expires == "":
			e.add("expires", "missing; every playbook ends: write how long it holds after apply, e.g. 4h (at most %v)", MaxExpiry)
		case err != nil:
			e.add("expires", "%q is not a duration; write e.g. 90m or 4h", f.Expires)
		case d <= 0:
			e.add("expires", "%q is not positive; write e.g. 4h", f.Expires)
		case d > MaxExpiry:
			e.add("expires", "%v is longer than the %v cap; write %v or less and apply again later if still needed", d, MaxExpiry, MaxExpiry)
		default:
			p.Expiry = d
		}
	} else if f.Expires != "" {
		e.add("expires", "a restore ends at once; remove the key")
	}
	only := func(key string, set bool, kinds ...Kind) {
		if set && !slices.Contains(kinds, p.Kind) {
			e.add(key, "not used by a %s playbook; remove it", p.Kind)
		}
	}
	only("pop", f.PoP != "", DrainPoP, DisableISP)
	only("from", f.From != "", ShiftPrefix)
	only("isp", f.ISP != "", DisableISP)
	only("prefixes", len(f.Prefixes) > 0, ShiftPrefix)
	only("to", len(f.To) > 0, ShiftPrefix, DrainPoP)
	only("drain_proxies", f.DrainProxies != nil, DrainPoP)
	only("prepend", f.Prepend != 0, DrainPoP)
	only("prepend_for", f.PrependFor != "", DrainPoP)
	only("release", len(f.Release) > 0, Restore)
	only("all", f.All, Restore)
	switch p.Kind {
	case DrainPoP:
		p.PoP = f.PoP
		if p.PoP == "" {
			e.add("pop", "missing; name the PoP to drain, e.g. pop1")
		}
		p.DrainProxies = f.DrainProxies == nil || *f.DrainProxies
		p.To = f.To
		p.Prepend = f.Prepend
		switch {
		case f.Prepend < 0 || f.Prepend > MaxPrepend:
			e.add("prepend", "%d: write 1 to %d extra copies of the AS, or leave it out to withdraw at once", f.Prepend, MaxPrepend)
		case f.Prepend == 0 && f.PrependFor != "":
			e.add("prepend_for", "set without prepend; add prepend: 3, say, or remove it")
		case f.Prepend > 0:
			p.PrependFor = DefaultPrependFor
			if f.PrependFor != "" {
				d, err := parseExpiry(f.PrependFor)
				switch {
				case err != nil || d <= 0:
					e.add("prepend_for", "%q is not a positive duration; write e.g. 2m", f.PrependFor)
				case d > MaxPrependFor:
					e.add("prepend_for", "%v is longer than %v; a gentle drain that long is a slow one: shorten it", d, MaxPrependFor)
				default:
					p.PrependFor = d
				}
			}
			if p.Expiry > 0 && p.PrependFor >= p.Expiry {
				e.add("prepend_for", "%v is not shorter than expires (%v): the drain would never withdraw", p.PrependFor, p.Expiry)
			}
		}
	case DisableISP:
		p.PoP, p.ISP = f.PoP, f.ISP
		if p.ISP == "" {
			e.add("isp", "missing; name the ISP (a link's isp or name), e.g. isp2; add pop: to limit it to one PoP")
		}
	case ShiftPrefix:
		p.PoP, p.To = f.From, f.To
		if p.PoP == "" {
			e.add("from", "missing; name the PoP the prefixes leave, e.g. pop1")
		}
		if len(f.Prefixes) == 0 {
			e.add("prefixes", "missing; list the ranges to move, e.g. [203.0.113.0/26]")
		}
		for i, s := range f.Prefixes {
			pf, err := netip.ParsePrefix(s)
			switch {
			case err != nil:
				e.add(fmt.Sprintf("prefixes[%d]", i), "%q is not a prefix; write e.g. 203.0.113.0/26 or 2001:db8:100::/48", s)
			case pf != pf.Masked():
				e.add(fmt.Sprintf("prefixes[%d]", i), "%s has host bits set; write %s", s, pf.Masked())
			default:
				p.Prefixes = append(p.Prefixes, pf)
			}
		}
	}
	if slices.Contains(p.To, p.PoP) && p.PoP != "" {
		e.add("to", "lists %s, the PoP the traffic leaves; remove it", p.PoP)
	}
	switch p.Kind {
	case Restore:
		p.Release, p.All = f.Release, f.All
		if len(p.Release) == 0 && !p.All {
			e.add("release", "missing; list the playbooks to release, or write all: true")
		}
		if len(p.Release) > 0 && p.All {
			e.add("all", "set together with release; keep one")
		}
	}
	if err := e.err(); err != nil {
		return nil, err
	}
	return p, nil
}

// parseExpiry reads "4h", "90m" or "1h30m".
func parseExpiry(s string) (time.Duration, error) {
	return time.ParseDuration(strings.TrimSpace(s))
}

// Override is what a playbook pins on topo's links from now, for the
// decision engine: its withdrawals and announcements. A restore pins
// nothing and is an error here. Every name it uses must be in topo.
func (p *Playbook) Override(topo *topologies.Topology, now time.Time) (decisions.Override, error) {
	o := decisions.Override{ID: p.Name, Expires: now.Add(p.Expiry), Withdraw: map[string][]netip.Prefix{}, Announce: map[string][]netip.Prefix{}}
	if p.Prepend > 0 {
		o.From = now.Add(p.PrependFor)
	}
	pop := func(name, field string) (*topologies.PoP, error) {
		var names []string
		for i := range topo.PoPs {
			if topo.PoPs[i].Name == name {
				return &topo.PoPs[i], nil
			}
			names = append(names, topo.PoPs[i].Name)
		}
		return nil, fmt.Errorf("playbook %s: %s: no PoP %q in topology %s; it has %s", p.Name, field, name, topo.Name, strings.Join(names, ", "))
	}
	published := func(id string) []netip.Prefix {
		var out []netip.Prefix
		for _, pf := range topo.Prefixes {
			if slices.Contains(pf.Publish, id) {
				out = append(out, pf.Prefix)
			}
		}
		return out
	}
	switch p.Kind {
	case DrainPoP:
		pp, err := pop(p.PoP, "pop")
		if err != nil {
			return o, err
		}
		for _, l := range pp.Links {
			id := topo.LinkID(pp.Name, l.Name)
			if ps := published(id); len(ps) > 0 {
				o.Withdraw[id] = ps
			}
		}
		// Prefixes that only this PoP publishes would be stranded: they
		// are announced at the receiving PoPs for as long as it is drained.
		to, err := p.receivers(topo, pp, pop)
		if err != nil {
			return o, err
		}
		for _, pf := range topo.Prefixes {
			if slices.ContainsFunc(pf.Publish, func(id string) bool { return !strings.HasPrefix(id, pp.Name+"/") }) ||
				!slices.ContainsFunc(pf.Publish, func(id string) bool { return strings.HasPrefix(id, pp.Name+"/") }) {
				continue
			}
			announceAt(o, topo, pf, to)
		}
	case DisableISP:
		if p.PoP != "" {
			if _, err := pop(p.PoP, "pop"); err != nil {
				return o, err
			}
		}
		for _, pp := range topo.PoPs {
			if p.PoP != "" && pp.Name != p.PoP {
				continue
			}
			for _, l := range pp.Links {
				if l.ISP == p.ISP || l.ISP == "" && l.Name == p.ISP {
					id := topo.LinkID(pp.Name, l.Name)
					if ps := published(id); len(ps) > 0 {
						o.Withdraw[id] = ps
					}
				}
			}
		}
		if len(o.Withdraw) == 0 {
			where := "any PoP"
			if p.PoP != "" {
				where = p.PoP
			}
			return o, fmt.Errorf("playbook %s: isp: no link of %s has isp (or, without one, name) %q", p.Name, where, p.ISP)
		}
	case ShiftPrefix:
		from, err := pop(p.PoP, "from")
		if err != nil {
			return o, err
		}
		to, err := p.receivers(topo, from, pop)
		if err != nil {
			return o, err
		}
		var moving []topologies.Prefix
		for _, pf := range topo.Prefixes {
			if slices.ContainsFunc(p.Prefixes, func(r netip.Prefix) bool {
				return r.Addr().Is4() == pf.Prefix.Addr().Is4() && r.Bits() <= pf.Prefix.Bits() && r.Contains(pf.Prefix.Addr())
			}) && slices.ContainsFunc(from.Links, func(l topologies.Link) bool { return slices.Contains(pf.Publish, topo.LinkID(from.Name, l.Name)) }) {
				moving = append(moving, pf)
			}
		}
		if len(moving) == 0 {
			return o, fmt.Errorf("playbook %s: prefixes: no edge prefix inside %v is published in %s", p.Name, p.Prefixes, from.Name)
		}
		for _, pf := range moving {
			for _, l := range from.Links {
				if id := topo.LinkID(from.Name, l.Name); slices.Contains(pf.Publish, id) {
					o.Withdraw[id] = append(o.Withdraw[id], pf.Prefix)
				}
			}
			announceAt(o, topo, pf, to)
		}
	default:
		return o, fmt.Errorf("playbook %s: a %s playbook pins nothing", p.Name, p.Kind)
	}
	return o, nil
}

// receivers are the PoPs that take the traffic leaving from: the
// playbook's to, or every other PoP.
func (p *Playbook) receivers(topo *topologies.Topology, from *topologies.PoP, pop func(name, field string) (*topologies.PoP, error)) ([]*topologies.PoP, error) {
	var to []*topologies.PoP
	for _, name := range p.To {
		pp, err := pop(name, "to")
		if err != nil {
			return nil, err
		}
		to = append(to, pp)
	}
	if len(p.To) == 0 {
		for i := range topo.PoPs {
			if topo.PoPs[i].Name != from.Name {
				to = append(to, &topo.PoPs[i])
			}
		}
	}
	if len(to) == 0 {
		return nil, fmt.Errorf("playbook %s: to: %s is the topology's only PoP; there is nowhere for its traffic to go", p.Name, from.Name)
	}
	return to, nil
}

// announceAt pins pf on every link of the receiving PoPs that does not
// publish it already; where one does, automation keeps it as usual.
func announceAt(o decisions.Override, topo *topologies.Topology, pf topologies.Prefix, to []*topologies.PoP) {
	for _, pp := range to {
		for _, l := range pp.Links {
			if id := topo.LinkID(pp.Name, l.Name); !slices.Contains(pf.Publish, id) {
				o.Announce[id] = append(o.Announce[id], pf.Prefix)
			}
		}
	}
}

// Check validates a playbook that did not come from Parse (the daemon's
// API decodes it from JSON): the same rules, without a file to name.
func (p *Playbook) Check() error {
	e := &errs{file: "playbook " + p.Name}
	if !nameRE.MatchString(p.Name) {
		e.add("name", "%q is not a usable name", p.Name)
	}
	if !slices.Contains([]Kind{DrainPoP, DisableISP, ShiftPrefix, Restore}, p.Kind) {
		e.add("kind", "%q is not a playbook kind", p.Kind)
	}
	if strings.TrimSpace(p.Reason) == "" || strings.TrimSpace(p.Author) == "" {
		e.add("reason, author", "both are required")
	}
	switch {
	case p.Kind == Restore && (p.Expiry != 0 || len(p.Release) == 0 == !p.All):
		e.add("release", "a restore releases a list or all, and has no expiry")
	case p.Kind != Restore && (p.Expiry <= 0 || p.Expiry > MaxExpiry):
		e.add("expiry", "%v is not within (0, %v]", p.Expiry, MaxExpiry)
	}
	switch p.Kind {
	case DrainPoP:
		if p.PoP == "" {
			e.add("pop", "missing")
		}
		if p.Prepend < 0 || p.Prepend > MaxPrepend || p.Prepend > 0 && (p.PrependFor <= 0 || p.PrependFor > MaxPrependFor || p.PrependFor >= p.Expiry) {
			e.add("prepend", "%d for %v: want 0, or 1 to %d for at most %v and less than the expiry", p.Prepend, p.PrependFor, MaxPrepend, MaxPrependFor)
		}
	case DisableISP:
		if p.ISP == "" {
			e.add("isp", "missing")
		}
	case ShiftPrefix:
		if p.PoP == "" || len(p.Prefixes) == 0 {
			e.add("from, prefixes", "both are required")
		}
	}
	return e.err()
}
