package main

import (
	"bytes"
	"strings"
	"testing"
)

// The lab's commands refuse what they cannot do before touching the
// machine: an unknown scenario is named with the list; status without a
// lab says so.
func TestLabCommands(t *testing.T) {
	for _, tt := range []struct {
		args    []string
		wantErr string
		wantOut string
	}{
		{[]string{"lab", "scenario", "earthquake", "--dir", t.TempDir()}, "no scenario \"earthquake\"", ""},
		{[]string{"lab", "status", "--dir", t.TempDir()}, "", "no lab up"},
	} {
		root := newRoot()
		var out bytes.Buffer
		root.SetOut(&out)
		root.SetErr(&out)
		root.SetArgs(tt.args)
		err := root.Execute()
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !strings.Contains(err.Error(), "isp-loss") {
				t.Errorf("%v: err = %v; want %q with the scenario list", tt.args, err, tt.wantErr)
			}
			continue
		}
		if err != nil || !strings.Contains(out.String(), tt.wantOut) {
			t.Errorf("%v: %v, output %q; want %q", tt.args, err, out.String(), tt.wantOut)
		}
	}
}
