package gnmiagent

import (
	"context"
	"errors"
	"io"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/openconfig/gnmi/proto/gnmi"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Subscribe serves one SubscriptionList: ONCE sends the data and a
// sync_response and ends; POLL does so again on each Poll; STREAM sends
// it (unless updates_only), a sync_response, then each subscription's
// data every sample interval until the client or the agent goes away.
func (a *Agent) Subscribe(stream gnmi.GNMI_SubscribeServer) error {
	a.metrics.requests.WithLabelValues("subscribe").Inc()
	a.metrics.subscriptions.Inc()
	defer a.metrics.subscriptions.Dec()
	req, err := stream.Recv()
	if err != nil {
		return err
	}
	sl := req.GetSubscribe()
	if sl == nil || len(sl.GetSubscription()) == 0 {
		return status.Error(codes.InvalidArgument, "first request must be a subscribe with one or more subscriptions")
	}
	ctx, cancel := context.WithCancel(stream.Context())
	defer cancel()
	stop := context.AfterFunc(a.run, cancel)
	defer stop()

	qs := make([][]*gnmi.PathElem, len(sl.Subscription))
	for i, s := range sl.Subscription {
		qs[i] = fullPath(sl.GetPrefix(), s.GetPath())
	}
	s := &subscriber{a: a, ss: stream, prefix: sl.GetPrefix()}
	switch sl.GetMode() {
	case gnmi.SubscriptionList_ONCE:
		return s.sendAll(ctx, qs, true)
	case gnmi.SubscriptionList_POLL:
		if err := s.sendAll(ctx, qs, true); err != nil {
			return err
		}
		for {
			r, err := stream.Recv()
			if errors.Is(err, io.EOF) {
				return nil
			}
			if err != nil {
				return err
			}
			if r.GetPoll() == nil {
				return status.Error(codes.InvalidArgument, "only poll requests may follow a POLL subscription")
			}
			if err := s.sendAll(ctx, qs, true); err != nil {
				return err
			}
		}
	}
	return s.stream(ctx, cancel, sl, qs)
}

// subscriber sends on one Subscribe stream; sends from the sampling
// goroutines are serialised.
type subscriber struct {
	a      *Agent
	prefix *gnmi.Path
	mu     sync.Mutex
	ss     gnmi.GNMI_SubscribeServer
}

func (s *subscriber) send(r *gnmi.SubscribeResponse) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ss.Send(r)
}

// sendAll sends the data under qs, then a sync_response if sync.
func (s *subscriber) sendAll(ctx context.Context, qs [][]*gnmi.PathElem, sync bool) error {
	if err := s.sample(ctx, qs); err != nil {
		return err
	}
	if !sync {
		return nil
	}
	return s.send(&gnmi.SubscribeResponse{Response: &gnmi.SubscribeResponse_SyncResponse{SyncResponse: true}})
}

// sample reads the sources and sends what is under qs. The leaves of a
// source that failed are left out: a gap is the truth, and the next
// sample may have them.
func (s *subscriber) sample(ctx context.Context, qs [][]*gnmi.PathElem) error {
	leaves, ts, err := s.a.read(ctx, qs)
	if ctx.Err() != nil {
		return status.FromContextError(ctx.Err()).Err()
	}
	if err != nil {
		s.a.log.Warn("sample incomplete: source read failed", "err", err)
	}
	n := notification(s.prefix, ts, leaves, qs...)
	if len(n.Update) == 0 {
		return nil
	}
	return s.send(&gnmi.SubscribeResponse{Response: &gnmi.SubscribeResponse_Update{Update: n}})
}

// stream serves a STREAM list: subscriptions with the same interval are
// sampled together, each group by its own goroutine.
func (s *subscriber) stream(ctx context.Context, cancel context.CancelFunc, sl *gnmi.SubscriptionList, qs [][]*gnmi.PathElem) error {
	groups := make(map[time.Duration][][]*gnmi.PathElem)
	for i, sub := range sl.Subscription {
		iv := time.Duration(sub.GetSampleInterval())
		if iv == 0 {
			iv = DefaultSampleInterval
		}
		iv = max(iv, s.a.cfg.MinSampleInterval)
		groups[iv] = append(groups[iv], qs[i])
	}
	syncResp := &gnmi.SubscribeResponse{Response: &gnmi.SubscribeResponse_SyncResponse{SyncResponse: true}}
	if sl.GetUpdatesOnly() {
		if err := s.send(syncResp); err != nil {
			return err
		}
	} else if err := s.sendAll(ctx, qs, true); err != nil {
		return err
	}
	// A STREAM client sends nothing more; the stream's context ends when
	// it leaves, which ends the samplers.
	var wg sync.WaitGroup
	errs := make(chan error, len(groups))
	for _, iv := range slices.Sorted(maps.Keys(groups)) {
		g := groups[iv]
		wg.Go(func() {
			t := time.NewTicker(iv)
			defer t.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case <-t.C:
				}
				if err := s.sample(ctx, g); err != nil {
					errs <- err
					cancel()
					return
				}
			}
		})
	}
	wg.Wait()
	select {
	case err := <-errs:
		return err
	default:
	}
	if s.a.run.Err() != nil {
		return status.Error(codes.Unavailable, "agent stopping")
	}
	return status.FromContextError(ctx.Err()).Err()
}
