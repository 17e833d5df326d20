package telemetry

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/openconfig/gnmi/proto/gnmi"
	"github.com/openconfig/gnmic/pkg/api"
	"google.golang.org/grpc/metadata"
)

// staleAfter is how many intervals without an update end a
// subscription, and make a link's counters stale.
const staleAfter = 3

// maxBackoff caps the wait between two subscriptions to a router.
const maxBackoff = 30 * time.Second

// errSilent ends a subscription on which nothing came for staleAfter
// intervals.
var errSilent = errors.New("no update for 3 intervals")

// router is one router's subscription and what it has shown.
type router struct {
	c     *Collector
	cfg   RouterConfig
	ids   []string // link IDs, sorted
	opts  []api.TargetOption
	req   *gnmi.SubscribeRequest
	iv    time.Duration
	stale time.Duration

	mu sync.Mutex
	st *state // nil while no subscription delivers
}

func newRouter(c *Collector, rc RouterConfig) (*router, error) {
	iv := c.cfg.Interval
	r := &router{c: c, cfg: rc, ids: linkIDs(rc.Links), iv: iv, stale: staleAfter * iv}
	r.opts = []api.TargetOption{
		api.Name(rc.Name),
		api.Address(rc.Address),
		api.Insecure(rc.Insecure),
		api.SkipVerify(rc.SkipVerify),
		// Bounds the TCP dial only: gnmic dials without grpc.WithBlock
		// (target/target.go:101), so the subscribe RPC reports failures.
		api.Timeout(max(r.stale, time.Second)),
	}
	sub := func(path string) api.GNMIOption {
		return api.Subscription(api.Path(path), api.SubscriptionModeSAMPLE(), api.SampleInterval(iv))
	}
	ropts := []api.GNMIOption{api.Target(rc.Name), api.SubscriptionListModeSTREAM(), api.EncodingJSON_IETF()}
	for _, id := range r.ids {
		l := rc.Links[id]
		base := fmt.Sprintf("/interfaces/interface[name=%s]/state", l.Interface)
		ropts = append(ropts, sub(base+"/counters/in-octets"), sub(base+"/counters/out-octets"), sub(base+"/oper-status"))
		if l.Neighbor.IsValid() {
			ropts = append(ropts, sub(fmt.Sprintf("/network-instances/network-instance[name=default]/protocols/"+
				"protocol[identifier=BGP][name=BGP]/bgp/neighbors/neighbor[neighbor-address=%s]/state/session-state", l.Neighbor)))
		}
	}
	req, err := api.NewSubscribeRequest(ropts...)
	if err != nil {
		return nil, fmt.Errorf("build subscribe request: %w", err)
	}
	r.req = req
	return r, nil
}

// run subscribes until ctx ends, again after each failure: first after
// one interval, doubling up to maxBackoff, back to one interval after a
// subscription that delivered.
func (r *router) run(ctx context.Context) {
	log := r.c.log.With("router", r.cfg.Name, "address", r.cfg.Address)
	backoff := r.iv
	for {
		delivered, err := r.subscribe(ctx)
		r.setState(nil)
		r.c.metrics.routerUp.WithLabelValues(r.cfg.Name).Set(0)
		if ctx.Err() != nil {
			return
		}
		r.c.metrics.streamErrors.WithLabelValues(r.cfg.Name).Inc()
		if delivered {
			backoff = r.iv
		}
		log.Warn("telemetry subscription ended; links unknown until it is back", "err", err, "retry_in", backoff)
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, maxBackoff)
	}
}

// subscribe runs one subscription until it fails, goes silent for
// staleAfter intervals, or ctx ends. It reports whether any update came.
//
// It reads the stream itself through the target's gNMI client rather
// than gnmic's Target.Subscribe or SubscribeStreamChan: those retry
// forever on their own and send on unbuffered channels without watching
// ctx (target/subscribe.go:183-193), so their goroutine cannot be
// joined at Stop.
func (r *router) subscribe(ctx context.Context) (delivered bool, err error) {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	t, err := api.NewTarget(r.opts...)
	if err != nil {
		return false, fmt.Errorf("target: %w", err)
	}
	if err := t.CreateGNMIClient(ctx); err != nil {
		return false, fmt.Errorf("dial %s: %w", r.cfg.Address, err)
	}
	defer t.Close()
	// gnmic adds these only in its own Subscribe (appendCredentials, target/target.go:218).
	if r.cfg.Username != "" {
		ctx = metadata.AppendToOutgoingContext(ctx, "username", r.cfg.Username)
	}
	if r.cfg.Password != "" {
		ctx = metadata.AppendToOutgoingContext(ctx, "password", r.cfg.Password)
	}
	stream, err := t.Client.Subscribe(ctx)
	if err != nil {
		return false, fmt.Errorf("subscribe: %w", err)
	}
	if err := stream.Send(r.req); err != nil {
		return false, fmt.Errorf("send subscribe request: %w", err)
	}
	silent := time.AfterFunc(r.stale, func() { cancel(errSilent) })
	defer silent.Stop()
	st := newState()
	for {
		resp, err := stream.Recv()
		if err != nil {
			if cause := context.Cause(ctx); errors.Is(cause, errSilent) {
				err = cause
			}
			return delivered, fmt.Errorf("receive: %w", err)
		}
		n := resp.GetUpdate()
		if n == nil {
			continue // sync_response
		}
		silent.Reset(r.stale)
		r.c.metrics.updates.WithLabelValues(r.cfg.Name).Inc()
		r.mu.Lock()
		st.apply(n, time.Now())
		r.st = st
		r.mu.Unlock()
		if !delivered {
			delivered = true
			r.c.metrics.routerUp.WithLabelValues(r.cfg.Name).Set(1)
		}
	}
}

func (r *router) setState(st *state) {
	r.mu.Lock()
	r.st = st
	r.mu.Unlock()
}

// samples reports the router's links as of now (local clock), stamped.
func (r *router) samples(now, stamp time.Time) []Sample {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]Sample, 0, len(r.ids))
	for _, id := range r.ids {
		l := r.cfg.Links[id]
		s := Sample{Link: id, Source: "gnmi", Time: stamp}
		if r.st == nil {
			out = append(out, s)
			continue
		}
		if l.Neighbor.IsValid() {
			s.BGPState = r.st.bgp[l.Neighbor.Unmap()]
		}
		if is := r.st.ifs[l.Interface]; is != nil {
			s.OperUp = is.oper == "UP"
			if is.in.ok && is.out.ok && now.Sub(is.seen) <= r.stale {
				s.Known = true
				s.InBps, s.OutBps = is.in.bps, is.out.bps
				s.Utilisation = max(s.InBps, s.OutBps) / float64(l.Capacity)
			}
		}
		out = append(out, s)
	}
	return out
}
