package main

import (
	"context"
	"time"

	"github.com/spf13/cobra"

	"github.com/sdnoc/sdnoc/collectors/probes"
)

func newReflector(lf *logFlags) *cobra.Command {
	var listen string
	c := &cobra.Command{
		Use:   "reflector --listen ADDR",
		Short: "Answer STAMP probes (RFC 8762 session-reflector, unauthenticated, stateless)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, err := stderrLogger(cmd, lf)
			if err != nil {
				return err
			}
			r, err := probes.NewReflector(probes.ReflectorConfig{Listen: listen}, probes.ReflectorDeps{Log: log})
			if err != nil {
				return err
			}
			if err := r.Start(cmd.Context()); err != nil {
				return err
			}
			log.Info("STAMP reflector listening", "addr", r.Addr().String())
			<-cmd.Context().Done()
			ctx, cancel := context.WithTimeout(context.WithoutCancel(cmd.Context()), 5*time.Second)
			defer cancel()
			return r.Stop(ctx)
		},
	}
	c.Flags().StringVar(&listen, "listen", probes.DefaultReflectorConfig().Listen, "UDP address to answer on (the STAMP port is 862)")
	return c
}
