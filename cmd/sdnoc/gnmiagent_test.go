package main

import (
	"context"
	"net"
	"os"
	"testing"
	"time"

	"github.com/openconfig/gnmi/proto/gnmi"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// TestGNMIAgentCommand runs `sdnoc gnmi-agent` on loopback and reads lo's
// in-octets from the real sysfs through the gNMI client stub.
func TestGNMIAgentCommand(t *testing.T) {
	if _, err := os.Stat("/sys/class/net/lo/statistics/rx_bytes"); err != nil {
		t.Skipf("no sysfs counters for lo: %v", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	ctx, cancel := context.WithCancel(t.Context())
	// The command alone: root.go adds it to sdnoc's, whose persistent
	// flags fill the logFlags.
	cmd := newGNMIAgent(&logFlags{level: "info", format: "text"})
	cmd.SetErr(&syncBuffer{})
	cmd.SetArgs([]string{"--listen", addr, "--bgp-command", ""})
	done := make(chan error, 1)
	go func() { done <- cmd.ExecuteContext(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("gnmi-agent exited with %v", err)
		}
	}()

	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	client := gnmi.NewGNMIClient(conn)
	req := &gnmi.GetRequest{Path: []*gnmi.Path{{Elem: []*gnmi.PathElem{
		{Name: "interfaces"}, {Name: "interface", Key: map[string]string{"name": "lo"}},
		{Name: "state"}, {Name: "counters"}, {Name: "in-octets"},
	}}}}
	// The command may not be listening yet: under -race on a loaded CI
	// machine its start has taken more than a second.
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case err := <-done:
			done <- err // for the deferred check
			t.Fatalf("gnmi-agent exited before answering: %v", err)
		default:
		}
		rctx, rcancel := context.WithTimeout(t.Context(), time.Second)
		resp, err := client.Get(rctx, req, grpc.WaitForReady(true))
		rcancel()
		if err != nil {
			time.Sleep(50 * time.Millisecond)
			continue
		}
		u := resp.GetNotification()[0].GetUpdate()
		if len(u) != 1 || u[0].GetVal().GetUintVal() == 0 {
			t.Fatalf("lo in-octets: %v", resp)
		}
		return
	}
	t.Fatal("no answer from sdnoc gnmi-agent")
}
