package topologies

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// fieldError is one problem at one place in a topology: path is the key path
// as written in the file ("pops[1].links[0].neighbor"), msg says what is
// wrong and how to fix it.
type fieldError struct {
	path, msg string
}

// errList collects every problem found while loading a topology, so that a
// file is refused with all its mistakes at once rather than one per attempt.
type errList struct {
	errs []fieldError
	// failed holds the paths whose value could not be decoded. Later checks
	// on those paths (or below them) would only repeat the same problem in
	// other words ("missing" after "not an IP address"), so they are dropped.
	failed map[string]bool
}

// add records a problem that leaves the value usable.
func (e *errList) add(path, format string, args ...any) {
	e.errs = append(e.errs, fieldError{path, fmt.Sprintf(format, args...)})
}

// fail records a problem that leaves the value at path unusable.
func (e *errList) fail(path, format string, args ...any) {
	e.add(path, format, args...)
	e.markFailed(path)
}

// markFailed marks the value at path unusable without a message of its
// own, when a problem below it was reported.
func (e *errList) markFailed(path string) {
	if e.failed == nil {
		e.failed = make(map[string]bool)
	}
	e.failed[path] = true
}

// merge adds errors from a later stage, dropping those on or below a path
// that already failed to decode.
func (e *errList) merge(later []fieldError) {
	for _, fe := range later {
		if !e.covers(fe.path) {
			e.errs = append(e.errs, fe)
		}
	}
}

func (e *errList) covers(path string) bool {
	for p := path; p != ""; p = parentPath(p) {
		if e.failed[p] {
			return true
		}
	}
	return false
}

// parentPath returns the path one level up: "a.b[2]" -> "a.b" -> "a" -> "".
func parentPath(p string) string {
	i := strings.LastIndexAny(p, ".[")
	if i < 0 {
		return ""
	}
	return p[:i]
}

// joinErrors formats errs as one error, one problem a line, each line
// starting with the file name, sorted by path so that the problems of one
// PoP or link sit together. env maps the paths that came from environment
// variables to the variable, which the line names.
func joinErrors(name string, errs []fieldError, env map[string]string) error {
	if len(errs) == 0 {
		return nil
	}
	if name == "" {
		name = "topology"
	}
	sorted := slices.Clone(errs)
	slices.SortStableFunc(sorted, func(a, b fieldError) int { return comparePaths(a.path, b.path) })
	out := make([]error, 0, len(sorted))
	for _, fe := range sorted {
		path := fe.path
		if v, ok := env[path]; ok {
			path += " (set by " + v + ")"
		}
		if path == "" {
			out = append(out, fmt.Errorf("%s: %s", name, fe.msg))
			continue
		}
		out = append(out, fmt.Errorf("%s: %s: %s", name, path, fe.msg))
	}
	return errors.Join(out...)
}

// comparePaths orders paths as text, except that runs of digits compare as
// numbers, so pops[2] comes before pops[10].
func comparePaths(a, b string) int {
	for a != "" && b != "" {
		da, db := digitPrefix(a), digitPrefix(b)
		if da > 0 && db > 0 {
			na, _ := strconv.ParseUint(a[:da], 10, 64)
			nb, _ := strconv.ParseUint(b[:db], 10, 64)
			if c := compareUint(na, nb); c != 0 {
				return c
			}
			a, b = a[da:], b[db:]
			continue
		}
		if a[0] != b[0] {
			return compareUint(uint64(a[0]), uint64(b[0]))
		}
		a, b = a[1:], b[1:]
	}
	return compareUint(uint64(len(a)), uint64(len(b)))
}

func digitPrefix(s string) int {
	n := 0
	for n < len(s) && n < 18 && s[n] >= '0' && s[n] <= '9' {
		n++
	}
	return n
}

func compareUint(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// closest returns the candidate nearest to s by edit distance, if it is near
// enough to be a plausible typo.
func closest(s string, candidates []string) (string, bool) {
	limit := min(max(len(s)/3, 1), 3)
	best, bestD := "", limit+1
	for _, c := range candidates {
		if d := levenshtein(s, c); d < bestD {
			best, bestD = c, d
		}
	}
	return best, bestD <= limit
}

// levenshtein is the edit distance between a and b, in bytes: names here
// are ASCII, and a byte-wise distance on other text is still a fine hint.
func levenshtein(a, b string) int {
	if len(a) > 64 || len(b) > 64 {
		// Long strings are not typos of short names; don't spend time on them.
		return max(len(a), len(b))
	}
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// suggest returns "; did you mean "x"?" when s is near one of candidates,
// else otherwise.
func suggest(s string, candidates []string, otherwise string) string {
	if c, ok := closest(s, candidates); ok {
		return fmt.Sprintf("; did you mean %q?", c)
	}
	return otherwise
}
