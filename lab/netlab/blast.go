package netlab

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"runtime"
	"time"

	"golang.org/x/sys/unix"
)

// udpIn opens a UDP socket in network namespace ns: the socket keeps the
// namespace it was made in, and the calling thread is switched back
// before it is released to other goroutines.
func udpIn(ns string) (*net.UDPConn, error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	self, err := os.Open("/proc/thread-self/ns/net")
	if err != nil {
		return nil, err
	}
	defer self.Close()
	target, err := os.Open("/var/run/netns/" + ns)
	if err != nil {
		return nil, err
	}
	defer target.Close()
	if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
		return nil, fmt.Errorf("enter %s: %w", ns, err)
	}
	c, lerr := net.ListenUDP("udp", nil)
	if err := unix.Setns(int(self.Fd()), unix.CLONE_NEWNET); err != nil {
		// The thread is in the wrong namespace: let it die with the
		// goroutine rather than serve others.
		runtime.Goexit()
	}
	if lerr != nil {
		return nil, fmt.Errorf("udp socket in %s: %w", ns, lerr)
	}
	return c, nil
}

// blast sends bps of UDP from the internet namespace to dst until ctx
// ends: unlike iperf3, it needs no server and no control connection, so
// it keeps sending when a playbook moves dst's prefix to another PoP.
func (l *Lab) blast(ctx context.Context, dst netip.Addr, bps uint64) error {
	return Blast(ctx, l.Plan.NS("internet"), dst, bps)
}

// Blast sends bps of UDP to dst (port 9, discard) from namespace ns until
// ctx ends; it returns once the socket is open.
func Blast(ctx context.Context, ns string, dst netip.Addr, bps uint64) error {
	c, err := udpIn(ns)
	if err != nil {
		return err
	}
	const size = 1200
	to := net.UDPAddrFromAddrPort(netip.AddrPortFrom(dst, 9)) // discard
	buf := make([]byte, size)
	go func() {
		defer c.Close()
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		start, sent := time.Now(), 0.0
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			due := time.Since(start).Seconds() * float64(bps) / 8 / size
			for ; sent < due; sent++ {
				_, _ = c.WriteToUDP(buf, to) // a full queue or an ICMP error is loss, as on a real link
			}
		}
	}()
	return nil
}
