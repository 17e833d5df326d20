// Package journal is sdnoc's append-only record of what it decided and did:
// every intent with its evidence is written and fsynced before it is
// applied, then its outcome. On start the journal is read back into the
// planner's state before anything is decided (invariants 6 and 7).
//
// The file is JSON lines. A torn last line (the process died mid-write) is
// cut off when the journal is opened; any other damage refuses the file
// with its line number, so a corrupt journal never silently resets state.
package journal

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/sdnoc/sdnoc/decisions"
)

// Kind says what a record holds.
type Kind string

// The kinds of record.
const (
	KindStart   Kind = "start"   // a controller started (Note says how)
	KindStop    Kind = "stop"    // a controller stopped (Note says how)
	KindChange  Kind = "change"  // a link withdrawn or restored by the planner
	KindKeepers Kind = "keepers" // the prefixes kept on withdrawn links
	KindIntent  Kind = "intent"  // about to be applied
	KindApplied Kind = "applied" // Ref applied
	KindFailed  Kind = "failed"  // Ref failed (Error says why)
	KindRefusal Kind = "refusal" // an action refused, with why
	KindMoves   Kind = "moves"   // the prefixes moved off congested links, all of them
	// Manual actions, each with its Audit (invariant 5).
	KindOverride Kind = "override" // a playbook applied: Manual
	KindRelease  Kind = "release"  // Target released by a person
	KindExpire   Kind = "expire"   // Target expired; automation has it back
	KindDenied   Kind = "denied"   // a write refused (Note says why)
	// Router changes over the CLI: the request, each command, the outcome.
	KindRouter     Kind = "router"      // a change asked of Target (Router, Audit)
	KindCommand    Kind = "command"     // one command sent to Target and its answer
	KindRouterDone Kind = "router-done" // Ref's outcome: Router holds the diff, Error why it failed
)

// RouterChange is a configuration change to a router over the CLI.
type RouterChange struct {
	Commands   []string `json:"commands,omitempty"`
	Expect     []string `json:"expect,omitempty"`
	Absent     []string `json:"absent,omitempty"`
	Diff       string   `json:"diff,omitempty"`
	RolledBack bool     `json:"rolled_back,omitempty"`
	Residual   string   `json:"residual,omitempty"`
}

// Command is one command sent to a router and what it answered.
type Command struct {
	Phase  string `json:"phase"` // capture, apply, rollback
	Input  string `json:"input"`
	Output string `json:"output,omitempty"`
	Failed bool   `json:"failed,omitempty"`
}

// Audit says who asked for a manual action, how and why.
type Audit struct {
	Author   string `json:"author"`
	Reason   string `json:"reason"`
	Via      string `json:"via"`                // the API client, e.g. "unix uid 1000"
	Playbook string `json:"playbook,omitempty"` // its name
	Kind     string `json:"kind,omitempty"`     // its kind, e.g. drain-pop
	File     string `json:"file,omitempty"`     // its file, as the client named it
}

// Manual is an applied playbook: the override it pins, who applied it,
// and the edge proxies it drained, to undrain when it ends.
type Manual struct {
	Override decisions.Override `json:"override"`
	Audit    Audit              `json:"audit"`
	Applied  time.Time          `json:"applied"`
	Drained  []string           `json:"drained,omitempty"`
	// Prepend extra copies of the AS on PrependLinks until the override
	// takes effect (Override.From), and until it ends.
	Prepend      int      `json:"prepend,omitempty"`
	PrependLinks []string `json:"prepend_links,omitempty"`
}

// State is what a journal says is in force: the planner's state and the
// manual overrides applied and not yet released or expired.
type State struct {
	decisions.Snapshot
	Overrides []Manual
}

// Record is one line of the journal.
type Record struct {
	Seq     uint64                    `json:"seq"`
	Time    time.Time                 `json:"time"`
	Kind    Kind                      `json:"kind"`
	Ref     uint64                    `json:"ref,omitempty"`
	Note    string                    `json:"note,omitempty"`
	Error   string                    `json:"error,omitempty"`
	Intent  *decisions.Intent         `json:"intent,omitempty"`
	Change  *decisions.LinkChange     `json:"change,omitempty"`
	Refusal *decisions.Refusal        `json:"refusal,omitempty"`
	Keepers map[string][]netip.Prefix `json:"keepers,omitempty"`
	Moved   map[string][]netip.Prefix `json:"moved,omitempty"`
	Moves   []decisions.Move          `json:"moves,omitempty"` // this step's moves, with their reasons
	Manual  *Manual                   `json:"manual,omitempty"`
	Target  string                    `json:"target,omitempty"` // the override released or expired
	Audit   *Audit                    `json:"audit,omitempty"`
	Router  *RouterChange             `json:"router,omitempty"`
	Command *Command                  `json:"command,omitempty"`
}

// Journal appends records to a file. It is safe for concurrent use.
type Journal struct {
	mu   sync.Mutex
	f    *os.File
	path string
	seq  uint64
}

// Open opens (creating if needed) the journal at path, replays it and
// returns the planner state it records.
func Open(path string) (*Journal, State, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o640)
	if err != nil {
		return nil, State{}, fmt.Errorf("open journal: %w", err)
	}
	snap, seq, good, err := Replay(f)
	if err != nil {
		f.Close()
		return nil, State{}, fmt.Errorf("journal %s: %w", path, err)
	}
	// Cut a torn tail so the next record starts on a line of its own.
	if err := f.Truncate(good); err != nil {
		f.Close()
		return nil, State{}, fmt.Errorf("journal %s: truncate torn tail: %w", path, err)
	}
	if _, err := f.Seek(good, io.SeekStart); err != nil {
		f.Close()
		return nil, State{}, fmt.Errorf("journal %s: %w", path, err)
	}
	return &Journal{f: f, path: path, seq: seq}, snap, nil
}

// ErrCorrupt is returned for a journal line that cannot be read and is not
// a torn last line.
var ErrCorrupt = errors.New("corrupt journal")

// Replay reads records from r and folds them into the planner state. It
// returns the last sequence number and the length of the well-formed
// prefix of r (everything before a torn last line).
func Replay(r io.Reader) (snap State, seq uint64, good int64, err error) {
	snap.Snapshot = decisions.Snapshot{Withdrawn: map[string]bool{}, Keepers: map[string][]netip.Prefix{}, Moved: map[string][]netip.Prefix{}}
	br := bufio.NewReaderSize(r, 1<<16)
	line := 0
	for {
		b, rerr := br.ReadBytes('\n')
		if len(b) == 0 && rerr == io.EOF {
			return snap, seq, good, nil
		}
		if rerr != nil && rerr != io.EOF {
			return snap, seq, good, fmt.Errorf("read: %w", rerr)
		}
		line++
		torn := rerr == io.EOF // no newline: the write did not finish
		var rec Record
		if err := json.Unmarshal(bytes.TrimSpace(b), &rec); err != nil || rec.Seq == 0 {
			if torn {
				return snap, seq, good, nil
			}
			if err == nil {
				err = errors.New("record without seq")
			}
			return snap, seq, good, fmt.Errorf("line %d: %w: %v", line, ErrCorrupt, err)
		}
		if torn {
			// A whole record without its newline: keep it, it was synced.
			good += int64(len(b))
			apply(&snap, rec)
			seq = rec.Seq
			return snap, seq, good, nil
		}
		if rec.Seq <= seq {
			return snap, seq, good, fmt.Errorf("line %d: %w: seq %d after %d", line, ErrCorrupt, rec.Seq, seq)
		}
		good += int64(len(b))
		seq = rec.Seq
		apply(&snap, rec)
	}
}

func apply(snap *State, rec Record) {
	switch rec.Kind {
	case KindOverride:
		if rec.Manual != nil {
			snap.Overrides = append(snap.Overrides, *rec.Manual)
		}
	case KindRelease, KindExpire:
		snap.Overrides = slices.DeleteFunc(snap.Overrides, func(m Manual) bool { return m.Override.ID == rec.Target })
	case KindChange:
		if rec.Change == nil {
			return
		}
		if rec.Change.Withdrawn {
			snap.Withdrawn[rec.Change.Link] = true
		} else {
			delete(snap.Withdrawn, rec.Change.Link)
		}
	case KindMoves:
		snap.Moved = map[string][]netip.Prefix{}
		for k, v := range rec.Moved {
			snap.Moved[k] = v
		}
	case KindKeepers:
		snap.Keepers = map[string][]netip.Prefix{}
		for k, v := range rec.Keepers {
			snap.Keepers[k] = v
		}
	}
}

// Append writes rec, assigning its sequence number, and fsyncs before it
// returns: once Append returns, the record survives a crash.
func (j *Journal) Append(rec Record) (uint64, error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.f == nil {
		return 0, errors.New("journal closed")
	}
	rec.Seq = j.seq + 1
	b, err := json.Marshal(rec)
	if err != nil {
		return 0, fmt.Errorf("encode journal record: %w", err)
	}
	b = append(b, '\n')
	if _, err := j.f.Write(b); err != nil {
		return 0, fmt.Errorf("write journal %s: %w", j.path, err)
	}
	if err := j.f.Sync(); err != nil {
		return 0, fmt.Errorf("sync journal %s: %w", j.path, err)
	}
	j.seq = rec.Seq
	return rec.Seq, nil
}

// Path returns the file the journal writes.
func (j *Journal) Path() string { return j.path }

// Close closes the file.
func (j *Journal) Close() error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.f == nil {
		return nil
	}
	err := j.f.Close()
	j.f = nil
	return err
}

// Read replays the journal at path without opening it for writing: dry
// runs and status views use it. A missing file is an empty journal.
func Read(path string) (State, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return State{}, nil
	}
	if err != nil {
		return State{}, fmt.Errorf("open journal: %w", err)
	}
	defer f.Close()
	snap, _, _, err := Replay(f)
	if err != nil {
		return State{}, fmt.Errorf("journal %s: %w", path, err)
	}
	return snap, nil
}

// Records returns up to limit records of the journal at path with a
// sequence number above after, the newest ones when there are more: for
// the daemon's API and people reading what sdnoc did. It scans the file.
func Records(path string, after uint64, limit int) ([]Record, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open journal: %w", err)
	}
	defer f.Close()
	var out []Record
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<16), 64<<20)
	for sc.Scan() {
		var rec Record
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
			continue // a torn tail; Open reports real damage
		}
		if rec.Seq <= after {
			continue
		}
		out = append(out, rec)
		if limit > 0 && len(out) > 2*limit {
			out = slices.Delete(out, 0, len(out)-limit)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read journal %s: %w", path, err)
	}
	if limit > 0 && len(out) > limit {
		out = out[len(out)-limit:]
	}
	return out, nil
}
