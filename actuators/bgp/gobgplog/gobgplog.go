// Package gobgplog routes GoBGP's logs into log/slog.
//
// GoBGP v3 logs through its own pkg/log.Logger interface (logrus by default,
// at info level, to stderr); server.LoggerOption accepts any implementation,
// and this is the one sdnoc passes.
package gobgplog

import (
	"context"
	"log/slog"
	"sort"
	"strings"

	gobgplog "github.com/osrg/gobgp/v3/pkg/log"
)

// LevelTrace is the slog level of GoBGP's debug messages: one line per
// UPDATE received or sent, with its attributes, so below slog.LevelDebug.
const LevelTrace = slog.LevelDebug - 4

// Logger implements GoBGP's log.Logger on top of a *slog.Logger.
// GoBGP's levels map to slog's: error and warn keep their level, info stays
// info (session up and down, configuration changes), and debug becomes
// LevelTrace. Field keys are lowercased, and "Error"/"Err" become "err",
// as in the rest of sdnoc.
type Logger struct {
	log *slog.Logger
}

var _ gobgplog.Logger = (*Logger)(nil)

// New returns a Logger writing to log; nil discards everything.
func New(log *slog.Logger) *Logger {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Logger{log: log}
}

// Panic logs msg at error level and panics, as GoBGP expects: it calls
// Panic only on "code logic bug" paths (pkg/server/fsm.go) that must not
// continue.
func (l *Logger) Panic(msg string, fields gobgplog.Fields) {
	l.emit(slog.LevelError, msg, fields)
	panic("gobgp: " + msg)
}

// Fatal logs msg at error level and returns. Unlike logrus it does not exit
// the process: a library must not end its host. GoBGP calls Fatal for an
// unknown internal message type (pkg/server/server.go, handleFSMMessage) and
// then carries on, and for gRPC and file configuration, which sdnoc does not use.
func (l *Logger) Fatal(msg string, fields gobgplog.Fields) {
	l.emit(slog.LevelError, msg, fields)
}

// Error logs at slog.LevelError.
func (l *Logger) Error(msg string, fields gobgplog.Fields) { l.emit(slog.LevelError, msg, fields) }

// Warn logs at slog.LevelWarn.
func (l *Logger) Warn(msg string, fields gobgplog.Fields) { l.emit(slog.LevelWarn, msg, fields) }

// Info logs at slog.LevelInfo.
func (l *Logger) Info(msg string, fields gobgplog.Fields) { l.emit(slog.LevelInfo, msg, fields) }

// Debug logs at LevelTrace.
func (l *Logger) Debug(msg string, fields gobgplog.Fields) { l.emit(LevelTrace, msg, fields) }

// SetLevel does nothing: the slog handler decides what is written.
func (l *Logger) SetLevel(gobgplog.LogLevel) {}

// GetLevel reports the most verbose GoBGP level the handler would write.
// GoBGP checks it before building costly debug fields (pkg/server/peer.go,
// fsm.go), so a handler at info keeps those paths cheap.
func (l *Logger) GetLevel() gobgplog.LogLevel {
	ctx := context.Background()
	switch {
	case l.log.Enabled(ctx, LevelTrace):
		return gobgplog.DebugLevel
	case l.log.Enabled(ctx, slog.LevelInfo):
		return gobgplog.InfoLevel
	case l.log.Enabled(ctx, slog.LevelWarn):
		return gobgplog.WarnLevel
	default:
		return gobgplog.ErrorLevel
	}
}

func (l *Logger) emit(level slog.Level, msg string, fields gobgplog.Fields) {
	ctx := context.Background()
	if !l.log.Enabled(ctx, level) {
		return
	}
	keys := make([]string, 0, len(fields))
	for k := range fields {
		keys = append(keys, k)
	}
	sort.Strings(keys) // map order is random; keep lines comparable
	attrs := make([]slog.Attr, 0, len(keys))
	for _, k := range keys {
		attrs = append(attrs, slog.Any(key(k), fields[k]))
	}
	l.log.LogAttrs(ctx, level, msg, attrs...)
}

// key turns GoBGP's field names ("Topic", "Key", "Error") into sdnoc's
// lowercase keys.
func key(k string) string {
	switch k {
	case "Error", "Err", "error", "err":
		return "err"
	case gobgplog.FieldFacility:
		return "facility"
	}
	return strings.ToLower(k)
}
