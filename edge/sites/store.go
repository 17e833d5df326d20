package sites

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// Config says where the site files and their versions live.
type Config struct {
	Dir      string        // the sites directory: one *.yaml / *.yml file per site
	StateDir string        // versions are kept in StateDir/versions/<site>/
	Poll     time.Duration // how often Dir is read for changes
	// AsOf, when set, serves the configuration as it was then, from the
	// kept versions, and does not watch Dir.
	AsOf time.Time
}

// DefaultConfig polls every second.
func DefaultConfig() Config { return Config{Poll: time.Second} }

// Validate reports every bad field with its fix.
func (c Config) Validate() error {
	var errs []error
	if c.Dir == "" {
		errs = append(errs, errors.New("dir: missing; give the sites directory"))
	}
	if c.StateDir == "" {
		errs = append(errs, errors.New("state_dir: missing; give a directory for the kept versions"))
	}
	if c.Poll <= 0 {
		errs = append(errs, fmt.Errorf("poll: %v must be above zero; e.g. 1s", c.Poll))
	}
	return errors.Join(errs...)
}

// Deps are the store's collaborators.
type Deps struct {
	Logger     *slog.Logger
	Registerer prometheus.Registerer
	Now        func() time.Time
	// OnChange receives every new Set, the first one during Start.
	OnChange func(*Set)
}

// Set is the configuration being served.
type Set struct {
	Sites    []*Site   // sorted by name
	AsOf     time.Time // zero when live
	Rejected map[string]error
}

// Version is one kept version of a site's file.
type Version struct {
	Site    string
	Time    time.Time
	SHA256  string
	Path    string
	Deleted bool // the file was removed at Time
}

// Store watches the sites directory.
type Store struct {
	cfg Config
	log *slog.Logger
	now func() time.Time
	on  func(*Set)

	rejected *prometheus.CounterVec
	version  *prometheus.GaugeVec

	mu      sync.Mutex
	current *Set
	serving map[string]*Site  // by name
	seen    map[string]string // file -> hash of the content last judged
	bad     map[string]error  // file -> why its newest content is refused

	stop chan struct{}
	done chan struct{}
}

// New checks cfg; it reads nothing.
func New(cfg Config, deps Deps) (*Store, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("sites: %w", err)
	}
	s := &Store{cfg: cfg, log: deps.Logger, now: deps.Now, on: deps.OnChange,
		serving: map[string]*Site{}, seen: map[string]string{}, bad: map[string]error{}}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.on == nil {
		s.on = func(*Set) {}
	}
	reg := deps.Registerer
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	f := promauto.With(reg)
	s.rejected = f.NewCounterVec(prometheus.CounterOpts{
		Name: "sdnoc_edge_config_rejected_total", Help: "Site file contents refused by validation; the previous version keeps serving.",
	}, []string{"site"})
	s.version = f.NewGaugeVec(prometheus.GaugeOpts{
		Name: "sdnoc_edge_config_version_timestamp_seconds", Help: "When the version of each site being served was accepted.",
	}, []string{"site"})
	s.current = &Set{}
	return s, nil
}

// Start loads the configuration (calling OnChange once) and, when live,
// watches the directory until Stop.
func (s *Store) Start(ctx context.Context) error {
	if !s.cfg.AsOf.IsZero() {
		set, versions, err := AsOf(s.cfg.StateDir, s.cfg.Dir, s.cfg.AsOf)
		if err != nil {
			return err
		}
		for _, v := range versions {
			s.version.WithLabelValues(v.Site).Set(float64(v.Time.Unix()))
		}
		s.mu.Lock()
		s.current = set
		s.mu.Unlock()
		s.on(set)
		return nil
	}
	if err := os.MkdirAll(filepath.Join(s.cfg.StateDir, "versions"), 0o755); err != nil {
		return fmt.Errorf("sites: state directory: %w", err)
	}
	if _, err := s.scan(true); err != nil {
		return err
	}
	s.stop, s.done = make(chan struct{}), make(chan struct{})
	go func() {
		defer close(s.done)
		t := time.NewTicker(s.cfg.Poll)
		defer t.Stop()
		for {
			select {
			case <-s.stop:
				return
			case <-t.C:
				if _, err := s.scan(false); err != nil {
					s.log.Error("reading the sites directory", "err", err)
				}
			}
		}
	}()
	return nil
}

// Stop ends the watch.
func (s *Store) Stop(ctx context.Context) error {
	if s.stop == nil {
		return nil
	}
	close(s.stop)
	select {
	case <-s.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Current is the Set being served.
func (s *Store) Current() *Set {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.current
}

// Reload reads the directory now.
func (s *Store) Reload(ctx context.Context) error {
	_, err := s.scan(false)
	return err
}

// scan reads every site file and applies what changed.
func (s *Store) scan(first bool) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	entries, err := os.ReadDir(s.cfg.Dir)
	if err != nil {
		return false, fmt.Errorf("sites: %w", err)
	}
	var files []string
	for _, e := range entries {
		n := e.Name()
		if !e.IsDir() && (strings.HasSuffix(n, ".yaml") || strings.HasSuffix(n, ".yml")) && !strings.HasPrefix(n, ".") {
			files = append(files, filepath.Join(s.cfg.Dir, n))
		}
	}
	sort.Strings(files)
	changed := first
	present := map[string]bool{}
	for _, file := range files {
		name := SiteName(file)
		present[name] = true
		data, err := os.ReadFile(file)
		if err != nil {
			continue // removed between the listing and the read
		}
		sum := sha256.Sum256(data)
		hash := hex.EncodeToString(sum[:])
		if s.seen[file] == hash {
			continue
		}
		s.seen[file] = hash
		site, err := parse(name, file, s.cfg.Dir, data)
		if err == nil {
			err = s.conflict(site)
		}
		if err != nil {
			s.reject(file, name, err, first)
			changed = true
			continue
		}
		delete(s.bad, file)
		if prev := s.serving[name]; prev != nil && prev.SHA256 == site.SHA256 {
			continue
		}
		v, err := s.record(name, data, site.SHA256)
		if err != nil {
			return changed, err
		}
		s.serving[name] = site
		s.version.WithLabelValues(name).Set(float64(v.Time.Unix()))
		s.log.Info("site configuration accepted", "site", name, "file", file, "sha256", site.SHA256[:12])
		changed = true
	}
	for name := range s.serving {
		if present[name] {
			continue
		}
		delete(s.serving, name)
		for f := range s.seen {
			if SiteName(f) == name {
				delete(s.seen, f)
				delete(s.bad, f)
			}
		}
		if _, err := recordAt(s.cfg.StateDir, name, nil, s.now()); err != nil {
			return changed, err
		}
		s.version.DeleteLabelValues(name)
		s.log.Info("site removed", "site", name)
		changed = true
	}
	if changed {
		s.publish()
	}
	return changed, nil
}

// record keeps data as the site's newest version unless it already is.
func (s *Store) record(name string, data []byte, sha string) (Version, error) {
	hist, err := History(s.cfg.StateDir, name)
	if err != nil {
		return Version{}, err
	}
	if n := len(hist); n > 0 && !hist[n-1].Deleted && hist[n-1].SHA256 == sha {
		return hist[n-1], nil
	}
	return recordAt(s.cfg.StateDir, name, data, s.now())
}

// reject logs a refused file; at start, the newest valid kept version of
// the site serves instead.
func (s *Store) reject(file, name string, err error, first bool) {
	s.bad[file] = err
	s.rejected.WithLabelValues(name).Inc()
	if s.serving[name] != nil {
		s.log.Error("site file refused; the previous version keeps serving", "site", name, "err", err)
		return
	}
	if first {
		if site, v := newestValid(s.cfg.StateDir, s.cfg.Dir, name, time.Time{}); site != nil && s.conflict(site) == nil {
			s.serving[name] = site
			s.log.Error("site file refused; serving its newest valid kept version", "site", name, "version", v.Time, "err", err)
			return
		}
	}
	s.log.Error("site file refused; the site is not served", "site", name, "err", err)
}

// conflict refuses a site that claims a host another site serves.
func (s *Store) conflict(site *Site) error {
	for _, other := range s.serving {
		if other.Name == site.Name {
			continue
		}
		for _, h := range site.Hosts {
			if slices.Contains(other.Hosts, h) {
				return fmt.Errorf("%s: hosts: %q is already served by %s; a host belongs to one site, remove it from one of the files", site.File, h, other.File)
			}
		}
	}
	return nil
}

func (s *Store) publish() {
	set := &Set{Rejected: map[string]error{}}
	for _, site := range s.serving {
		set.Sites = append(set.Sites, site)
	}
	sort.Slice(set.Sites, func(i, j int) bool { return set.Sites[i].Name < set.Sites[j].Name })
	for f, err := range s.bad {
		set.Rejected[f] = err
	}
	s.current = set
	s.on(set)
}

const timeLayout = "20060102T150405.000000000Z"

// Record keeps data as a version of site at the given time (nil data
// records the site's removal).
func Record(stateDir, site string, data []byte, at time.Time) (Version, error) {
	return recordAt(stateDir, site, data, at)
}

func recordAt(stateDir, site string, data []byte, at time.Time) (Version, error) {
	dir := filepath.Join(stateDir, "versions", site)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return Version{}, fmt.Errorf("keeping a version of %s: %w", site, err)
	}
	at = at.UTC()
	ext := ".yaml"
	if data == nil {
		ext = ".deleted"
	}
	path := filepath.Join(dir, at.Format(timeLayout)+ext)
	tmp, err := os.CreateTemp(dir, ".tmp-*")
	if err != nil {
		return Version{}, fmt.Errorf("keeping a version of %s: %w", site, err)
	}
	defer os.Remove(tmp.Name())
	_, werr := tmp.Write(data)
	serr := tmp.Sync()
	cerr := tmp.Close()
	if err := errors.Join(werr, serr, cerr); err != nil {
		return Version{}, fmt.Errorf("keeping a version of %s: %w", site, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return Version{}, fmt.Errorf("keeping a version of %s: %w", site, err)
	}
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
	v := Version{Site: site, Time: at, Path: path, Deleted: data == nil}
	if data != nil {
		sum := sha256.Sum256(data)
		v.SHA256 = hex.EncodeToString(sum[:])
	}
	return v, nil
}

// History lists a site's kept versions, oldest first.
func History(stateDir, site string) ([]Version, error) {
	dir := filepath.Join(stateDir, "versions", site)
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("versions of %s: %w", site, err)
	}
	var out []Version
	for _, e := range entries {
		n := e.Name()
		ext := filepath.Ext(n)
		if ext != ".yaml" && ext != ".deleted" {
			continue
		}
		t, err := time.Parse(timeLayout, strings.TrimSuffix(n, ext))
		if err != nil {
			continue
		}
		v := Version{Site: site, Time: t, Path: filepath.Join(dir, n), Deleted: ext == ".deleted"}
		if !v.Deleted {
			data, err := os.ReadFile(v.Path)
			if err != nil {
				return nil, fmt.Errorf("versions of %s: %w", site, err)
			}
			sum := sha256.Sum256(data)
			v.SHA256 = hex.EncodeToString(sum[:])
		}
		out = append(out, v)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Time.Before(out[j].Time) })
	return out, nil
}

// AsOf rebuilds the configuration as it was at t: each site's newest
// version at or before t (removed sites left out; a version that no longer
// parses, say its certificate file is gone, gives way to the one before).
// sitesDir resolves relative certificate paths.
func AsOf(stateDir, sitesDir string, t time.Time) (*Set, []Version, error) {
	entries, err := os.ReadDir(filepath.Join(stateDir, "versions"))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, nil, fmt.Errorf("versions: %w", err)
	}
	set := &Set{AsOf: t, Rejected: map[string]error{}}
	var versions []Version
	claimed := map[string]string{}
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		site, v := newestValid(stateDir, sitesDir, e.Name(), t)
		if site == nil {
			continue
		}
		clash := ""
		for _, h := range site.Hosts {
			if other, ok := claimed[h]; ok {
				clash = other
			}
		}
		if clash != "" {
			set.Rejected[v.Path] = fmt.Errorf("%s: hosts: already served by %s as of %s", v.Path, clash, t.Format(time.RFC3339))
			continue
		}
		for _, h := range site.Hosts {
			claimed[h] = site.Name
		}
		set.Sites = append(set.Sites, site)
		versions = append(versions, v)
	}
	return set, versions, nil
}

// newestValid is the site's newest version at or before t (any time when
// t is zero) that parses, or nil when it was removed by then.
func newestValid(stateDir, sitesDir, name string, t time.Time) (*Site, Version) {
	hist, err := History(stateDir, name)
	if err != nil {
		return nil, Version{}
	}
	for i := len(hist) - 1; i >= 0; i-- {
		v := hist[i]
		if !t.IsZero() && v.Time.After(t) {
			continue
		}
		if v.Deleted {
			return nil, Version{}
		}
		data, err := os.ReadFile(v.Path)
		if err != nil {
			continue
		}
		site, err := parse(name, v.Path, sitesDir, data)
		if err != nil {
			continue
		}
		return site, v
	}
	return nil, Version{}
}
