package netlab

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
)

// PcapShim makes libpcap deliver each packet at once (immediate mode).
// softflowd 1.1.0 does not ask for it, and with libpcap 1.10's TPACKET_V3
// ring on this kernel it sees packets only when a ring block fills
// (shared/LAB.md §5): seconds of traffic arrive late or not at all.
const PcapShim = `#define _GNU_SOURCE
#include <dlfcn.h>
#include <pcap/pcap.h>
int pcap_activate(pcap_t *p) {
	static int (*real)(pcap_t *);
	if (!real) real = (int (*)(pcap_t *))dlsym(RTLD_NEXT, "pcap_activate");
	pcap_set_immediate_mode(p, 1);
	return real(p);
}
`

// BuildPcapShim compiles PcapShim into dir (gcc, libpcap-dev) and
// returns the library's path, for LD_PRELOAD.
func BuildPcapShim(ctx context.Context, dir string) (string, error) {
	src, lib := filepath.Join(dir, "pcap_immediate.c"), filepath.Join(dir, "pcap_immediate.so")
	if err := os.WriteFile(src, []byte(PcapShim), 0o644); err != nil {
		return "", err
	}
	out, err := exec.CommandContext(ctx, "gcc", "-shared", "-fPIC", "-O2", "-o", lib, src, "-ldl").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("build the libpcap shim (gcc, libpcap-dev; lab/install.sh): %w: %s", err, bytes.TrimSpace(out))
	}
	return lib, nil
}

// collectorPort is where sdnoc's flow collector listens in the lab.
const collectorPort = 2055

// startExporters runs the flow exporters of every PoP on its ISP-facing
// ports, sending to sdnoc over the management link: softflowd (NetFlow
// v9 and IPFIX, every packet) or pmacctd (sFlow, 1 in 10).
func (l *Lab) startExporters(ctx context.Context, st *State) error {
	shim := ""
	for _, pop := range l.Plan.PoPs {
		bns := l.Plan.NS(pop.Name)
		to := fmt.Sprintf("%s:%d", pop.MgmtPeer.Addr(), collectorPort)
		for i, lk := range pop.Links {
			name := fmt.Sprintf("%s-%s-%s", pop.Exporter, pop.Name, lk.Name)
			var argv []string
			switch pop.Exporter {
			case "softflowd":
				if shim == "" {
					var err error
					if shim, err = BuildPcapShim(ctx, l.opts.Dir); err != nil {
						return err
					}
				}
				version := "9"
				if i%2 == 1 {
					version = "10"
				}
				// Flows are exported at least every 2 s (maxlife), so the
				// rates over sdnoc's window follow the traffic.
				argv = []string{"env", "LD_PRELOAD=" + shim, "softflowd", "-d", "-i", fmt.Sprintf("%d:%s", lk.IfIndex, lk.Name),
					"-n", to, "-v", version, "-t", "maxlife=2", "-t", "expint=1",
					"-p", filepath.Join(l.opts.Dir, name+".pid"), "-c", filepath.Join(l.opts.Dir, name+".ctl")}
			case "pmacctd":
				conf := filepath.Join(l.opts.Dir, name+".conf")
				body := strings.Join([]string{
					"daemonize: false",
					"pcap_interface: " + lk.Name,
					"plugins: sfprobe[sf]",
					"sfprobe_receiver[sf]: " + to,
					"sfprobe_agentip[sf]: " + pop.Mgmt.Addr().String(),
					"sfprobe_direction[sf]: in",
					// Without it sfprobe sends sFlow's "unknown" interface.
					"sfprobe_ifindex[sf]: " + strconv.FormatUint(uint64(lk.IfIndex), 10),
					"sampling_rate[sf]: 10",
					"",
				}, "\n")
				if err := os.WriteFile(conf, []byte(body), 0o644); err != nil {
					return err
				}
				argv = []string{"pmacctd", "-f", conf}
			default:
				return fmt.Errorf("pop %s: no exporter %q", pop.Name, pop.Exporter)
			}
			if err := l.keep(st, name, bns, argv...); err != nil {
				return err
			}
		}
	}
	return nil
}
