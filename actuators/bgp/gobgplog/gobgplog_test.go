package gobgplog

import (
	"bytes"
	"errors"
	"log/slog"
	"strings"
	"testing"

	gobgplog "github.com/osrg/gobgp/v3/pkg/log"
)

func newTest(level slog.Level) (*Logger, *bytes.Buffer) {
	var buf bytes.Buffer
	h := slog.NewTextHandler(&buf, &slog.HandlerOptions{
		Level: level,
		ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey {
				return slog.Attr{}
			}
			return a
		},
	})
	return New(slog.New(h)), &buf
}

func TestLevelsAndKeys(t *testing.T) {
	tests := []struct {
		name string
		log  func(*Logger, string, gobgplog.Fields)
		want string
	}{
		{"error", (*Logger).Error, `level=ERROR msg=m err=boom key=127.0.0.2 topic=Peer`},
		{"fatal does not exit", (*Logger).Fatal, `level=ERROR msg=m err=boom key=127.0.0.2 topic=Peer`},
		{"warn", (*Logger).Warn, `level=WARN msg=m err=boom key=127.0.0.2 topic=Peer`},
		{"info", (*Logger).Info, `level=INFO msg=m err=boom key=127.0.0.2 topic=Peer`},
		{"debug is trace", (*Logger).Debug, `level=DEBUG-4 msg=m err=boom key=127.0.0.2 topic=Peer`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, buf := newTest(LevelTrace)
			tt.log(l, "m", gobgplog.Fields{"Topic": "Peer", "Key": "127.0.0.2", "Error": errors.New("boom")})
			if got := strings.TrimSpace(buf.String()); got != tt.want {
				t.Errorf("got  %s\nwant %s", got, tt.want)
			}
		})
	}
}

func TestFiltered(t *testing.T) {
	l, buf := newTest(slog.LevelInfo)
	l.Debug("chatter", gobgplog.Fields{"Topic": "Peer"})
	if buf.Len() != 0 {
		t.Errorf("debug written at info level: %q", buf.String())
	}
	New(nil).Error("discarded", nil) // must not panic
}

func TestGetLevel(t *testing.T) {
	for level, want := range map[slog.Level]gobgplog.LogLevel{
		LevelTrace:      gobgplog.DebugLevel,
		slog.LevelDebug: gobgplog.InfoLevel,
		slog.LevelInfo:  gobgplog.InfoLevel,
		slog.LevelWarn:  gobgplog.WarnLevel,
		slog.LevelError: gobgplog.ErrorLevel,
	} {
		l, _ := newTest(level)
		l.SetLevel(gobgplog.TraceLevel) // ignored: the handler decides
		if got := l.GetLevel(); got != want {
			t.Errorf("handler at %v: GetLevel() = %v, want %v", level, got, want)
		}
	}
}

func TestPanic(t *testing.T) {
	l, buf := newTest(slog.LevelInfo)
	defer func() {
		if r := recover(); r == nil {
			t.Error("Panic did not panic")
		}
		if !strings.Contains(buf.String(), "code logic bug") {
			t.Errorf("Panic did not log first: %q", buf.String())
		}
	}()
	l.Panic("code logic bug", nil)
}
