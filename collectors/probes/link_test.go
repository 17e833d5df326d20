package probes

import (
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

// newTestLink returns an unstarted link with one target, 127.0.0.1:9,
// whose socket (if bind) is bound but never read.
func newTestLink(t *testing.T, bind bool) (*link, *session) {
	t.Helper()
	cfg := Config{
		Interval: 10 * time.Millisecond, Timeout: 100 * time.Millisecond, Window: time.Second,
		Links: []LinkConfig{{ID: "l", Local: "127.0.0.1", Targets: []string{"127.0.0.1:9"}}},
	}
	c, err := New(cfg, Deps{OnSample: func(Sample) {}})
	if err != nil {
		t.Fatal(err)
	}
	l := c.links[0]
	if bind {
		// A sink that is never read: the probes go nowhere else.
		sink, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { sink.Close() })
		s := l.sessions[0]
		s.addr = netip.MustParseAddrPort(sink.LocalAddr().String())
		l.byAddr = map[netip.AddrPort]*session{s.addr: s}
		conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		l.conn = conn
	}
	return l, l.sessions[0]
}

// reflect builds the reply a reflector would send to sl, holding it for
// held.
func reflect(sl slot, held time.Duration) []byte {
	t2 := sl.sentAt.Add(time.Millisecond)
	return AppendReflectorPacket(nil, ReflectorPacket{
		Seq: sl.seq, Timestamp: NTPTimestamp(t2.Add(held)), ErrorEstimate: localErrorEstimate, ReceiveTimestamp: NTPTimestamp(t2),
		SenderSeq: sl.seq, SenderTimestamp: sl.ts, SenderErrorEstimate: localErrorEstimate,
	})
}

func TestLinkReply(t *testing.T) {
	t0 := time.Now()
	outstanding := func(seq uint32) slot {
		at := t0.Add(time.Duration(seq) * 10 * time.Millisecond)
		return slot{seq: seq, state: slotOutstanding, sentAt: at, ts: NTPTimestamp(at)}
	}
	for _, tt := range []struct {
		name                          string
		slot                          slot
		from                          string // "" is the target
		reply                         func(slot) []byte
		after                         time.Duration // from sending
		state                         slotState
		received, lost, late, invalid int
		rtt                           time.Duration
	}{
		{
			name: "in time", slot: outstanding(3), reply: func(sl slot) []byte { return reflect(sl, 5*time.Millisecond) },
			after: 20 * time.Millisecond, state: slotReceived, received: 1, rtt: 15 * time.Millisecond,
		},
		{
			name: "held longer than the round trip", slot: outstanding(3), reply: func(sl slot) []byte { return reflect(sl, time.Second) },
			after: 20 * time.Millisecond, state: slotReceived, received: 1, rtt: 20 * time.Millisecond,
		},
		{
			name: "after the timeout, before the sweep", slot: outstanding(3), reply: func(sl slot) []byte { return reflect(sl, 0) },
			after: 101 * time.Millisecond, state: slotLate, lost: 1, late: 1,
		},
		{
			name: "after the sweep", slot: func() slot { sl := outstanding(3); sl.state = slotLost; return sl }(),
			reply: func(sl slot) []byte { return reflect(sl, 0) }, after: time.Second, state: slotLate, late: 1,
		},
		{
			name: "duplicate", slot: func() slot { sl := outstanding(3); sl.state = slotReceived; return sl }(),
			reply: func(sl slot) []byte { return reflect(sl, 0) }, after: 20 * time.Millisecond, state: slotReceived, invalid: 1,
		},
		{
			name: "second late reply", slot: func() slot { sl := outstanding(3); sl.state = slotLate; return sl }(),
			reply: func(sl slot) []byte { return reflect(sl, 0) }, after: time.Second, state: slotLate, invalid: 1,
		},
		{
			name: "wrong timestamp", slot: outstanding(3),
			reply: func(sl slot) []byte { sl.ts++; return reflect(sl, 0) }, after: 20 * time.Millisecond, state: slotOutstanding, invalid: 1,
		},
		{
			name: "never sent", slot: outstanding(3),
			reply: func(sl slot) []byte { sl.seq += 32; return reflect(sl, 0) }, after: 20 * time.Millisecond, state: slotOutstanding, invalid: 1,
		},
		{
			name: "foreign source", slot: outstanding(3), from: "127.0.0.2:9",
			reply: func(sl slot) []byte { return reflect(sl, 0) }, after: 20 * time.Millisecond, state: slotOutstanding, invalid: 1,
		},
		{
			name: "truncated", slot: outstanding(3),
			reply: func(sl slot) []byte { return reflect(sl, 0)[:43] }, after: 20 * time.Millisecond, state: slotOutstanding, invalid: 1,
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			l, s := newTestLink(t, false)
			i := tt.slot.seq & uint32(len(s.ring)-1)
			s.ring[i] = tt.slot
			if tt.slot.state == slotOutstanding {
				s.outstanding = 1
			}
			from := s.addr
			if tt.from != "" {
				from = netip.MustParseAddrPort(tt.from)
			}
			l.reply(from, tt.reply(tt.slot), tt.slot.sentAt.Add(tt.after))
			w := s.win
			if s.ring[i].state != tt.state || w.received != tt.received || w.lost != tt.lost || w.late != tt.late ||
				int(testutil.ToFloat64(l.malformed)) != tt.invalid {
				t.Errorf("state %d, received %d, lost %d, late %d, malformed %v; want %d, %d, %d, %d, %d",
					s.ring[i].state, w.received, w.lost, w.late, testutil.ToFloat64(l.malformed),
					tt.state, tt.received, tt.lost, tt.late, tt.invalid)
			}
			if tt.received == 1 && (len(w.rtts) != 1 || w.rtts[0] != tt.rtt) {
				t.Errorf("RTTs %v, want [%v]", w.rtts, tt.rtt)
			}
			if want := tt.slot.state == slotOutstanding && tt.state == slotOutstanding; (s.outstanding == 1) != want {
				t.Errorf("outstanding %d after the reply", s.outstanding)
			}
		})
	}
}

// However long replies stay away, a target's memory does not grow: the
// probe a new one would overwrite is counted lost first.
func TestLinkBoundedOutstanding(t *testing.T) {
	l, s := newTestLink(t, true)
	n := len(s.ring)
	if min := 2*int(l.c.cfg.Timeout/l.c.cfg.Interval) + 8; n < min || n >= 2*min {
		t.Fatalf("ring of %d slots, want %d to %d", n, min, 2*min-1)
	}
	for range n + 5 {
		l.send(s)
	}
	if s.outstanding != n || s.win.sent != n+5 || s.win.lost != 5 || s.win.sendErrors != 0 {
		t.Errorf("outstanding %d, sent %d, lost %d, send errors %d; want %d, %d, 5, 0",
			s.outstanding, s.win.sent, s.win.lost, s.win.sendErrors, n, n+5)
	}
	// The sweep counts the rest once their time is up.
	l.sweep(time.Now().Add(l.c.cfg.Timeout + time.Millisecond))
	if s.outstanding != 0 || s.win.lost != n+5 {
		t.Errorf("after the sweep: outstanding %d, lost %d; want 0, %d", s.outstanding, s.win.lost, n+5)
	}
}

func TestJitter(t *testing.T) {
	var j jitter
	if _, ok := j.value(); ok {
		t.Error("jitter defined before any transit")
	}
	j.add(10 * time.Millisecond)
	if _, ok := j.value(); ok {
		t.Error("jitter defined after one transit")
	}
	// Transits alternating by 1.6ms: J climbs towards 1.6ms by 1/16 of the gap.
	j.add(11600 * time.Microsecond)
	if got, ok := j.value(); !ok || got != 100*time.Microsecond {
		t.Errorf("jitter %v, %v; want 100µs", got, ok)
	}
	for i := range 200 {
		j.add(10*time.Millisecond + time.Duration(i%2)*1600*time.Microsecond)
	}
	if got, _ := j.value(); got < 1590*time.Microsecond || got > 1600*time.Microsecond {
		t.Errorf("jitter %v after 200 alternations, want about 1.6ms", got)
	}
}
