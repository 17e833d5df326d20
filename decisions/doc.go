// Package decisions is sdnoc's brain: pure logic that turns samples about
// ISP links into intents (announce or withdraw prefix P on link L).
//
// It does no I/O, reads no clock and imports no network library, collector
// or actuator: the caller passes the time into every call, so the same
// inputs always give the same decisions. That keeps it fast, replayable from
// recorded samples and testable in virtual time.
//
// The engine keeps, per link, a state machine (unknown, healthy, degraded)
// with hysteresis; a planner turns link states into the desired publication
// of every (prefix, link) under the invariants of DESIGN.md (never strand a
// prefix, unknown never withdraws, cap withdrawals); and a reconciler diffs
// desired against applied and emits intents with their evidence.
package decisions
