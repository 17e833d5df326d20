package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/netip"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/sdnoc/sdnoc/collectors/flow"
)

func newFlow(lf *logFlags) *cobra.Command {
	c := &cobra.Command{
		Use:   "flow",
		Short: "Flow collection tools (sFlow v5, NetFlow v5/v9, IPFIX)",
		Args:  cobra.NoArgs,
	}
	c.AddCommand(newFlowListen(lf))
	return c
}

func newFlowListen(lf *logFlags) *cobra.Command {
	var listen, format string
	c := &cobra.Command{
		Use:   "listen [--listen ADDR] [--format text|json]",
		Short: "Print every flow record received, one per line",
		Long: `Print every flow record received, one per line.

text: time exporter format in->out src:sport > dst:dport proto bytes packets sampling-rate
json: one object per line.

Bytes and packets are already multiplied by the sampling rate.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var write func(io.Writer, *flow.Record) error
			switch format {
			case "text":
				write = writeRecordText
			case "json":
				write = writeRecordJSON
			default:
				return fmt.Errorf("--format %q: use text or json", format)
			}
			log, err := stderrLogger(cmd, lf)
			if err != nil {
				return err
			}
			cfg := flow.DefaultConfig()
			cfg.Listen = listen
			cfg.Sockets = 1 // one writer keeps the lines in arrival order
			out := cmd.OutOrStdout()
			var mu sync.Mutex
			var werr error
			col, err := flow.New(cfg, flow.Deps{Log: log, OnRecord: func(r *flow.Record) {
				mu.Lock()
				defer mu.Unlock()
				if werr == nil {
					werr = write(out, r)
				}
			}})
			if err != nil {
				return err
			}
			if err := col.Start(cmd.Context()); err != nil {
				return err
			}
			<-cmd.Context().Done()
			ctx, cancel := context.WithTimeout(context.WithoutCancel(cmd.Context()), 5*time.Second)
			defer cancel()
			if err := col.Stop(ctx); err != nil {
				return err
			}
			mu.Lock()
			defer mu.Unlock()
			if werr != nil {
				return fmt.Errorf("write record: %w", werr)
			}
			return nil
		},
	}
	c.Flags().StringVar(&listen, "listen", flow.DefaultConfig().Listen, "UDP address to receive flow datagrams on")
	c.Flags().StringVar(&format, "format", "text", "output: text or json")
	return c
}

func writeRecordText(w io.Writer, r *flow.Record) error {
	_, err := fmt.Fprintf(w, "%s %s %s %d->%d %s > %s %d %d %d %d\n",
		r.Time.UTC().Format(time.RFC3339Nano), r.Exporter, r.Format, r.InIf, r.OutIf,
		netip.AddrPortFrom(r.Src, r.SrcPort), netip.AddrPortFrom(r.Dst, r.DstPort),
		r.Proto, r.Bytes, r.Packets, r.SamplingRate)
	return err
}

// jsonRecord is flow.Record as `flow listen --format json` prints it.
type jsonRecord struct {
	Time              time.Time  `json:"time"`
	Exporter          netip.Addr `json:"exporter"`
	ObservationDomain uint32     `json:"observation_domain"`
	Format            string     `json:"format"`
	InIf              uint32     `json:"in_if"`
	OutIf             uint32     `json:"out_if"`
	Src               netip.Addr `json:"src"`
	Dst               netip.Addr `json:"dst"`
	Proto             uint8      `json:"proto"`
	SrcPort           uint16     `json:"src_port"`
	DstPort           uint16     `json:"dst_port"`
	Bytes             uint64     `json:"bytes"`
	Packets           uint64     `json:"packets"`
	SamplingRate      uint32     `json:"sampling_rate"`
}

func writeRecordJSON(w io.Writer, r *flow.Record) error {
	return json.NewEncoder(w).Encode(jsonRecord{
		Time: r.Time.UTC(), Exporter: r.Exporter, ObservationDomain: r.ObservationDomain, Format: r.Format,
		InIf: r.InIf, OutIf: r.OutIf, Src: r.Src, Dst: r.Dst, Proto: r.Proto,
		SrcPort: r.SrcPort, DstPort: r.DstPort, Bytes: r.Bytes, Packets: r.Packets, SamplingRate: r.SamplingRate,
	})
}
