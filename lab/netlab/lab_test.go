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
	"github.com/sdnoc/sdnoc/lab/netns/netnstest"
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
		netnstest.Unavailable(t, "the lab needs root (network namespaces); CI runs as root")
	}
	for _, bin := range []string{"/usr/lib/frr/bgpd", "/usr/bin/vtysh", "/usr/bin/iperf3"} {
		if _, err := os.Stat(bin); err != nil {
			netnstest.Unavailable(t, "%s missing: run lab/install.sh as root", bin)
		}
	}
}

// upLab builds the lab of lab.yaml for a test, and removes it at the
// test's end (unless SDNOC_LAB_KEEP is set, to look at it).
func upLab(t *testing.T, ctx context.Context) *Lab {
	t.Helper()
	needLab(t)
	dir := netnstest.Dir(t)
	p, err := NewPlan(labTopology(t), testPrefix())
	if err != nil {
		t.Fatal(err)
	}
	l, err := Up(ctx, p, Options{Dir: filepath.Join(dir, "lab"), Sdnoc: netnstest.Sdnoc(t, dir)})
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
	return l
}

// TestLabUp builds the lab, runs sdnoc's daemon in it, and checks on the
// routers and the data path: the internet reaches a PoP's edge prefix
// through the ISP it prefers.
func TestLabUp(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
	defer cancel()
	l := upLab(t, ctx)
	if _, err := l.StartDaemon(ctx); err != nil {
		t.Fatal(err)
	}
	inet := frr.Attach(frr.Config{Name: "internet", Dir: filepath.Join(l.opts.Dir, "frr", "internet")})
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
		t.Fatalf("internet has %v for %s, want a path through each ISP; sdnoc's log:\n%s", via, want, l.Log("sdnoc"))
	}
	out, err := exec.CommandContext(ctx, "ip", "netns", "exec", l.Plan.NS("internet"), "ping", "-c", "3", "-i", "0.2", "-W", "1", "203.0.113.1").CombinedOutput()
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
