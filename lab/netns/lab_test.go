package netns_test

import (
	"fmt"
	"os"
	osexec "os/exec"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sdnoc/sdnoc/lab/netns"
	"github.com/sdnoc/sdnoc/lab/netns/netnstest"
)

func listNamespaces(t *testing.T) []string {
	t.Helper()
	data, err := os.ReadDir("/run/netns")
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	var names []string
	for _, d := range data {
		names = append(names, d.Name())
	}
	return names
}

// TestLab builds two namespaces joined by a veth and a third end in the
// root namespace, checks that traffic crosses both, runs and stops a
// process, and checks that Close leaves nothing behind.
func TestLab(t *testing.T) {
	l := netnstest.New(t, "ping", "sleep")
	ctx := t.Context()
	a, err := l.Namespace(ctx, "a")
	if err != nil {
		t.Fatal(err)
	}
	b, err := l.Namespace(ctx, "b")
	if err != nil {
		t.Fatal(err)
	}
	ab, err := l.Subnet(ctx)
	if err != nil {
		t.Fatal(err)
	}
	aAddr, bAddr := netns.Hosts(ab)
	if _, _, err := l.Veth(ctx, netns.End{NS: a, Name: "to-b", Addr: aAddr}, netns.End{NS: b, Name: "to-a", Addr: bAddr}); err != nil {
		t.Fatal(err)
	}
	rb, err := l.Subnet(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if rb.Overlaps(ab) {
		t.Fatalf("Subnet() gave %v twice", rb)
	}
	rootAddr, bRootAddr := netns.Hosts(rb)
	root, _, err := l.Veth(ctx, netns.End{Addr: rootAddr}, netns.End{NS: b, Name: "to-root", Addr: bRootAddr})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(root.Name, "sdnoc") {
		t.Errorf("root end named %q; want a generated sdnoc… name", root.Name)
	}
	if _, err := os.Stat("/sys/class/net/" + root.Name); err != nil {
		t.Fatalf("root end missing: %v", err)
	}

	if out, err := a.Run(ctx, "ping", "-c", "1", "-W", "2", bAddr.Addr().String()); err != nil {
		t.Errorf("ping a -> b: %v\n%s", err, out)
	}
	// From the root namespace to b, through the root end.
	if out, err := b.Run(ctx, "ping", "-c", "1", "-W", "2", rootAddr.Addr().String()); err != nil {
		t.Errorf("ping b -> root: %v\n%s", err, out)
	}
	idx, err := b.Ifindex(ctx, "to-a")
	if err != nil || idx < 2 {
		t.Errorf("Ifindex(to-a) = %d, %v; want an index above lo's", idx, err)
	}
	if _, err := b.Ifindex(ctx, "none"); err == nil {
		t.Error("Ifindex(none) succeeded; want an error")
	}

	// A process that ignores SIGTERM is killed after the grace period.
	stubborn, err := a.Start("sh", "-c", "trap '' TERM; echo ready; while :; do sleep 0.1; done")
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return strings.Contains(stubborn.Output(), "ready") })
	start := time.Now()
	if err := stubborn.Stop(ctx); err != nil {
		t.Errorf("Stop: %v", err)
	}
	if d := time.Since(start); d < 2*time.Second {
		t.Errorf("a process ignoring SIGTERM stopped after %v; want SIGKILL after the grace period", d)
	}
	select {
	case <-stubborn.Done():
	default:
		t.Error("Done not closed after Stop")
	}
	if err := syscall.Kill(stubborn.Pid(), 0); err == nil {
		t.Errorf("pid %d still exists after Stop", stubborn.Pid())
	}

	// One left running for Close, with a child of its own that Close
	// must find through the namespace.
	left, err := b.Start("sh", "-c", "sleep 300 & sleep 300")
	if err != nil {
		t.Fatal(err)
	}
	names := []string{a.Name(), b.Name()}
	for _, n := range names {
		if !slices.Contains(listNamespaces(t), n) {
			t.Fatalf("namespace %s missing before Close", n)
		}
	}
	waitFor(t, func() bool { return len(strings.Fields(netnsPids(t, b.Name()))) >= 2 })
	if err := l.Close(ctx); err != nil {
		t.Errorf("Close: %v", err)
	}
	if err := l.Close(ctx); err != nil {
		t.Errorf("second Close: %v", err)
	}
	select {
	case <-left.Done():
	default:
		t.Error("process still running after Close")
	}
	for _, n := range names {
		if slices.Contains(listNamespaces(t), n) {
			t.Errorf("namespace %s still there after Close", n)
		}
	}
	if _, err := os.Stat("/sys/class/net/" + root.Name); err == nil {
		t.Errorf("root veth end %s still there after Close", root.Name)
	}
	if _, err := l.Namespace(ctx, "late"); err == nil {
		t.Error("Namespace after Close succeeded; want an error")
	}
}

func netnsPids(t *testing.T, name string) string {
	t.Helper()
	out, err := osexec.CommandContext(t.Context(), "ip", "netns", "pids", name).Output()
	if err != nil {
		t.Fatalf("ip netns pids %s: %v", name, err)
	}
	return string(out)
}

// TestRemoveStale checks that RemoveStale removes a namespace named by a
// process that is gone, with what runs in it, and leaves a live lab's.
func TestRemoveStale(t *testing.T) {
	l := netnstest.New(t, "sleep")
	ctx := t.Context()
	live, err := l.Namespace(ctx, "live")
	if err != nil {
		t.Fatal(err)
	}
	// Pid 0x7fffffff is above pid_max: no process has it.
	stale := fmt.Sprintf("%s%d-dead-x", netns.TestPrefix, 0x7fffffff)
	if out, err := osexec.CommandContext(ctx, "ip", "netns", "add", stale).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add %s: %v: %s", stale, err, out)
	}
	t.Cleanup(func() {
		if slices.Contains(listNamespaces(t), stale) {
			osexec.Command("ip", "netns", "del", stale).Run()
		}
	})
	// What a crashed run leaves running in it.
	orphan := osexec.Command("ip", "netns", "exec", stale, "sleep", "300")
	if err := orphan.Start(); err != nil {
		t.Fatal(err)
	}
	orphanDone := make(chan struct{})
	go func() {
		orphan.Wait()
		close(orphanDone)
	}()
	t.Cleanup(func() {
		orphan.Process.Kill()
		<-orphanDone
	})
	waitFor(t, func() bool { return len(strings.Fields(netnsPids(t, stale))) == 1 })
	removed, err := netns.RemoveStale(ctx, netns.TestPrefix)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(removed, []string{stale}) {
		t.Errorf("RemoveStale() = %v; want [%s]", removed, stale)
	}
	names := listNamespaces(t)
	if slices.Contains(names, stale) {
		t.Errorf("stale namespace %s still there", stale)
	}
	if !slices.Contains(names, live.Name()) {
		t.Errorf("live namespace %s was removed", live.Name())
	}
	select {
	case <-orphanDone:
	case <-time.After(5 * time.Second):
		t.Error("process in the stale namespace still running")
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !cond(); {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 5s")
		}
		time.Sleep(20 * time.Millisecond)
	}
}
