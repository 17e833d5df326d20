// Package netnstest gives tests a netns.Lab, or skips them with the reason
// when this machine cannot run one.
package netnstest

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sdnoc/sdnoc/lab/netns"
)

// RequireEnv, set to 1, turns the skips of New into failures: CI sets it
// where the lab must run.
const RequireEnv = "SDNOC_REQUIRE_LAB"

// New returns a Lab named with netns.TestPrefix, closed at the test's
// cleanup, after removing the namespaces that crashed runs left. It skips
// the test, or fails it when RequireEnv is 1, if this machine is not
// root, cannot create a namespace, or lacks one of tools (commands looked
// up in PATH; lab/install.sh installs them).
func New(t testing.TB, tools ...string) *netns.Lab {
	t.Helper()
	if os.Geteuid() != 0 {
		Unavailable(t, "needs root to create network namespaces")
	}
	if missing := netns.Missing(append([]string{"ip"}, tools...)...); len(missing) > 0 {
		Unavailable(t, "missing %s: run lab/install.sh as root", strings.Join(missing, ", "))
	}
	if err := netns.Check(t.Context(), netns.TestPrefix); err != nil {
		Unavailable(t, "cannot use network namespaces: %v", err)
	}
	if removed, err := netns.RemoveStale(t.Context(), netns.TestPrefix); err != nil {
		t.Logf("removing stale namespaces: %v", err)
	} else if len(removed) > 0 {
		t.Logf("removed stale namespaces: %s", strings.Join(removed, " "))
	}
	l, err := netns.New(netns.TestPrefix, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := l.Close(context.Background()); err != nil {
			t.Errorf("close lab: %v", err)
		}
	})
	return l
}

// Unavailable skips the test with the reason, or fails it when
// RequireEnv is 1: for what this machine lacks to run it.
func Unavailable(t testing.TB, format string, args ...any) {
	t.Helper()
	if os.Getenv(RequireEnv) == "1" {
		t.Fatalf(format+" ("+RequireEnv+"=1)", args...)
	}
	t.Skipf(format, args...)
}

// Dir returns a directory that daemons dropping to another user (FRR's
// run as frr) can reach, unlike t.TempDir's, removed at cleanup.
func Dir(t testing.TB) string {
	t.Helper()
	d, err := os.MkdirTemp("", "sdnoc-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	if err := os.Chmod(d, 0o755); err != nil {
		t.Fatal(err)
	}
	return d
}

// Sdnoc builds the sdnoc binary into dir, for tests that run it as a
// process in a namespace, and returns its path.
func Sdnoc(t testing.TB, dir string) string {
	t.Helper()
	bin := filepath.Join(dir, "sdnoc")
	out, err := exec.CommandContext(t.Context(), "go", "build", "-o", bin, "github.com/sdnoc/sdnoc/cmd/sdnoc").CombinedOutput()
	if err != nil {
		t.Fatalf("build sdnoc: %v\n%s", err, out)
	}
	return bin
}
