//go:build !linux

package edge

import (
	"errors"
	"net"
	"sync/atomic"
)

// loopEngine: the event loop needs epoll; elsewhere every connection is
// served by the goroutine engine.
const loopEngine = false

type loop struct {
	stop, cut atomic.Bool
	open      atomic.Int64
}

func newLoop(*Proxy) (*loop, error) { return nil, errors.New("the event loop needs Linux") }

func (*loop) run()  {}
func (*loop) wake() {}

func (p *Proxy) toLoop(net.Conn, *listener) bool { return false }

func (p *Proxy) handBack(*clientConn) bool { return false }
