package edge

import (
	"context"
	"slices"
	"sync/atomic"

	"github.com/sdnoc/sdnoc/edge/inspect"
	"github.com/sdnoc/sdnoc/edge/sites"
)

// table is what the proxy serves: immutable, swapped whole when the sites
// change, read without a lock by every request.
type table struct {
	exact     map[string]*site
	wild      map[string]*site  // "example.com" for "*.example.com"
	byName    map[string]*site  // by site name
	dedicated map[string]string // dedicated address -> site name
}

// site is one site as served: its config, origin pools and rules.
type site struct {
	cfg       *sites.Site
	origins   []*originPool
	wheel     []int // origin indexes, each repeated by its weight
	next      atomic.Uint64
	inspector inspect.Inspector // nil when the site has no rules
	m         *siteMetrics
}

// poolKey identifies an origin pool; a pool survives a configuration change
// that keeps its key, warm connections and health included.
type poolKey struct {
	site, addr string
	pool       sites.Pool
	health     sites.HealthCheck
	host       string
}

// lookup finds the site for a Host field: port dropped, case folded, exact
// names before wildcards.
func (t *table) lookup(host []byte) *site {
	var buf [256]byte
	h := buf[:0]
	if len(host) > len(buf) {
		return nil
	}
	end := len(host)
	if len(host) > 0 && host[0] == '[' {
		for i, c := range host {
			if c == ']' {
				end = i + 1
				break
			}
		}
	} else {
		for i := len(host) - 1; i >= 0; i-- {
			if host[i] == ':' {
				end = i
				break
			}
			if host[i] < '0' || host[i] > '9' {
				break
			}
		}
	}
	for _, c := range host[:end] {
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		h = append(h, c)
	}
	if n := len(h); n > 0 && h[n-1] == '.' {
		h = h[:n-1]
	}
	if s, ok := t.exact[string(h)]; ok {
		return s
	}
	for i, c := range h {
		if c == '.' {
			return t.wild[string(h[i+1:])]
		}
	}
	return nil
}

// pick chooses an origin: weighted round robin over the healthy ones, or
// over all of them when none is healthy (a check can be wrong; a 502 for
// sure is worse).
func (s *site) pick() *originPool {
	n := uint64(len(s.wheel))
	start := s.next.Add(1)
	if n == 1 {
		return s.origins[0]
	}
	for i := range n {
		if o := s.origins[s.wheel[(start+i)%n]]; o.healthy.Load() {
			return o
		}
	}
	return s.origins[s.wheel[start%n]]
}

// Apply makes set what the proxy serves. Origin pools whose settings did
// not change are kept with their connections. A site's new dedicated
// address that cannot be bound is logged and counted; the site is still
// served on the shared listeners.
func (p *Proxy) Apply(set *sites.Set) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.stopped {
		return
	}
	old := p.table.Load()
	t := &table{exact: map[string]*site{}, wild: map[string]*site{}, byName: map[string]*site{}, dedicated: map[string]string{}}
	used := map[poolKey]bool{}
	for _, sc := range set.Sites {
		s := &site{cfg: sc, m: p.m.site(sc.Name)}
		if prev := old.byName[sc.Name]; prev != nil && prev.cfg.SHA256 != sc.SHA256 {
			p.guard.Reset(sc.Name)
		}
		host := ""
		if len(sc.Hosts) > 0 {
			host = sc.Hosts[0]
		}
		for i, o := range sc.Origins {
			k := poolKey{site: sc.Name, addr: o.Address, pool: sc.Pool, health: sc.HealthCheck, host: host}
			op := p.pools[k]
			if op == nil {
				op = newOriginPool(sc.Name, o, sc.Pool, p.log, p.m.origin(sc.Name, o.Address))
				op.health, op.host = sc.HealthCheck, host
				p.pools[k] = op
				if p.started {
					op.start()
				}
			}
			used[k] = true
			s.origins = append(s.origins, op)
			for range max(o.Weight, 1) {
				s.wheel = append(s.wheel, i)
			}
		}
		if len(sc.Rules) > 0 {
			rules := make([]inspect.Rule, len(sc.Rules))
			for i, r := range sc.Rules {
				rules[i] = inspect.Rule{Name: r.Name, Method: r.Method, Path: r.Path, HeaderName: r.HeaderName,
					HeaderPattern: r.HeaderPattern, Action: r.Action, Status: r.Status}
			}
			in, err := inspect.Compile(rules)
			if err != nil {
				// The site file was validated; a rule that still does not
				// compile disables inspection there, never the site.
				p.log.Error("site rules do not compile; serving the site without inspection", "site", sc.Name, "err", err)
			} else {
				s.inspector = in
			}
		}
		for _, h := range sc.Hosts {
			if w, ok := cutWildcard(h); ok {
				t.wild[w] = s
			} else {
				t.exact[h] = s
			}
		}
		for _, a := range sc.Listen {
			t.dedicated[a] = sc.Name
		}
		t.byName[sc.Name] = s
	}
	for k, op := range p.pools {
		if !used[k] {
			delete(p.pools, k)
			go op.close()
		}
	}
	p.table.Store(t)
	if p.started {
		p.rebindDedicated(t)
	}
}

func cutWildcard(h string) (string, bool) {
	if len(h) > 2 && h[:2] == "*." {
		return h[2:], true
	}
	return "", false
}

// rebindDedicated opens the dedicated addresses that are new and closes
// those no longer configured. Called with p.mu held.
func (p *Proxy) rebindDedicated(t *table) {
	keep := p.listeners[:0]
	for _, l := range p.listeners {
		if l.site != "" && t.dedicated[l.addr] != l.site {
			if l.ln != nil {
				l.ln.Close()
			}
			if l.srv != nil {
				go l.srv.Shutdown(context.Background())
			}
			continue
		}
		keep = append(keep, l)
	}
	p.listeners = keep
	for _, addr := range sortedKeys(t.dedicated) {
		name := t.dedicated[addr]
		if slices.ContainsFunc(p.listeners, func(l *listener) bool { return l.site == name && l.addr == addr }) {
			continue
		}
		l := &listener{addr: addr, site: name, tls: t.byName[name].cfg.TLS != nil}
		if p.draining.Load() {
			p.listeners = append(p.listeners, l) // bound on undrain
			continue
		}
		if err := p.bind(context.Background(), l); err != nil {
			p.m.bindErrors.Inc()
			p.log.Error("dedicated address not bound; the site is served on the shared listeners only", "site", name, "err", err)
			continue
		}
		p.listeners = append(p.listeners, l)
	}
	p.dedicated = t.dedicated
}
