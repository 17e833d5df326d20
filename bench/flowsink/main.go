// Command flowsink runs sdnoc's flow collector alone, for bench/flow.sh:
// it listens on a loopback address, attributes the records of the
// exporters that flowreplay simulates to links, and on SIGTERM or SIGINT
// stops and prints its counts as one line of JSON.
//
// Exporter i (source 127.0.0.(first+i)) has two links: its input
// ifIndex 0 (softflowd's, which fills no interface) is "rI/isp1" and
// 0x3fffffff (pmacctd's sFlow "unknown interface") is "rI/isp2". The
// prefixes are 198.18.0.0/15 and ff02::/16 (the captures' destinations)
// and, inside them, 198.18.X.0/24 and ff02::X00/120 for every X of 0-255,
// where flowreplay spreads its records.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"os/signal"
	"runtime"
	"syscall"
	"time"

	"github.com/sdnoc/sdnoc/collectors/flow"
)

// pmacctUnknownIf is the input ifIndex pmacctd's sfprobe writes when it
// does not know the interface (sFlow v5: 0x3fffffff, "unknown").
const pmacctUnknownIf = 0x3fffffff

// report is what flowsink prints at exit.
type report struct {
	Datagrams    uint64       `json:"datagrams"`
	Records      uint64       `json:"records"`
	Attributed   uint64       `json:"attributed"`
	DecodeErrors uint64       `json:"decode_errors"`
	NoTemplate   uint64       `json:"no_template"`
	Refused      flow.Refused `json:"refused"`
	Link         string       `json:"link"`
	Top          []top        `json:"top"`
}

type top struct {
	Prefix        string  `json:"prefix"`
	BytesPerSec   float64 `json:"bytes_per_sec"`
	PacketsPerSec float64 `json:"packets_per_sec"`
}

func main() {
	listen := flag.String("listen", "127.0.0.1:2055", "UDP address to listen on")
	exporters := flag.Int("exporters", 4, "exporters to attribute, as flowreplay -exporters")
	first := flag.Int("first", 11, "exporter i is 127.0.0.(first+i), as flowreplay -first")
	sockets := flag.Int("sockets", runtime.NumCPU(), "SO_REUSEPORT sockets, one worker each")
	flag.Parse()
	if err := run(*listen, *exporters, *first, *sockets); err != nil {
		fmt.Fprintln(os.Stderr, "flowsink:", err)
		os.Exit(1)
	}
}

// config returns the collector's configuration for flowreplay's
// exporters.
func config(listen string, exporters, first, sockets int) flow.Config {
	cfg := flow.DefaultConfig()
	cfg.Listen, cfg.Sockets = listen, sockets
	for i := range exporters {
		cfg.Exporters = append(cfg.Exporters, flow.ExporterConfig{
			Address: netip.AddrFrom4([4]byte{127, 0, 0, byte(first + i)}),
			Interfaces: map[uint32]string{
				0:               fmt.Sprintf("r%d/isp1", i),
				pmacctUnknownIf: fmt.Sprintf("r%d/isp2", i),
			},
		})
	}
	cfg.Prefixes = []netip.Prefix{netip.MustParsePrefix("198.18.0.0/15"), netip.MustParsePrefix("ff02::/16")}
	for x := range 256 {
		cfg.Prefixes = append(cfg.Prefixes,
			netip.PrefixFrom(netip.AddrFrom4([4]byte{198, 18, byte(x), 0}), 24),
			netip.PrefixFrom(netip.AddrFrom16([16]byte{0: 0xff, 1: 0x02, 14: byte(x)}), 120))
	}
	return cfg
}

func run(listen string, exporters, first, sockets int) error {
	c, err := flow.New(config(listen, exporters, first, sockets), flow.Deps{})
	if err != nil {
		return fmt.Errorf("flow collector: %w", err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := c.Start(ctx); err != nil {
		return fmt.Errorf("start flow collector: %w", err)
	}
	<-ctx.Done()
	stopCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.Stop(stopCtx); err != nil {
		return err
	}
	s := c.Stats()
	refused := s.UnknownExporter + s.UnknownInterface + s.NotEdge + s.Stale
	r := report{
		Datagrams: s.Datagrams, Records: s.Records, Attributed: s.Records - min(refused, s.Records),
		DecodeErrors: s.DecodeErrors, NoTemplate: s.NoTemplate, Refused: s.Refused,
		Link: busiest(c),
	}
	for _, p := range c.Top(r.Link, 5) {
		r.Top = append(r.Top, top{p.Prefix.String(), p.BytesPerSec, p.PacketsPerSec})
	}
	return json.NewEncoder(os.Stdout).Encode(r)
}

// busiest returns the link of exporter 0 with the most packets over
// the window: isp2 for sFlow, isp1 for the others.
func busiest(c *flow.Collector) string {
	best, most := "r0/isp1", 0.0
	for _, l := range []string{"r0/isp1", "r0/isp2"} {
		var sum float64
		for _, p := range c.Rates(l) {
			sum += p.PacketsPerSec
		}
		if sum > most {
			best, most = l, sum
		}
	}
	return best
}
