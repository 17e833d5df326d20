package gnmiagent

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// Interface is one network interface as the agent serves it.
type Interface struct {
	Name string
	// OperStatus is the OpenConfig oper-status: UP, DOWN, UNKNOWN,
	// DORMANT, NOT_PRESENT, LOWER_LAYER_DOWN or TESTING.
	OperStatus string
	Counters   Counters
}

// Counters are an interface's counters since it came up, as the kernel
// keeps them.
type Counters struct {
	InOctets, OutOctets     uint64
	InPkts, OutPkts         uint64
	InErrors, OutErrors     uint64
	InDiscards, OutDiscards uint64
}

// Neighbor is one BGP neighbour.
type Neighbor struct {
	Address netip.Addr
	// SessionState is the OpenConfig session-state: IDLE, CONNECT,
	// ACTIVE, OPENSENT, OPENCONFIRM or ESTABLISHED.
	SessionState string
}

// InterfaceSource lists the interfaces with their counters.
type InterfaceSource interface {
	Interfaces(ctx context.Context) ([]Interface, error)
}

// NeighborSource lists the BGP neighbours with their session states.
type NeighborSource interface {
	Neighbors(ctx context.Context) ([]Neighbor, error)
}

// Sysfs reads interfaces from a directory laid out as /sys/class/net:
// <if>/operstate and <if>/statistics/{rx,tx}_{bytes,packets,errors,dropped}.
type Sysfs struct {
	Root string
}

// Interfaces reads every interface under Root, sorted by name. An
// interface whose files cannot be read (it went away) is left out.
func (s Sysfs) Interfaces(ctx context.Context) ([]Interface, error) {
	ents, err := os.ReadDir(s.Root)
	if err != nil {
		return nil, fmt.Errorf("read interfaces: %w", err)
	}
	out := make([]Interface, 0, len(ents))
	for _, e := range ents {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		itf, err := s.read(e.Name())
		if err != nil {
			continue
		}
		out = append(out, itf)
	}
	slices.SortFunc(out, func(a, b Interface) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

func (s Sysfs) read(name string) (Interface, error) {
	dir := filepath.Join(s.Root, name)
	op, err := os.ReadFile(filepath.Join(dir, "operstate"))
	if err != nil {
		return Interface{}, err
	}
	itf := Interface{Name: name, OperStatus: OperStatus(string(op))}
	c := &itf.Counters
	for _, f := range []struct {
		file string
		dst  *uint64
	}{
		{"rx_bytes", &c.InOctets}, {"tx_bytes", &c.OutOctets},
		{"rx_packets", &c.InPkts}, {"tx_packets", &c.OutPkts},
		{"rx_errors", &c.InErrors}, {"tx_errors", &c.OutErrors},
		{"rx_dropped", &c.InDiscards}, {"tx_dropped", &c.OutDiscards},
	} {
		b, err := os.ReadFile(filepath.Join(dir, "statistics", f.file))
		if err != nil {
			return Interface{}, err
		}
		v, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
		if err != nil {
			return Interface{}, fmt.Errorf("%s/statistics/%s: %w", name, f.file, err)
		}
		*f.dst = v
	}
	return itf, nil
}

// OperStatus maps a Linux operstate (RFC 2863 names, lowercase) to the
// OpenConfig oper-status enumeration.
func OperStatus(linux string) string {
	switch s := strings.TrimSpace(linux); s {
	case "up", "down", "unknown", "dormant", "testing":
		return strings.ToUpper(s)
	case "notpresent":
		return "NOT_PRESENT"
	case "lowerlayerdown":
		return "LOWER_LAYER_DOWN"
	}
	return "UNKNOWN"
}

// Command runs an argv that prints FRR's `show bgp neighbors json` and
// parses its output.
type Command struct {
	Argv []string
}

// Neighbors runs the command; ctx bounds it.
func (c Command) Neighbors(ctx context.Context) ([]Neighbor, error) {
	if len(c.Argv) == 0 {
		return nil, nil
	}
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, c.Argv[0], c.Argv[1:]...)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("run %s: %w: %s", c.Argv[0], err, bytes.TrimSpace(stderr.Bytes()))
	}
	return ParseFRRNeighbors(out)
}

// ErrNotFRRJSON is returned for output that is not a JSON object.
var ErrNotFRRJSON = errors.New("not FRR neighbors JSON")

// ParseFRRNeighbors reads the output of FRR's `show bgp neighbors json`:
// an object keyed by neighbour address, each with a "bgpState" such as
// "Established". Keys that are not IP addresses (unnumbered neighbours
// keyed by interface, FRR's own fields) are skipped. The result is
// sorted by address.
func ParseFRRNeighbors(b []byte) ([]Neighbor, error) {
	var top map[string]json.RawMessage
	if err := json.Unmarshal(b, &top); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrNotFRRJSON, err)
	}
	var out []Neighbor
	for k, raw := range top {
		addr, err := netip.ParseAddr(k)
		if err != nil {
			continue
		}
		var n struct {
			BGPState string `json:"bgpState"`
		}
		if err := json.Unmarshal(raw, &n); err != nil || n.BGPState == "" {
			continue
		}
		out = append(out, Neighbor{Address: addr.Unmap(), SessionState: strings.ToUpper(n.BGPState)})
	}
	slices.SortFunc(out, func(a, b Neighbor) int { return a.Address.Compare(b.Address) })
	return out, nil
}
