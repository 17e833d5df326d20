package snapper

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// The test binary doubles as the proxy: with SNAPPER_CHILD set it crashes
// or serves depending on the configuration step it was started on.
func TestMain(m *testing.M) {
	if step := os.Getenv("SNAPPER_CHILD"); step != "" {
		if os.Getenv("SNAPPER_"+step) == "crash" {
			fmt.Fprintln(os.Stderr, "crashing on", step)
			os.Exit(2)
		}
		ch := make(chan os.Signal, 1)
		signal.Notify(ch, syscall.SIGTERM)
		<-ch
		os.Exit(0)
	}
	os.Exit(m.Run())
}

type proc struct{ c *exec.Cmd }

func (p proc) Wait() error              { return p.c.Wait() }
func (p proc) Signal(s os.Signal) error { return p.c.Process.Signal(s) }
func (p proc) Pid() int                 { return p.c.Process.Pid }

// stepName names how far back asOf is.
func stepName(asOf time.Time) string {
	switch back := time.Since(asOf); {
	case asOf.IsZero():
		return "live"
	case back < 30*time.Minute:
		return "10m"
	case back < 2*time.Hour:
		return "1h"
	}
	return "24h"
}

func run(t *testing.T, behaviour map[string]string, changed *atomic.Bool) (*Supervisor, context.CancelFunc, chan struct{}) {
	t.Helper()
	self, _ := os.Executable()
	cfg := DefaultConfig()
	cfg.Within, cfg.Backoff, cfg.MaxBackoff, cfg.Watch = 10*time.Second, 10*time.Millisecond, 50*time.Millisecond, 20*time.Millisecond
	s, err := New(cfg, Deps{
		Start: func(ctx context.Context, asOf time.Time) (Process, error) {
			c := exec.Command(self)
			c.Env = append(os.Environ(), "SNAPPER_CHILD="+stepName(asOf))
			for k, v := range behaviour {
				c.Env = append(c.Env, "SNAPPER_"+k+"="+v)
			}
			if err := c.Start(); err != nil {
				return nil, err
			}
			return proc{c}, nil
		},
		Describe: func(asOf time.Time) (string, error) { return "config@" + stepName(asOf), nil },
		Changed:  func(time.Time) bool { return changed != nil && changed.Load() },
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return s, cancel, done
}

func waitStatus(t *testing.T, s *Supervisor, ok func(Status) bool) Status {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		st := s.Status()
		if ok(st) {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("status never reached: %+v", st)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestLandsOnTenMinutesAgo(t *testing.T) {
	s, cancel, done := run(t, map[string]string{"live": "crash"}, nil)
	st := waitStatus(t, s, func(st Status) bool { return st.Step == 1 && st.ChildPid != 0 })
	if st.Landed != "config@10m" || st.Restarts != 3 || !strings.Contains(st.LastExit, "exit status 2") {
		t.Fatalf("status %+v", st)
	}
	time.Sleep(200 * time.Millisecond)
	if got := s.Status(); got.Restarts != 3 || got.Step != 1 {
		t.Fatalf("the 10-minute-old configuration did not hold: %+v", got)
	}
	pid := st.ChildPid
	cancel()
	<-done
	if err := syscall.Kill(pid, 0); err == nil {
		t.Fatalf("child %d still running after Run returned", pid)
	}
}

func TestStepsFurtherBack(t *testing.T) {
	s, _, _ := run(t, map[string]string{"live": "crash", "10m": "crash"}, nil)
	st := waitStatus(t, s, func(st Status) bool { return st.Step == 2 && st.ChildPid != 0 })
	if st.Landed != "config@1h" || st.Restarts != 6 {
		t.Fatalf("status %+v", st)
	}
}

func TestNeverGivesUp(t *testing.T) {
	s, _, _ := run(t, map[string]string{"live": "crash", "10m": "crash", "1h": "crash", "24h": "crash"}, nil)
	waitStatus(t, s, func(st Status) bool { return st.Step == 3 && st.Restarts >= 12 })
}

func TestBackToLiveWhenFixed(t *testing.T) {
	var changed atomic.Bool
	behaviour := map[string]string{"live": "crash"}
	s, _, _ := run(t, behaviour, &changed)
	waitStatus(t, s, func(st Status) bool { return st.Step == 1 && st.ChildPid != 0 })
	changed.Store(true)
	// The live configuration is still the crashing one here, so after
	// trying it the supervisor must roll back again: both moves show.
	st := waitStatus(t, s, func(st Status) bool { return st.Restarts >= 4 })
	if st.Restarts < 4 {
		t.Fatalf("live was not tried again: %+v", st)
	}
}
