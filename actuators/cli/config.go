package cli

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
)

// Node is one line of a router's running configuration and the lines
// indented under it (the commands of a "router bgp" or "route-map" block,
// of an address-family within it).
type Node struct {
	Line     string
	Children []*Node
}

// maxConfigLines bounds what ParseConfig reads: a border router's
// configuration is thousands of lines, not millions.
const maxConfigLines = 200_000

// promptLine is a line that starts with the CLI's prompt ("vm# ",
// "vm(config-router)# "). No configuration line does.
var promptLine = regexp.MustCompile(`^[\w.\-]+(\([\w.\-]+\))?#`)

// CleanCapture returns the output of cmd without the CLI's echo of it.
// vtysh repeats a command typed before its line editor is ready, prompt
// included ("vm# show running-config"), after scrapligo has already
// matched the first echo; that line is dropped, as is a bare echo. Any other line that
// starts with a prompt means the capture holds more than the command's
// output, and it is refused: an undo computed from it would be wrong.
func CleanCapture(text, cmd string) (string, error) {
	var b strings.Builder
	for line := range strings.Lines(text) {
		t := strings.TrimRight(line, "\r\n \t")
		if t == cmd {
			continue // the terminal's own echo of it, without the prompt
		}
		if loc := promptLine.FindStringIndex(t); loc != nil {
			if rest := strings.TrimSpace(t[loc[1]:]); rest == cmd || rest == "" {
				continue // the echo, or a bare prompt
			}
			return "", fmt.Errorf("the output holds a prompt line %q besides the command's output; the session is out of step", t)
		}
		b.WriteString(line)
	}
	return b.String(), nil
}

// ParseConfig reads an FRR (or IOS-like) running configuration into a
// tree by indentation. The banner vtysh prints before the configuration,
// comment lines ("!"), blank lines and the lines that only leave a block
// ("exit", "exit-address-family", "end") carry no configuration and are
// dropped, so two configurations that say the same compare equal.
func ParseConfig(text string) ([]*Node, error) {
	type level struct {
		indent int
		node   *Node
	}
	var roots []*Node
	var stack []level
	n := 0
	for raw := range strings.Lines(text) {
		if n++; n > maxConfigLines {
			return nil, fmt.Errorf("configuration longer than %d lines", maxConfigLines)
		}
		line := strings.ReplaceAll(strings.TrimRight(raw, "\r\n \t"), "\t", " ")
		body := strings.TrimLeft(line, " ")
		switch {
		case body == "", strings.HasPrefix(body, "!"), body == "end", body == "exit", body == "exit-address-family",
			body == "Building configuration...", body == "Current configuration:":
			continue
		}
		indent := len(line) - len(body)
		nd := &Node{Line: body}
		for len(stack) > 0 && stack[len(stack)-1].indent >= indent {
			stack = stack[:len(stack)-1]
		}
		if len(stack) == 0 {
			roots = append(roots, nd)
		} else {
			p := stack[len(stack)-1].node
			p.Children = append(p.Children, nd)
		}
		stack = append(stack, level{indent, nd})
	}
	return roots, nil
}

// exitFor is the command that leaves the block a header opens.
func exitFor(header string) string {
	if strings.HasPrefix(header, "address-family ") {
		return "exit-address-family"
	}
	return "exit"
}

// Undo returns the configuration commands that take a router from the
// configuration after back to the one before: lines after added are
// negated ("no LINE") in their block, lines it removed are entered again,
// blocks it added are removed whole and blocks it removed are re-entered
// whole. Each change is made from the top level, entering the blocks
// above it and leaving them after, so the commands run in any order in
// configuration mode. Verify the result: a command whose "no" form is
// not its inverse (a default restored by another command) leaves a
// difference that a fresh capture shows.
func Undo(before, after []*Node) []string {
	var out []string
	undo(&out, nil, before, after)
	return out
}

func undo(out *[]string, path []string, before, after []*Node) {
	// Siblings pair up by their line, the k-th of a line before with the
	// k-th after, so that a line repeated in a block is still matched.
	pair := func(from, to []*Node) []*Node {
		seen := map[string]int{}
		m := make([]*Node, len(from))
		for i, n := range from {
			k := seen[n.Line]
			seen[n.Line]++
			for _, c := range to {
				if c.Line == n.Line {
					if k == 0 {
						m[i] = c
						break
					}
					k--
				}
			}
		}
		return m
	}
	enter := func() {
		*out = append(*out, path...)
	}
	leave := func() {
		for _, h := range slices.Backward(path) {
			*out = append(*out, exitFor(h))
		}
	}
	// Removals first: a line whose value changed ("timers bgp 1 3" for
	// "timers bgp 3 9") goes before the old one comes back.
	back := pair(after, before)
	for i, a := range after {
		if back[i] != nil {
			continue
		}
		enter()
		*out = append(*out, negate(a.Line))
		leave()
	}
	match := pair(before, after)
	for i, b := range before {
		a := match[i]
		if a == nil {
			enter()
			emit(out, b)
			leave()
			continue
		}
		undo(out, append(slices.Clip(path), b.Line), b.Children, a.Children)
	}
}

// emit enters n and everything under it.
func emit(out *[]string, n *Node) {
	*out = append(*out, n.Line)
	for _, c := range n.Children {
		emit(out, c)
	}
	if len(n.Children) > 0 {
		*out = append(*out, exitFor(n.Line))
	}
}

// negate returns the command that removes line: "no LINE", or LINE
// without its "no " when the line is itself a negation ("no bgp
// ebgp-requires-policy" is undone by "bgp ebgp-requires-policy").
func negate(line string) string {
	if rest, ok := strings.CutPrefix(line, "no "); ok {
		return rest
	}
	return "no " + line
}

// Lines flattens a tree back to configuration text, one space of
// indentation a level, for diffs and for people.
func Lines(ns []*Node) []string {
	var out []string
	var walk func([]*Node, int)
	walk = func(ns []*Node, depth int) {
		for _, n := range ns {
			out = append(out, strings.Repeat(" ", depth)+n.Line)
			walk(n.Children, depth+1)
		}
	}
	walk(ns, 0)
	return out
}

// maxDiffCells bounds Diff's table: above it, Diff compares line sets.
const maxDiffCells = 16 << 20

// Diff returns a line diff of two configurations: "-" for a line only in
// a, "+" for one only in b, " " for a line of context, " ..." for lines
// left out; "" when they say the same.
func Diff(a, b []*Node) string {
	x, y := Lines(a), Lines(b)
	if slices.Equal(x, y) {
		return ""
	}
	var sb strings.Builder
	if len(x)*len(y) > maxDiffCells {
		for _, l := range x {
			if !slices.Contains(y, l) {
				sb.WriteString("-" + l + "\n")
			}
		}
		for _, l := range y {
			if !slices.Contains(x, l) {
				sb.WriteString("+" + l + "\n")
			}
		}
		return sb.String()
	}
	// Longest common subsequence, then a walk that prints it with the
	// changes between.
	lcs := make([][]int32, len(x)+1)
	for i := range lcs {
		lcs[i] = make([]int32, len(y)+1)
	}
	for i := len(x) - 1; i >= 0; i-- {
		for j := len(y) - 1; j >= 0; j-- {
			if x[i] == y[j] {
				lcs[i][j] = lcs[i+1][j+1] + 1
			} else {
				lcs[i][j] = max(lcs[i+1][j], lcs[i][j+1])
			}
		}
	}
	type op struct {
		kind byte // ' ', '-', '+'
		line string
	}
	var ops []op
	i, j := 0, 0
	for i < len(x) || j < len(y) {
		switch {
		case i < len(x) && j < len(y) && x[i] == y[j]:
			ops = append(ops, op{' ', x[i]})
			i, j = i+1, j+1
		case j < len(y) && (i == len(x) || lcs[i][j+1] >= lcs[i+1][j]):
			ops = append(ops, op{'+', y[j]})
			j++
		default:
			ops = append(ops, op{'-', x[i]})
			i++
		}
	}
	// Print the changes with diffContext unchanged lines around each.
	keep := make([]bool, len(ops))
	for k, o := range ops {
		if o.kind != ' ' {
			for c := max(0, k-diffContext); c <= min(len(ops)-1, k+diffContext); c++ {
				keep[c] = true
			}
		}
	}
	for k, o := range ops {
		switch {
		case keep[k]:
			sb.WriteString(string(o.kind) + o.line + "\n")
		case k > 0 && keep[k-1]:
			sb.WriteString(" ...\n")
		}
	}
	return sb.String()
}

// diffContext is how many unchanged lines Diff shows around a change.
const diffContext = 2

// Has reports whether the configuration holds line, at any depth, its
// indentation ignored.
func Has(ns []*Node, line string) bool {
	line = strings.TrimSpace(line)
	for _, n := range ns {
		if n.Line == line || Has(n.Children, line) {
			return true
		}
	}
	return false
}
