package main

import (
	"context"
	"time"

	"github.com/spf13/cobra"

	"github.com/sdnoc/sdnoc/gnmiagent"
)

func newGNMIAgent(lf *logFlags) *cobra.Command {
	def := gnmiagent.DefaultConfig()
	cfg := def
	var bgpCommand string
	c := &cobra.Command{
		Use:   "gnmi-agent --listen ADDR [--sysfs DIR] [--bgp-command CMD] [--tls-cert F --tls-key F]",
		Short: "Serve this host's interface counters and FRR BGP session states over gNMI (for routers without gNMI)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, err := stderrLogger(cmd, lf)
			if err != nil {
				return err
			}
			cfg.BGPCommand = nil
			if bgpCommand != "" {
				cfg.BGPCommand = []string{"/bin/sh", "-c", bgpCommand}
			}
			a, err := gnmiagent.New(cfg, gnmiagent.Deps{Log: log})
			if err != nil {
				return err
			}
			if err := a.Start(cmd.Context()); err != nil {
				return err
			}
			log.Info("gNMI agent listening", "addr", a.Addr().String(), "sysfs", cfg.SysfsRoot, "bgp_command", bgpCommand)
			<-cmd.Context().Done()
			ctx, cancel := context.WithTimeout(context.WithoutCancel(cmd.Context()), 5*time.Second)
			defer cancel()
			return a.Stop(ctx)
		},
	}
	f := c.Flags()
	f.StringVar(&cfg.Listen, "listen", def.Listen, "TCP address to serve gNMI on")
	f.StringVar(&cfg.SysfsRoot, "sysfs", def.SysfsRoot, "directory of interfaces laid out as /sys/class/net")
	f.StringVar(&bgpCommand, "bgp-command", "vtysh -c 'show bgp neighbors json'",
		"shell command printing FRR's `show bgp neighbors json`; empty: serve no BGP neighbours")
	f.StringVar(&cfg.TLSCert, "tls-cert", "", "PEM certificate file; without it gNMI is served in plain text")
	f.StringVar(&cfg.TLSKey, "tls-key", "", "PEM private key file, with --tls-cert")
	f.DurationVar(&cfg.MinSampleInterval, "min-sample-interval", def.MinSampleInterval, "shortest sample interval served")
	return c
}
