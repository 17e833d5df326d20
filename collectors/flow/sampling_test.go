package flow

import (
	"testing"

	"github.com/netsampler/goflow2/v2/decoders/netflow"
)

func TestSamplingOf(t *testing.T) {
	f := func(typ uint16, v ...byte) netflow.DataField { return netflow.DataField{Type: typ, Value: v} }
	for _, tt := range []struct {
		name   string
		fields []netflow.DataField
		want   uint32
	}{
		{"none", []netflow.DataField{f(1, 0, 1)}, 0},
		{"v9 SAMPLING_INTERVAL", []netflow.DataField{f(34, 0, 0, 0, 100)}, 100},
		{"samplerRandomInterval, 2 bytes", []netflow.DataField{f(50, 0x04, 0x00)}, 1024},
		{"samplingPacketInterval alone", []netflow.DataField{f(305, 0, 0, 8, 0)}, 2048},
		{"1 selected, 99 skipped (RFC 5477)", []netflow.DataField{f(305, 0, 0, 0, 1), f(306, 0, 0, 0, 99)}, 100},
		{"enterprise field ignored", []netflow.DataField{{Type: 34, PenProvided: true, Pen: 9, Value: []byte{0, 10}}}, 0},
		{"zero interval", []netflow.DataField{f(34, 0, 0, 0, 0)}, 0},
		{"too large", []netflow.DataField{f(34, 1, 0, 0, 0, 0)}, 0},
	} {
		if got := samplingOf(tt.fields); got != tt.want {
			t.Errorf("%s: samplingOf = %d, want %d", tt.name, got, tt.want)
		}
	}
}
