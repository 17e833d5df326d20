package netlab

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sdnoc/sdnoc/lab/frr"
)

// testPrefix names a test's lab: sdnoc-t-<pid>-<random>-, as lab/netns
// names its own, so that a crashed run's leftovers are recognisable.
func testPrefix() string {
	if p := os.Getenv("SDNOC_LAB_PREFIX"); p != "" { // to debug a lab kept with SDNOC_LAB_KEEP
		return p
	}
	return fmt.Sprintf("sdnoc-t-%d-%04x-", os.Getpid(), rand.Uint32()&0xffff)
}

func needLab(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("the lab needs root (network namespaces); CI runs as root")
	}
	for _, bin := range []string{"/usr/lib/frr/bgpd", "/usr/bin/vtysh", "/usr/bin/iperf3"} {
		if _, err := os.Stat(bin); err != nil {
			if os.Getenv("SDNOC_REQUIRE_LAB") == "1" {
				t.Fatalf("%s missing; run lab/install.sh", bin)
			}
			t.Skipf("%s missing; lab/install.sh installs what the lab needs", bin)
		}
	}
}

// buildSdnoc builds the sdnoc binary the lab's processes run.
func buildSdnoc(t *testing.T, dir string) string {
	t.Helper()
	bin := filepath.Join(dir, "sdnoc")
	out, err := exec.Command("go", "build", "-o", bin, "../../cmd/sdnoc").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// labDir is a directory the frr user can reach, removed at cleanup.
func labDir(t *testing.T) string {
	t.Helper()
	d, err := os.MkdirTemp("", "sdnoc-lab-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	if err := os.Chmod(d, 0o755); err != nil {
		t.Fatal(err)
	}
	return d
}

// TestLabUp builds the lab, runs sdnoc's daemon in it, and checks on the
// routers and the data path: the internet reaches a PoP's edge prefix
// through the ISP it prefers.
func TestLabUp(t *testing.T) {
	needLab(t)
	ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
	defer cancel()
	dir := labDir(t)
	p, err := NewPlan(labTopology(t), testPrefix())
	if err != nil {
		t.Fatal(err)
	}
	l, err := Up(ctx, p, Options{Dir: filepath.Join(dir, "lab"), Sdnoc: buildSdnoc(t, dir)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if os.Getenv("SDNOC_LAB_KEEP") != "" {
			t.Logf("SDNOC_LAB_KEEP: lab %s left up", p.Prefix)
			return
		}
		if _, err := Down(context.Background(), p.Prefix, ""); err != nil {
			t.Errorf("down: %v", err)
		}
	})
	if _, err := l.daemon("sdnoc", p.NS("sdnoc"), l.opts.Sdnoc, "daemon", "--config", p.Topology.Source,
		"--journal", filepath.Join(dir, "journal.jsonl"), "--listen", "127.0.0.1:9470"); err != nil {
		t.Fatal(err)
	}
	inet := frr.Attach(frr.Config{Name: "internet", Dir: filepath.Join(dir, "lab", "frr", "internet")})
	want := netip.MustParsePrefix("203.0.113.0/26")
	var via []frr.Path
	for ctx.Err() == nil {
		tab, err := inet.Table(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if via = tab[want]; len(via) == 3 {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if len(via) != 3 {
		b, _ := os.ReadFile(filepath.Join(dir, "lab", "logs", "sdnoc.log"))
		t.Fatalf("internet has %v for %s, want a path through each ISP; sdnoc's log:\n%s", via, want, b)
	}
	out, err := exec.CommandContext(ctx, "ip", "netns", "exec", p.NS("internet"), "ping", "-c", "3", "-i", "0.2", "-W", "1", "203.0.113.1").CombinedOutput()
	if err != nil {
		t.Fatalf("ping from the internet to pop1's edge: %v\n%s", err, out)
	}
}

func contains(list, name string) bool {
	for _, s := range strings.Split(list, ",") {
		if strings.TrimSpace(s) == name {
			return true
		}
	}
	return false
}

// tail returns the last n lines of s.
func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
