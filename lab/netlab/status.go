package netlab

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/sdnoc/sdnoc/lab/frr"
)

// WriteStatus prints a lab's state for people: which of its namespaces
// and processes are there, and each FRR router's BGP sessions.
func WriteStatus(ctx context.Context, w io.Writer, st State, dir string) error {
	fmt.Fprintf(w, "lab %s from %s, up since %s\n", st.Prefix, st.Topology, st.Started.Format(time.DateTime))
	out, err := exec.CommandContext(ctx, "ip", "netns", "list").Output()
	if err != nil {
		return fmt.Errorf("list namespaces: %w", err)
	}
	for _, ns := range st.Namespaces {
		mark := "missing"
		if strings.Contains(string(out), ns) {
			mark = "ok"
		}
		fmt.Fprintf(w, "  namespace %-28s %s\n", ns, mark)
	}
	names := make([]string, 0, len(st.Processes))
	for n := range st.Processes {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		mark := "running"
		if syscall.Kill(st.Processes[n], 0) != nil {
			mark = "GONE (see " + filepath.Join(dir, "logs", n+".log") + ")"
		}
		fmt.Fprintf(w, "  process   %-28s pid %-7d %s\n", n, st.Processes[n], mark)
	}
	routers, _ := os.ReadDir(filepath.Join(dir, "frr"))
	for _, e := range routers {
		r := frr.Attach(frr.Config{Name: e.Name(), Dir: filepath.Join(dir, "frr", e.Name())})
		ss, err := r.Sessions(ctx)
		if err != nil {
			fmt.Fprintf(w, "  router    %-28s %v\n", e.Name(), err)
			continue
		}
		var parts []string
		for a, s := range ss {
			parts = append(parts, fmt.Sprintf("%s %s (%d prefixes)", a, s.State, s.PrefixesRecv))
		}
		slices.Sort(parts)
		fmt.Fprintf(w, "  router    %-28s %s\n", e.Name(), strings.Join(parts, ", "))
	}
	return nil
}
