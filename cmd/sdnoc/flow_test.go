package main

import (
	"context"
	"encoding/json"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/sdnoc/sdnoc/collectors/flow/flowtest"
)

// runFlowListen runs `flow listen` on a free loopback port with extra
// args, and returns the port's address and the command's output; the
// command stops when the test ends.
func runFlowListen(t *testing.T, args ...string) (string, *syncBuffer) {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := pc.LocalAddr().String()
	pc.Close()
	ctx, cancel := context.WithCancel(t.Context())
	out, errOut := &syncBuffer{}, &syncBuffer{}
	cmd := newFlow(&logFlags{level: "info", format: "text"})
	cmd.SetOut(out)
	cmd.SetErr(errOut)
	cmd.SetArgs(append([]string{"listen", "--listen", addr}, args...))
	done := make(chan error, 1)
	go func() { done <- cmd.ExecuteContext(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("flow listen exited with %v", err)
		}
	})
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(errOut.String(), "flow collector listening") {
		if time.Now().After(deadline) {
			t.Fatalf("flow listen did not start; stderr:\n%s", errOut)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return addr, out
}

var (
	cmdSrc4 = netip.MustParseAddr("192.0.2.10")
	cmdDst4 = netip.MustParseAddr("198.51.100.20")
	cmdSrc6 = netip.MustParseAddr("2001:db8::10")
	cmdDst6 = netip.MustParseAddr("2001:db8:1::20")
)

// sendFlows sends a NetFlow v9 template and data, then an sFlow datagram.
func sendFlows(t *testing.T, addr string) {
	t.Helper()
	conn, err := net.Dial("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	for _, p := range [][]byte{
		flowtest.NetFlowV9Template(7),
		flowtest.NetFlowV9Sampling(7, 10),
		flowtest.NetFlowV9Data(7, []flowtest.Flow{{Src: cmdSrc4, Dst: cmdDst4, Proto: 6, SrcPort: 443, DstPort: 51000, InIf: 3, OutIf: 7, Bytes: 1500, Packets: 3}}),
		flowtest.SFlowV5(netip.MustParseAddr("127.0.0.1"), []flowtest.SFlowSample{
			{SamplingRate: 1000, InIf: 4, OutIf: 8, Src: cmdSrc6, Dst: cmdDst6, Proto: 17, SrcPort: 53, DstPort: 40000, FrameLength: 200},
		}),
	} {
		if _, err := conn.Write(p); err != nil {
			t.Fatal(err)
		}
	}
}

// waitLines waits for n lines of output.
func waitLines(t *testing.T, out *syncBuffer, n int) []string {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
		if len(lines) >= n && lines[0] != "" {
			return lines
		}
		if time.Now().After(deadline) {
			t.Fatalf("got output %q, want %d lines", out.String(), n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestFlowListenText(t *testing.T) {
	addr, out := runFlowListen(t)
	sendFlows(t, addr)
	lines := waitLines(t, out, 2)
	want := []string{
		"127.0.0.1 netflow9 3->7 192.0.2.10:443 > 198.51.100.20:51000 6 15000 30 10",
		"127.0.0.1 sflow5 4->8 [2001:db8::10]:53 > [2001:db8:1::20]:40000 17 200000 1000 1000",
	}
	if len(lines) != len(want) {
		t.Fatalf("got %d lines, want %d:\n%s", len(lines), len(want), out)
	}
	for i, l := range lines {
		ts, rest, _ := strings.Cut(l, " ")
		if _, err := time.Parse(time.RFC3339Nano, ts); err != nil {
			t.Errorf("line %d starts with %q, not a time", i, ts)
		}
		if rest != want[i] {
			t.Errorf("line %d:\n got %q\nwant %q", i, rest, want[i])
		}
	}
}

func TestFlowListenJSON(t *testing.T) {
	addr, out := runFlowListen(t, "--format", "json")
	sendFlows(t, addr)
	lines := waitLines(t, out, 2)
	var got struct {
		Exporter, Format, Src, Dst string
		Bytes, Packets             uint64
		SamplingRate               uint32 `json:"sampling_rate"`
		DstPort                    uint16 `json:"dst_port"`
	}
	if err := json.Unmarshal([]byte(lines[1]), &got); err != nil {
		t.Fatalf("line %q: %v", lines[1], err)
	}
	if got.Exporter != "127.0.0.1" || got.Format != "sflow5" || got.Dst != "2001:db8:1::20" || got.DstPort != 40000 ||
		got.Bytes != 200_000 || got.Packets != 1000 || got.SamplingRate != 1000 {
		t.Fatalf("line %q decodes to %+v", lines[1], got)
	}
}

func TestFlowListenBadFormat(t *testing.T) {
	cmd := newFlow(&logFlags{level: "info", format: "text"})
	cmd.SetOut(&syncBuffer{})
	cmd.SetErr(&syncBuffer{})
	cmd.SetArgs([]string{"listen", "--listen", "127.0.0.1:0", "--format", "xml"})
	if err := cmd.ExecuteContext(t.Context()); err == nil || !strings.Contains(err.Error(), "--format") {
		t.Fatalf("--format xml: %v", err)
	}
}
