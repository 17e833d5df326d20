package main

import (
	"errors"
	"fmt"
	"io"
	"log/slog"

	"github.com/spf13/cobra"
)

// errFailed is returned by commands that ran but whose outcome is a
// failure they have already reported (a demo whose scenario failed).
var errFailed = errors.New("failed")

func exitCode(err error) int {
	if errors.Is(err, errFailed) {
		return 1
	}
	return 2
}

type logFlags struct {
	level  string
	format string
}

func (f *logFlags) add(c *cobra.Command) {
	c.PersistentFlags().StringVar(&f.level, "log-level", "info", "log level: debug, info, warn, error")
	c.PersistentFlags().StringVar(&f.format, "log-format", "text", "log format: text or json")
}

func (f *logFlags) logger(w io.Writer) (*slog.Logger, error) {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(f.level)); err != nil {
		return nil, fmt.Errorf("--log-level %q: use debug, info, warn or error", f.level)
	}
	opts := &slog.HandlerOptions{Level: lvl}
	switch f.format {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("--log-format %q: use text or json", f.format)
}

func newRoot() *cobra.Command {
	lf := &logFlags{}
	root := &cobra.Command{
		Use:           "sdnoc",
		Short:         "Software-defined NOC controller: probes ISP links, withdraws and restores the edge's prefixes over BGP",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	lf.add(root)
	root.AddCommand(newDemo(lf), newDaemon(lf), newStatus(), newPlaybook(lf), newRouter(), newReflector(lf), newFlow(lf), newGNMIAgent(lf), newLab(lf), newEdge(lf))
	return root
}

// stderrLogger logs to the command's standard error.
func stderrLogger(cmd *cobra.Command, lf *logFlags) (*slog.Logger, error) {
	return lf.logger(cmd.ErrOrStderr())
}
