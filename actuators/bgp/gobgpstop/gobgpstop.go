// Package gobgpstop stops a GoBGP v3 server without racing its sessions.
//
// GoBGP v3.37.0's StopBgp clears the server's global config
// (pkg/server/server.go:2096) while an established session's receive loop
// may still read it (pkg/server/fsm.go:1072, IsConfederationMember): a data
// race the race detector reports whenever a message arrives during the
// stop. Disabling each peer first sends the same Cease NOTIFICATION, and a
// peer's FSM reports idle only after its established handler, and so its
// receive loop, has returned; StopBgp then has nothing to race with.
package gobgpstop

import (
	"context"
	"fmt"
	"time"

	api "github.com/osrg/gobgp/v3/api"
	"github.com/osrg/gobgp/v3/pkg/server"
)

// Stop disables the peers at addrs, waits until each is idle (or ctx
// ends), then stops srv. StopBgp itself takes no deadline.
func Stop(ctx context.Context, srv *server.BgpServer, addrs ...string) error {
	for _, addr := range addrs {
		quiesce(ctx, srv, addr)
	}
	if err := srv.StopBgp(context.WithoutCancel(ctx), &api.StopBgpRequest{}); err != nil {
		return fmt.Errorf("stop bgp: %w", err)
	}
	return nil
}

func quiesce(ctx context.Context, srv *server.BgpServer, addr string) {
	if err := srv.DisablePeer(ctx, &api.DisablePeerRequest{Address: addr}); err != nil {
		return // no such peer: no session runs
	}
	for ctx.Err() == nil {
		idle := true
		err := srv.ListPeer(ctx, &api.ListPeerRequest{Address: addr}, func(p *api.Peer) {
			idle = p.GetState().GetSessionState() == api.PeerState_IDLE
		})
		if err != nil || idle {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
}
