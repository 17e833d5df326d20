package main

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/sdnoc/sdnoc/collectors/probes"
)

// TestReflectorCommand runs `sdnoc reflector` and sends it a STAMP
// session-sender packet: the answer must echo our sequence number and
// timestamp (RFC 8762 §4.3.1).
func TestReflectorCommand(t *testing.T) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := pc.LocalAddr().String()
	pc.Close()
	ctx, cancel := context.WithCancel(t.Context())
	root := newRoot()
	root.SetErr(&syncBuffer{})
	root.SetArgs([]string{"reflector", "--listen", addr})
	done := make(chan error, 1)
	go func() { done <- root.ExecuteContext(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("reflector exited with %v", err)
		}
	}()

	conn, err := net.Dial("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	sent := probes.SenderPacket{Seq: 42, Timestamp: probes.NTPTimestamp(time.Now())}
	buf := make([]byte, 128)
	for range 50 { // the command may not be listening yet
		if _, err := conn.Write(probes.AppendSenderPacket(nil, sent)); err != nil {
			t.Fatal(err)
		}
		conn.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
		n, err := conn.Read(buf)
		if err != nil { // refused (not listening yet) or timed out
			time.Sleep(20 * time.Millisecond)
			continue
		}
		got, err := probes.ParseReflectorPacket(buf[:n])
		if err != nil {
			t.Fatalf("reply does not parse: %v", err)
		}
		if got.SenderSeq != 42 || got.SenderTimestamp != sent.Timestamp || got.ReceiveTimestamp == 0 {
			t.Fatalf("reply %+v does not reflect %+v", got, sent)
		}
		return
	}
	t.Fatal("no reply from sdnoc reflector")
}
