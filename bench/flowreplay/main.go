// Command flowreplay replays flow datagrams built from real captures
// (softflowd 1.1.0's NetFlow v5, v9 and IPFIX, pmacctd 1.7.7's sFlow) at
// full rate to a flow collector on loopback, from several simulated
// exporters, each with its own UDP socket and 127.0.0.x source address.
// NetFlow v9 and IPFIX exporters send their templates first. It prints
// what it sent as one line of JSON.
//
// It only sends to 127.0.0.0/8.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

type options struct {
	format    string
	target    netip.AddrPort
	captures  string
	exporters int
	firstHost int
	duration  time.Duration
	count     int
	distinct  int
	procs     int
}

// result is what flowreplay prints.
type result struct {
	Format     string  `json:"format"`
	Exporters  int     `json:"exporters"`
	Datagrams  uint64  `json:"datagrams"`
	Records    uint64  `json:"records"`
	SendErrors uint64  `json:"send_errors"`
	Seconds    float64 `json:"seconds"`
}

func main() {
	var o options
	var target string
	flag.StringVar(&o.format, "format", formatNetFlow9, "sflow, netflow5, netflow9 or ipfix")
	flag.StringVar(&target, "target", "127.0.0.1:2055", "collector address; must be in 127.0.0.0/8")
	flag.StringVar(&o.captures, "captures", "collectors/flow/testdata/captures", "directory of the captured datagrams")
	flag.IntVar(&o.exporters, "exporters", 4, "simulated exporters, one socket each")
	flag.IntVar(&o.firstHost, "first", 11, "exporter i sends from 127.0.0.(first+i)")
	flag.DurationVar(&o.duration, "duration", 5*time.Second, "how long to send data (ignored with -count)")
	flag.IntVar(&o.count, "count", 0, "data datagrams per exporter; 0: send for -duration")
	flag.IntVar(&o.distinct, "distinct", 256, "distinct data datagrams, cycled")
	flag.IntVar(&o.procs, "procs", 1, "GOMAXPROCS of the sender, to leave CPU to the collector")
	flag.Parse()
	if err := run(target, o); err != nil {
		fmt.Fprintln(os.Stderr, "flowreplay:", err)
		os.Exit(1)
	}
}

func run(target string, o options) error {
	t, err := netip.ParseAddrPort(target)
	if err != nil {
		return fmt.Errorf("target %q: %w", target, err)
	}
	o.target = t
	if err := o.check(); err != nil {
		return err
	}
	runtime.GOMAXPROCS(o.procs)
	r, err := build(o.captures, o.format, o.distinct)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	res, err := send(ctx, o, r)
	if err != nil {
		return err
	}
	return json.NewEncoder(os.Stdout).Encode(res)
}

func (o options) check() error {
	var errs []error
	if !o.target.Addr().Is4() || !o.target.Addr().IsLoopback() || o.target.Port() == 0 {
		errs = append(errs, fmt.Errorf("-target: %s is not in 127.0.0.0/8 with a port; write e.g. 127.0.0.1:2055", o.target))
	}
	if o.exporters < 1 || o.firstHost < 1 || o.firstHost+o.exporters > 255 {
		errs = append(errs, fmt.Errorf("-exporters %d -first %d: sources must stay within 127.0.0.1-127.0.0.254", o.exporters, o.firstHost))
	}
	if o.count < 0 || (o.count == 0 && o.duration <= 0) {
		errs = append(errs, errors.New("-count or -duration: set a positive count or duration"))
	}
	if o.distinct < 1 || o.procs < 1 {
		errs = append(errs, errors.New("-distinct and -procs: must be 1 or more"))
	}
	return errors.Join(errs...)
}

// send opens one socket per exporter, sends every exporter's setup
// datagrams, then floods data until the duration or count is reached or
// ctx ends.
func send(ctx context.Context, o options, r replay) (result, error) {
	conns := make([]*net.UDPConn, 0, o.exporters)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	raddr := net.UDPAddrFromAddrPort(o.target)
	for i := range o.exporters {
		src := netip.AddrFrom4([4]byte{127, 0, 0, byte(o.firstHost + i)})
		c, err := net.DialUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(src, 0)), raddr)
		if err != nil {
			return result{}, fmt.Errorf("dial %s from %s: %w", o.target, src, err)
		}
		conns = append(conns, c)
	}
	var datagrams, records, errs atomic.Uint64
	for _, c := range conns {
		for _, d := range r.setup {
			if _, err := c.Write(d.b); err != nil {
				return result{}, fmt.Errorf("send templates to %s: %w", o.target, err)
			}
			datagrams.Add(1)
			records.Add(uint64(d.records))
		}
	}
	// Let the collector learn the templates before the flood fills its
	// buffers.
	time.Sleep(50 * time.Millisecond)
	start := time.Now()
	deadline := start.Add(o.duration)
	var wg sync.WaitGroup
	for i, c := range conns {
		wg.Go(func() {
			var n, recs, failed uint64
			j := i * len(r.data) / len(conns) // exporters start apart in the pool
			for sent := 0; o.count == 0 || sent < o.count; sent++ {
				// Checking the clock and ctx every datagram would cost as
				// much as the send.
				if sent%64 == 0 && (ctx.Err() != nil || (o.count == 0 && time.Now().After(deadline))) {
					break
				}
				d := r.data[j]
				if j++; j == len(r.data) {
					j = 0
				}
				if _, err := c.Write(d.b); err != nil {
					// ECONNREFUSED: nothing listens yet, or any more.
					failed++
					continue
				}
				n++
				recs += uint64(d.records)
			}
			datagrams.Add(n)
			records.Add(recs)
			errs.Add(failed)
		})
	}
	wg.Wait()
	return result{
		Format: o.format, Exporters: o.exporters, Datagrams: datagrams.Load(), Records: records.Load(),
		SendErrors: errs.Load(), Seconds: time.Since(start).Seconds(),
	}, nil
}
