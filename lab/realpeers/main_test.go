package realpeers

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sdnoc/sdnoc/lab/netns"
)

// helperEnv makes the test binary, run inside a namespace, act as a
// traffic helper instead of running tests: "send" or "sink".
const helperEnv = "SDNOC_REALPEERS_HELPER"

func TestMain(m *testing.M) {
	switch os.Getenv(helperEnv) {
	case "send":
		os.Exit(sendMain())
	case "sink":
		os.Exit(sinkMain())
	}
	os.Exit(m.Run())
}

// traffic is a UDP stream of fixed-size datagrams at a fixed rate.
type traffic struct {
	dst     string // host:port
	payload int    // UDP payload bytes
	pps     int
	count   int
}

// ipBytes is the size of one of its packets at layer 3: IPv4 header 20
// (no options), UDP header 8, payload. NetFlow and IPFIX octet counts
// are this (octetDeltaCount: "octets in the IP header(s) and IP payload").
func (tr traffic) ipBytes() uint64 { return uint64(20 + 8 + tr.payload) }

// frameBytes is its size on the veth, as the interface counters count
// it: with the Ethernet header (14), without FCS (a veth has none).
func (tr traffic) frameBytes() uint64 { return 14 + tr.ipBytes() }

func (tr traffic) env() []string {
	return []string{
		helperEnv + "=send", "SEND_DST=" + tr.dst, "SEND_PAYLOAD=" + strconv.Itoa(tr.payload),
		"SEND_PPS=" + strconv.Itoa(tr.pps), "SEND_COUNT=" + strconv.Itoa(tr.count),
	}
}

// send runs the stream from inside ns and returns how many datagrams the
// kernel took.
func send(ctx context.Context, ns *netns.Namespace, tr traffic) (int, error) {
	exe, err := os.Executable()
	if err != nil {
		return 0, err
	}
	out, err := ns.Run(ctx, "env", append(tr.env(), exe)...)
	if err != nil {
		return 0, fmt.Errorf("sender: %w", err)
	}
	var sent int
	if _, err := fmt.Sscanf(string(out), "sent %d", &sent); err != nil {
		return 0, fmt.Errorf("sender output %q: %w", out, err)
	}
	return sent, nil
}

// sendMain paces tr's datagrams evenly and prints "sent N".
func sendMain() int {
	atoi := func(k string) int { v, _ := strconv.Atoi(os.Getenv(k)); return v }
	tr := traffic{dst: os.Getenv("SEND_DST"), payload: atoi("SEND_PAYLOAD"), pps: atoi("SEND_PPS"), count: atoi("SEND_COUNT")}
	if tr.pps <= 0 || tr.count <= 0 {
		fmt.Fprintln(os.Stderr, "sender: SEND_PPS and SEND_COUNT must be positive")
		return 2
	}
	conn, err := net.Dial("udp", tr.dst)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer conn.Close()
	payload := make([]byte, tr.payload)
	interval := time.Second / time.Duration(tr.pps)
	start := time.Now()
	sent := 0
	for i := range tr.count {
		if d := time.Until(start.Add(time.Duration(i) * interval)); d > 0 {
			time.Sleep(d)
		}
		if _, err := conn.Write(payload); err != nil {
			fmt.Fprintln(os.Stderr, err)
			continue
		}
		sent++
	}
	fmt.Printf("sent %d\n", sent)
	return 0
}

// startSink starts, inside ns, a UDP socket on addr that reads and drops
// what comes: a closed port would answer every datagram with an ICMP
// error.
func startSink(t *testing.T, ns *netns.Namespace, addr string) {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	p, err := ns.StartEnv([]string{helperEnv + "=sink", "SINK_ADDR=" + addr}, exe)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "sink ready", func() bool { return strings.Contains(p.Output(), "ready") })
}

func sinkMain() int {
	conn, err := net.ListenPacket("udp", os.Getenv("SINK_ADDR"))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Println("ready")
	buf := make([]byte, 65536)
	for {
		if _, _, err := conn.ReadFrom(buf); err != nil {
			return 1
		}
	}
}

// waitFor polls cond every 50ms until it holds, or fails the test after
// timeout.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(timeout); !cond(); {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, timeout)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// relErr is |got-want|/want.
func relErr(got, want float64) float64 {
	if want == 0 {
		return got
	}
	d := (got - want) / want
	if d < 0 {
		return -d
	}
	return d
}

// wired is two namespaces on a veth, b also on a management veth from
// the root namespace, where the collectors run.
type wired struct {
	a, b         *netns.Namespace
	aAddr, bAddr netip.Prefix // on the a-b veth
	root, bMgmt  netip.Prefix // on the management veth
}

// wire makes namespaces a and b joined by a veth (aIf in a, bIf in b),
// and a management veth from the root namespace to b (mgmtIf in b).
func wire(t *testing.T, l *netns.Lab, a, aIf, b, bIf, mgmtIf string) wired {
	t.Helper()
	ctx := t.Context()
	var w wired
	var err error
	if w.a, err = l.Namespace(ctx, a); err != nil {
		t.Fatal(err)
	}
	if w.b, err = l.Namespace(ctx, b); err != nil {
		t.Fatal(err)
	}
	data, err := l.Subnet(ctx)
	if err != nil {
		t.Fatal(err)
	}
	w.aAddr, w.bAddr = netns.Hosts(data)
	if _, _, err := l.Veth(ctx, netns.End{NS: w.a, Name: aIf, Addr: w.aAddr}, netns.End{NS: w.b, Name: bIf, Addr: w.bAddr}); err != nil {
		t.Fatal(err)
	}
	mgmt, err := l.Subnet(ctx)
	if err != nil {
		t.Fatal(err)
	}
	w.root, w.bMgmt = netns.Hosts(mgmt)
	if _, _, err := l.Veth(ctx, netns.End{Addr: w.root}, netns.End{NS: w.b, Name: mgmtIf, Addr: w.bMgmt}); err != nil {
		t.Fatal(err)
	}
	return w
}
