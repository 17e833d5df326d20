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
)

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
func Open(path string) (*Journal, decisions.Snapshot, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o640)
	if err != nil {
		return nil, decisions.Snapshot{}, fmt.Errorf("open journal: %w", err)
	}
	snap, seq, good, err := Replay(f)
	if err != nil {
		f.Close()
		return nil, decisions.Snapshot{}, fmt.Errorf("journal %s: %w", path, err)
	}
	// Cut a torn tail so the next record starts on a line of its own.
	if err := f.Truncate(good); err != nil {
		f.Close()
		return nil, decisions.Snapshot{}, fmt.Errorf("journal %s: truncate torn tail: %w", path, err)
	}
	if _, err := f.Seek(good, io.SeekStart); err != nil {
		f.Close()
		return nil, decisions.Snapshot{}, fmt.Errorf("journal %s: %w", path, err)
	}
	return &Journal{f: f, path: path, seq: seq}, snap, nil
}

// ErrCorrupt is returned for a journal line that cannot be read and is not
// a torn last line.
var ErrCorrupt = errors.New("corrupt journal")

// Replay reads records from r and folds them into the planner state. It
// returns the last sequence number and the length of the well-formed
// prefix of r (everything before a torn last line).
func Replay(r io.Reader) (snap decisions.Snapshot, seq uint64, good int64, err error) {
	snap = decisions.Snapshot{Withdrawn: map[string]bool{}, Keepers: map[string][]netip.Prefix{}, Moved: map[string][]netip.Prefix{}}
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

func apply(snap *decisions.Snapshot, rec Record) {
	switch rec.Kind {
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
func Read(path string) (decisions.Snapshot, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return decisions.Snapshot{}, nil
	}
	if err != nil {
		return decisions.Snapshot{}, fmt.Errorf("open journal: %w", err)
	}
	defer f.Close()
	snap, _, _, err := Replay(f)
	if err != nil {
		return decisions.Snapshot{}, fmt.Errorf("journal %s: %w", path, err)
	}
	return snap, nil
}
