package journal

import (
	"bytes"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sdnoc/sdnoc/decisions"
)

var when = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func TestAppendReopenRestores(t *testing.T) {
	path := filepath.Join(t.TempDir(), "journal.jsonl")
	j, snap, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(snap.Withdrawn) != 0 {
		t.Fatalf("fresh journal restored %v", snap.Withdrawn)
	}
	p := netip.MustParsePrefix("198.51.100.0/24")
	recs := []Record{
		{Kind: KindStart, Note: "test"},
		{Kind: KindChange, Change: &decisions.LinkChange{Link: "pop1/isp1", Withdrawn: true}},
		{Kind: KindChange, Change: &decisions.LinkChange{Link: "pop1/isp2", Withdrawn: true}},
		{Kind: KindIntent, Intent: &decisions.Intent{Action: decisions.Withdraw, Link: "pop1/isp1", Prefixes: []netip.Prefix{p}}},
		{Kind: KindApplied, Ref: 4},
		{Kind: KindKeepers, Keepers: map[string][]netip.Prefix{"pop1/isp2": {p}}},
		{Kind: KindChange, Change: &decisions.LinkChange{Link: "pop1/isp1", Withdrawn: false}},
		{Kind: KindMoves, Moved: map[string][]netip.Prefix{"pop1/isp3": {p}}},
		{Kind: KindMoves, Moved: map[string][]netip.Prefix{"pop1/isp1": {p}}},
	}
	for i, r := range recs {
		r.Time = when
		seq, err := j.Append(r)
		if err != nil || seq != uint64(i+1) {
			t.Fatalf("Append #%d = %d, %v", i, seq, err)
		}
	}
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	j, snap, err = Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	if snap.Withdrawn["pop1/isp1"] || !snap.Withdrawn["pop1/isp2"] || len(snap.Withdrawn) != 1 {
		t.Errorf("withdrawn = %v; want only pop1/isp2", snap.Withdrawn)
	}
	if got := snap.Keepers["pop1/isp2"]; len(got) != 1 || got[0] != p {
		t.Errorf("keepers = %v", snap.Keepers)
	}
	if got := snap.Moved; len(got) != 1 || len(got["pop1/isp1"]) != 1 {
		t.Errorf("moved = %v; want the last moves record only", got)
	}
	if seq, err := j.Append(Record{Kind: KindStart, Time: when}); err != nil || seq != 10 {
		t.Fatalf("append after reopen = %d, %v; want seq 10", seq, err)
	}
}

func TestTornTailIsCut(t *testing.T) {
	path := filepath.Join(t.TempDir(), "journal.jsonl")
	whole := `{"seq":1,"time":"2026-01-01T00:00:00Z","kind":"change","change":{"link":"a/1","withdrawn":true,"reason":"","evidence":{"state":"degraded","verdict":"","window":{"samples":0,"resolved":0,"lost":0,"loss_pct":0,"rtt_avg_ns":0,"jitter_ns":0,"since_reply_ns":0,"age_ns":0,"sustained_loss_pct":0},"thresholds":{"LossPct":0,"LossWindow":0,"RTT":0,"Jitter":0,"Enter":0,"Exit":0,"HoldDown":0,"DownAfter":0,"StaleAfter":0,"MinProbes":0}}}}` + "\n"
	if err := os.WriteFile(path, []byte(whole+`{"seq":2,"time":"2026-01-01T00:`), 0o600); err != nil {
		t.Fatal(err)
	}
	j, snap, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	if !snap.Withdrawn["a/1"] {
		t.Fatal("record before the torn line was lost")
	}
	if _, err := j.Append(Record{Kind: KindStart, Time: when}); err != nil {
		t.Fatal(err)
	}
	j.Close()
	b, _ := os.ReadFile(path)
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) != 2 || !strings.Contains(lines[1], `"seq":2`) || !strings.Contains(lines[1], `"kind":"start"`) {
		t.Fatalf("after reopen the file is %q; want the torn tail replaced by the new record", b)
	}
}

func TestCorruptMiddleIsRefused(t *testing.T) {
	path := filepath.Join(t.TempDir(), "journal.jsonl")
	content := "{\"seq\":1,\"kind\":\"start\"}\nnot json\n{\"seq\":3,\"kind\":\"start\"}\n"
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	_, _, err := Open(path)
	if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "line 2") || !strings.Contains(err.Error(), path) {
		t.Fatalf("Open() error = %v; want ErrCorrupt naming the file and line 2", err)
	}
	if b, _ := os.ReadFile(path); string(b) != content {
		t.Fatal("a refused journal was modified")
	}
}

func TestSeqMustIncrease(t *testing.T) {
	_, _, _, err := Replay(strings.NewReader("{\"seq\":2,\"kind\":\"start\"}\n{\"seq\":2,\"kind\":\"start\"}\n"))
	if !errors.Is(err, ErrCorrupt) {
		t.Fatalf("duplicate seq: err = %v", err)
	}
}

func FuzzReplay(f *testing.F) {
	f.Add([]byte("{\"seq\":1,\"kind\":\"start\"}\n"))
	f.Add([]byte("{\"seq\":1,\"kind\":\"change\",\"change\":{\"link\":\"a/1\",\"withdrawn\":true}}\n{\"seq\":2,\"kind\":\"keepers\",\"keepers\":{\"a/1\":[\"198.51.100.0/24\"]}}\n"))
	f.Add([]byte("{\"seq\":1,\"kind\""))
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _, good, err := Replay(bytes.NewReader(b))
		if good < 0 || good > int64(len(b)) {
			t.Fatalf("good = %d of %d bytes", good, len(b))
		}
		if err == nil && good < int64(len(b)) {
			// Whatever was cut must be one torn last line.
			if bytes.Contains(b[good:], []byte("\n")) {
				t.Fatalf("cut %q, which holds a whole line", b[good:])
			}
		}
	})
}

// Overrides applied come back on reopen until released or expired, with
// their audit; Records reads the newest records after a sequence number.
func TestOverridesReplay(t *testing.T) {
	path := filepath.Join(t.TempDir(), "journal.jsonl")
	j, _, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	p := netip.MustParsePrefix("198.51.100.0/24")
	man := func(id string) *Manual {
		return &Manual{Override: decisions.Override{ID: id, Expires: when.Add(time.Hour), Withdraw: map[string][]netip.Prefix{"pop1/isp1": {p}}},
			Audit: Audit{Author: "alice", Reason: "maintenance", Via: "unix uid 0", Kind: "drain-pop"}, Applied: when, Drained: []string{"10.0.0.1:9480"}}
	}
	for _, r := range []Record{
		{Kind: KindOverride, Manual: man("a")},
		{Kind: KindOverride, Manual: man("b")},
		{Kind: KindOverride, Manual: man("c")},
		{Kind: KindRelease, Target: "a", Audit: &Audit{Author: "bob", Reason: "done", Via: "unix uid 0"}},
		{Kind: KindExpire, Target: "c"},
	} {
		r.Time = when
		if _, err := j.Append(r); err != nil {
			t.Fatal(err)
		}
	}
	j.Close()
	_, st, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Overrides) != 1 || st.Overrides[0].Override.ID != "b" || st.Overrides[0].Audit.Author != "alice" ||
		st.Overrides[0].Drained[0] != "10.0.0.1:9480" || st.Overrides[0].Override.Withdraw["pop1/isp1"][0] != p {
		t.Fatalf("overrides restored: %+v; want b with its audit", st.Overrides)
	}
	recs, err := Records(path, 2, 2)
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 2 || recs[0].Seq != 4 || recs[1].Seq != 5 || recs[0].Audit.Author != "bob" {
		t.Fatalf("records = %+v; want seq 4 and 5", recs)
	}
	if recs, _ = Records(path, 0, 0); len(recs) != 5 {
		t.Fatalf("all records: %d", len(recs))
	}
}
