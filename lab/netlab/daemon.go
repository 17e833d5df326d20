package netlab

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"syscall"
	"time"

	"github.com/sdnoc/sdnoc/decisions"
)

// adminSocket is the Unix socket of the lab's sdnoc daemon's /metrics and
// /status, in the lab's directory: a socket file reaches across namespaces.
func (l *Lab) adminSocket() string { return filepath.Join(l.opts.Dir, "metrics.sock") }

// APISocket is the Unix socket of the lab's sdnoc daemon's API (status,
// playbooks): the daemon's default, beside its journal in the lab's
// directory. `sdnoc status --daemon` and `sdnoc playbook --daemon` take it.
func (l *Lab) APISocket() string { return filepath.Join(l.opts.Dir, "sdnoc.sock") }

// Daemon is sdnoc's daemon running in the lab's sdnoc namespace.
type Daemon struct {
	pid  int
	http *http.Client
}

// StartDaemon runs `sdnoc daemon` on the lab's topology in the sdnoc
// namespace, with its journal in the lab's directory (kept across
// restarts), and returns once its admin API answers.
func (l *Lab) StartDaemon(ctx context.Context, args ...string) (*Daemon, error) {
	argv := append([]string{l.opts.Sdnoc, "daemon", "--config", l.Plan.Topology.Source,
		"--journal", filepath.Join(l.opts.Dir, "journal.jsonl"), "--listen", l.adminSocket()}, args...)
	pid, err := l.daemon("sdnoc", l.Plan.NS("sdnoc"), argv...)
	if err != nil {
		return nil, err
	}
	sock := l.adminSocket()
	d := &Daemon{pid: pid, http: &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", sock)
		},
	}}}
	for {
		if _, err := d.Status(ctx); err == nil {
			return d, nil
		}
		if syscall.Kill(pid, 0) != nil {
			return nil, fmt.Errorf("sdnoc daemon exited:\n%s", l.Log("sdnoc"))
		}
		select {
		case <-ctx.Done():
			_ = d.Stop(syscall.SIGKILL)
			return nil, fmt.Errorf("sdnoc daemon's admin API does not answer: %w", ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Pid returns the daemon's process id.
func (d *Daemon) Pid() int { return d.pid }

// Stop sends sig (SIGTERM for a clean stop, SIGKILL for a crash) and
// waits until the process is gone.
func (d *Daemon) Stop(sig syscall.Signal) error {
	if err := syscall.Kill(d.pid, sig); err != nil {
		return err
	}
	deadline := time.Now().Add(10 * time.Second)
	for syscall.Kill(d.pid, 0) == nil {
		if time.Now().After(deadline) {
			_ = syscall.Kill(d.pid, syscall.SIGKILL)
			deadline = time.Now().Add(time.Hour)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return nil
}

// Status returns the daemon's /status: every link's state and evidence.
func (d *Daemon) Status(ctx context.Context) ([]decisions.LinkStatus, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://sdnoc/status", nil)
	if err != nil {
		return nil, err
	}
	resp, err := d.http.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("/status: %s: %s", resp.Status, b)
	}
	var st []decisions.LinkStatus
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, fmt.Errorf("/status: %w", err)
	}
	return st, nil
}
