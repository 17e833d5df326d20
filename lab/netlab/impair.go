package netlab

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
)

// The impairments act in the ISP's namespace, on its interface towards
// the PoP, as an ISP's own trouble would: loss drops what the ISP
// delivers into the PoP (probe replies, BGP, the users' traffic: the
// direction sdnoc steers), the rate limit caps it (the link's capacity),
// a cut takes the ISP's side of the link down. There is no netem on this
// kernel, so no delay.

// ispSide returns the namespace and interface of the ISP's end of a link.
func (l *Lab) ispSide(id string) (ns, dev string, err error) {
	pop, lk, ok := l.Plan.Link(id)
	if !ok {
		return "", "", fmt.Errorf("no link %q in the lab", id)
	}
	return l.Plan.NS(lk.ISP), pop.Name, nil
}

// lossTable names a link's nftables table in its ISP's namespace.
func lossTable(dev string) string { return "sdnoc_loss_" + strings.ReplaceAll(dev, "-", "_") }

// SetLoss drops pct % (0 to 100, in steps of 0.1) of the packets the ISP
// delivers into the PoP on the link, at random (nftables numgen): a probe
// crossing the link is lost with that probability. 0 removes the loss.
func (l *Lab) SetLoss(ctx context.Context, id string, pct float64) error {
	if pct < 0 || pct > 100 {
		return fmt.Errorf("loss %v%%: want 0 to 100", pct)
	}
	ns, dev, err := l.ispSide(id)
	if err != nil {
		return err
	}
	table := lossTable(dev)
	_ = nsExec(ctx, ns, "nft", "delete", "table", "netdev", table)
	if pct == 0 {
		return nil
	}
	per1000 := int(pct*10 + 0.5)
	// The closing braces on their own lines: nft's file syntax wants them.
	rules := fmt.Sprintf(`table netdev %[1]s {
	chain out {
		type filter hook egress device %[2]q priority 0; policy accept;
		numgen random mod 1000 < %[3]d counter drop
	}
}
`, table, dev, per1000)
	cmd := exec.CommandContext(ctx, "ip", "netns", "exec", ns, "nft", "-f", "-")
	cmd.Stdin = strings.NewReader(rules)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("loss on %s: nft: %w: %s", id, err, out)
	}
	return nil
}

// SetCapacity limits what the ISP delivers into the PoP on the link to
// bps (tc tbf); 0 removes the limit.
func (l *Lab) SetCapacity(ctx context.Context, id string, bps uint64) error {
	ns, dev, err := l.ispSide(id)
	if err != nil {
		return err
	}
	if bps == 0 {
		return sh(ctx, "ip", "netns", "exec", ns, "tc", "qdisc", "del", "dev", dev, "root")
	}
	// A burst of 10 ms at the rate (at least 16 kB), and packets queued
	// beyond 50 ms dropped: a full link, not an ever-growing delay.
	burst := max(bps/8/100, 16_000)
	return nsExec(ctx, ns, "tc", "qdisc", "replace", "dev", dev, "root", "tbf",
		"rate", strconv.FormatUint(bps, 10)+"bit", "burst", strconv.FormatUint(burst, 10), "latency", "50ms")
}

// Cut takes the ISP's side of the link down (true) or up again (false).
func (l *Lab) Cut(ctx context.Context, id string, down bool) error {
	ns, dev, err := l.ispSide(id)
	if err != nil {
		return err
	}
	state := "up"
	if down {
		state = "down"
	}
	return in(ctx, ns, "link", "set", dev, state)
}

// CutUpstream takes an ISP's link to the internet down (true) or up
// again (false): the ISP goes dark for the PoPs while its BGP sessions
// with them stay up.
func (l *Lab) CutUpstream(ctx context.Context, isp string, down bool) error {
	state := "up"
	if down {
		state = "down"
	}
	return in(ctx, l.Plan.NS(isp), "link", "set", "inet", state)
}

// Counter reads an interface statistic (rx_bytes, tx_packets, ...) of
// dev in namespace ns.
func Counter(ctx context.Context, ns, dev, name string) (uint64, error) {
	out, err := exec.CommandContext(ctx, "ip", "netns", "exec", ns, "cat", "/sys/class/net/"+dev+"/statistics/"+name).Output()
	if err != nil {
		return 0, fmt.Errorf("%s %s %s: %w", ns, dev, name, err)
	}
	return strconv.ParseUint(strings.TrimSpace(string(out)), 10, 64)
}

// RxBytes returns the bytes the PoP's border has received from the ISP
// on the link: what the link carried into the PoP.
func (l *Lab) RxBytes(ctx context.Context, id string) (uint64, error) {
	pop, lk, ok := l.Plan.Link(id)
	if !ok {
		return 0, fmt.Errorf("no link %q in the lab", id)
	}
	return Counter(ctx, l.Plan.NS(pop.Name), lk.Name, "rx_bytes")
}

// logFile returns the path of a lab process's log.
func (l *Lab) logFile(name string) string { return l.opts.Dir + "/logs/" + name + ".log" }

// Log returns what a lab process logged so far, for failure messages.
func (l *Lab) Log(name string) string {
	b, err := os.ReadFile(l.logFile(name))
	if err != nil {
		return err.Error()
	}
	return string(b)
}

// capacity returns the topology's capacity of a link, bit/s.
func (l *Lab) capacity(id string) uint64 {
	for _, pop := range l.Plan.Topology.PoPs {
		for _, lk := range pop.Links {
			if l.Plan.Topology.LinkID(pop.Name, lk.Name) == id {
				return lk.Capacity
			}
		}
	}
	return 0
}
