package sites

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func site(host, origin string) string {
	return "hosts: [" + host + "]\norigins: [{address: \"" + origin + "\"}]\n"
}

func newStore(t *testing.T, dir, state string, clock *fakeClock) (*Store, *[]*Set) {
	t.Helper()
	var sets []*Set
	cfg := DefaultConfig()
	cfg.Dir, cfg.StateDir, cfg.Poll = dir, state, time.Hour
	s, err := New(cfg, Deps{Now: clock.now, OnChange: func(set *Set) { sets = append(sets, set) }})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Stop(context.Background()) })
	return s, &sets
}

func write(t *testing.T, path, data string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

func origins(set *Set, name string) string {
	for _, s := range set.Sites {
		if s.Name == name {
			return s.Origins[0].Address
		}
	}
	return ""
}

func TestStoreKeepsServingOnBadChange(t *testing.T) {
	dir, state := t.TempDir(), t.TempDir()
	clock := &fakeClock{t: time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)}
	write(t, filepath.Join(dir, "shop.yaml"), site("shop.example", "10.0.0.1:80"))
	write(t, filepath.Join(dir, "notes.txt"), "not a site")
	s, sets := newStore(t, dir, state, clock)
	if len(*sets) != 1 || origins(s.Current(), "shop") != "10.0.0.1:80" || len(s.Current().Sites) != 1 {
		t.Fatalf("first set: %+v", s.Current())
	}

	clock.add(time.Minute)
	write(t, filepath.Join(dir, "shop.yaml"), site("shop.example", "10.0.0.300:80"))
	s.Reload(context.Background())
	cur := s.Current()
	if origins(cur, "shop") != "10.0.0.1:80" {
		t.Fatalf("a bad change took effect: %+v", cur.Sites[0])
	}
	if err := cur.Rejected[filepath.Join(dir, "shop.yaml")]; err == nil || !strings.Contains(err.Error(), "origins[0].address") {
		t.Fatalf("rejection not reported: %v", cur.Rejected)
	}
	if v := testutil.ToFloat64(s.rejected.WithLabelValues("shop")); v != 1 {
		t.Fatalf("rejected metric %v", v)
	}

	clock.add(time.Minute)
	write(t, filepath.Join(dir, "shop.yaml"), site("shop.example", "10.0.0.2:80"))
	s.Reload(context.Background())
	if origins(s.Current(), "shop") != "10.0.0.2:80" || len(s.Current().Rejected) != 0 {
		t.Fatalf("a good change did not take effect: %+v", s.Current())
	}
	hist, _ := History(state, "shop")
	if len(hist) != 2 || !hist[0].Time.Equal(time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)) || !hist[1].Time.Equal(time.Date(2026, 11, 24, 10, 2, 0, 0, time.UTC)) {
		t.Fatalf("history %+v", hist)
	}

	// A restart with a bad file on disk serves the newest valid version.
	write(t, filepath.Join(dir, "shop.yaml"), "hosts: [")
	s2, _ := newStore(t, dir, state, clock)
	if origins(s2.Current(), "shop") != "10.0.0.2:80" || len(s2.Current().Rejected) != 1 {
		t.Fatalf("restart with a bad file: %+v", s2.Current())
	}
}

func TestStoreConflictAndRemoval(t *testing.T) {
	dir, state := t.TempDir(), t.TempDir()
	clock := &fakeClock{t: time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)}
	write(t, filepath.Join(dir, "a.yaml"), site("x.example", "10.0.0.1:80"))
	write(t, filepath.Join(dir, "b.yaml"), site("x.example", "10.0.0.2:80"))
	s, _ := newStore(t, dir, state, clock)
	cur := s.Current()
	if len(cur.Sites) != 1 || cur.Sites[0].Name != "a" {
		t.Fatalf("conflict at start: %+v", cur.Sites)
	}
	if err := cur.Rejected[filepath.Join(dir, "b.yaml")]; err == nil || !strings.Contains(err.Error(), "a.yaml") {
		t.Fatalf("conflict not explained: %v", cur.Rejected)
	}
	clock.add(time.Minute)
	os.Remove(filepath.Join(dir, "a.yaml"))
	s.Reload(context.Background())
	hist, _ := History(state, "a")
	if len(hist) != 2 || !hist[1].Deleted {
		t.Fatalf("no tombstone: %+v", hist)
	}
	// With a gone, b's unchanged file is judged again only when it
	// changes; rewrite it.
	write(t, filepath.Join(dir, "b.yaml"), site("x.example", "10.0.0.2:81"))
	s.Reload(context.Background())
	if origins(s.Current(), "b") != "10.0.0.2:81" || origins(s.Current(), "a") != "" {
		t.Fatalf("after removal: %+v", s.Current().Sites)
	}
}

func TestAsOf(t *testing.T) {
	state := t.TempDir()
	now := time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)
	for _, v := range []struct {
		ago    time.Duration
		origin string
	}{{26 * time.Hour, "10.0.0.1:80"}, {2 * time.Hour, "10.0.0.2:80"}, {30 * time.Minute, "10.0.0.3:80"}, {5 * time.Minute, "10.0.0.4:80"}} {
		if _, err := Record(state, "shop", []byte(site("shop.example", v.origin)), now.Add(-v.ago)); err != nil {
			t.Fatal(err)
		}
	}
	Record(state, "old", []byte(site("old.example", "10.9.9.9:80")), now.Add(-30*time.Hour))
	Record(state, "old", nil, now.Add(-3*time.Hour))
	for _, tc := range []struct {
		back time.Duration
		want string
		old  bool
	}{{10 * time.Minute, "10.0.0.3:80", false}, {time.Hour, "10.0.0.2:80", false}, {24 * time.Hour, "10.0.0.1:80", true}, {0, "10.0.0.4:80", false}} {
		set, versions, err := AsOf(state, "", now.Add(-tc.back))
		if err != nil {
			t.Fatal(err)
		}
		if got := origins(set, "shop"); got != tc.want {
			t.Errorf("%v back: shop on %s, want %s", tc.back, got, tc.want)
		}
		if (origins(set, "old") != "") != tc.old {
			t.Errorf("%v back: old present=%v", tc.back, !tc.old)
		}
		if len(versions) != len(set.Sites) {
			t.Errorf("%d versions for %d sites", len(versions), len(set.Sites))
		}
	}
	if set, _, _ := AsOf(state, "", now.Add(-40*time.Hour)); len(set.Sites) != 0 {
		t.Errorf("before any version: %+v", set.Sites)
	}
}
