package inspect

import (
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

var testRules = []Rule{
	{Name: "no-trace", Method: "^(TRACE|TRACK)$", Status: 405},
	{Name: "let-health", Path: "^/admin/health$", Action: "allow"},
	{Name: "no-admin", Path: "^/admin"},
	{Name: "no-sqlmap", HeaderName: "User-Agent", HeaderPattern: "(?i)sqlmap"},
}

func req(method, path, ua string) *Request {
	return &Request{Method: method, Path: path, Header: func(name string) string {
		if strings.EqualFold(name, "user-agent") {
			return ua
		}
		return ""
	}}
}

func TestRules(t *testing.T) {
	in, err := Compile(testRules)
	if err != nil {
		t.Fatal(err)
	}
	for name, tc := range map[string]struct {
		r    *Request
		want Verdict
	}{
		"plain":      {req("GET", "/", "curl"), Verdict{}},
		"trace":      {req("TRACE", "/", ""), Verdict{Block: true, Rule: "no-trace", Status: 405}},
		"admin":      {req("GET", "/admin/users", ""), Verdict{Block: true, Rule: "no-admin", Status: 403}},
		"allow wins": {req("GET", "/admin/health", ""), Verdict{Rule: "let-health", Status: 403}},
		"sqlmap":     {req("GET", "/x", "SQLMap/1.7"), Verdict{Block: true, Rule: "no-sqlmap", Status: 403}},
	} {
		if got, err := in.Inspect(tc.r); err != nil || got != tc.want {
			t.Errorf("%s: %+v %v, want %+v", name, got, err, tc.want)
		}
	}
	if _, err := Compile([]Rule{{Name: "bad", Path: "("}, {Name: "act", Path: "/", Action: "drop"}}); err == nil ||
		!strings.Contains(err.Error(), "rule 0 (bad): path") || !strings.Contains(err.Error(), "rule 1 (act): action") {
		t.Fatalf("bad rules: %v", err)
	}
}

type panicky struct{}

func (panicky) Inspect(*Request) (Verdict, error) { panic("rule module bug") }

type failing struct{}

func (failing) Inspect(*Request) (Verdict, error) { return Verdict{}, errors.New("backend down") }

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

func TestGuardFailsOpenPerSiteThenGlobally(t *testing.T) {
	c := &clock{t: time.Unix(1_800_000_000, 0)}
	g, err := NewGuard(DefaultGuardConfig(), GuardDeps{Now: c.now})
	if err != nil {
		t.Fatal(err)
	}
	rules, _ := Compile(testRules)
	admin := req("GET", "/admin", "")
	if v := g.Inspect("a", panicky{}, admin); v.Block {
		t.Fatal("a panicking module blocked")
	}
	if st := g.Status(); len(st.Disabled) != 1 || st.Disabled[0].Site != "a" || !strings.HasPrefix(st.Disabled[0].Reason, "panic: rule module bug") {
		t.Fatalf("status %+v", st)
	}
	if v := g.Inspect("b", rules, admin); !v.Block {
		t.Fatal("site b no longer inspected after a's failure")
	}
	if testutil.ToFloat64(g.disabled.WithLabelValues("a")) != 1 || testutil.ToFloat64(g.failures.WithLabelValues("a", "panic")) != 1 {
		t.Fatal("metrics")
	}
	// a stays off: its module is not even called.
	if v := g.Inspect("a", panicky{}, admin); v.Block || testutil.ToFloat64(g.failures.WithLabelValues("a", "panic")) != 1 {
		t.Fatal("a disabled site was inspected again")
	}
	g.Inspect("c", failing{}, admin)
	if g.Status().Global {
		t.Fatal("global after two sites")
	}
	g.Inspect("d", panicky{}, admin)
	if !g.Status().Global || testutil.ToFloat64(g.global) != 1 {
		t.Fatal("not global after three sites")
	}
	if v := g.Inspect("b", rules, admin); v.Block {
		t.Fatal("globally off but b still blocked")
	}
	c.add(11 * time.Minute)
	if v := g.Inspect("b", rules, admin); !v.Block {
		t.Fatal("not back on after the cooldown")
	}
	g.Inspect("a", rules, admin) // a's cooldown is over too
	if st := g.Status(); st.Global || len(st.Disabled) != 2 {
		// c and d are back only when inspected; a came back.
		t.Fatalf("after cooldown %+v", st)
	}
	g.Reset("c")
	g.Reset("d")
	if st := g.Status(); len(st.Disabled) != 0 || g.off.Load() {
		t.Fatalf("after reset %+v", st)
	}
}

func TestGuardConcurrent(t *testing.T) {
	g, _ := NewGuard(DefaultGuardConfig(), GuardDeps{})
	rules, _ := Compile(testRules)
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			for j := range 500 {
				site := []string{"a", "b", "c", "d"}[(i+j)%4]
				var in Inspector = rules
				if j%50 == 0 {
					in = panicky{}
				}
				g.Inspect(site, in, req("GET", "/admin", ""))
				if j%100 == 0 {
					g.Reset(site)
				}
			}
		})
	}
	wg.Wait()
}

func BenchmarkGuardHealthy(b *testing.B) {
	g, _ := NewGuard(DefaultGuardConfig(), GuardDeps{})
	rules, _ := Compile(testRules)
	r := req("GET", "/products/42", "Mozilla/5.0")
	b.ReportAllocs()
	for b.Loop() {
		g.Inspect("shop", rules, r)
	}
}

// FuzzCompile: any rule strings compile or fail cleanly, and what compiles
// inspects without panicking.
func FuzzCompile(f *testing.F) {
	for _, r := range testRules {
		f.Add(r.Name, r.Method, r.Path, r.HeaderName, r.HeaderPattern, r.Action, "GET", "/admin")
	}
	f.Fuzz(func(t *testing.T, name, method, path, hname, hpat, action, rm, rp string) {
		in, err := Compile([]Rule{{Name: name, Method: method, Path: path, HeaderName: hname, HeaderPattern: hpat, Action: action}})
		if err != nil {
			return
		}
		in.Inspect(req(rm, rp, hpat))
	})
}
