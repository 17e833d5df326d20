package telemetry

import "time"

// Sample is what the router showed of one link at one moment.
type Sample struct {
	Link   string // the link ID
	Source string // "gnmi"
	Time   time.Time

	// Known is false when the router has not delivered this link's
	// counters within 3 intervals (unreachable, stream broken, interface
	// missing), or not twice yet since the subscription began: the rates
	// are then 0 and mean nothing, never that the link is idle.
	Known bool

	InBps, OutBps float64 // bit/s over the router's last sample interval
	// Utilisation is max(InBps, OutBps) / LinkMap.Capacity.
	Utilisation float64
	OperUp      bool   // the interface's oper-status is UP
	BGPState    string // e.g. "ESTABLISHED", "IDLE"; "" when unknown or no neighbour is mapped
}
