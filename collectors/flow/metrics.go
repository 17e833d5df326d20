package flow

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// metrics are the Collector's. Labels are bounded: format is one of the
// four Format constants or "unknown", reason one of a fixed few.
type metrics struct {
	datagrams, records *prometheus.CounterVec // format
	decodeErrors       *prometheus.CounterVec // reason
	noTemplate         prometheus.Counter
	unattributed       *prometheus.CounterVec // reason
}

func newMetrics(reg prometheus.Registerer) metrics {
	f := promauto.With(reg)
	return metrics{
		datagrams: f.NewCounterVec(prometheus.CounterOpts{
			Name: "datagrams_total", Help: "Datagrams received, by format (unknown: not a flow datagram).",
		}, []string{"format"}),
		records: f.NewCounterVec(prometheus.CounterOpts{
			Name: "records_total", Help: "Flow records decoded, by format.",
		}, []string{"format"}),
		decodeErrors: f.NewCounterVec(prometheus.CounterOpts{
			Name: "decode_errors_total", Help: "Datagrams that failed to decode, by reason: truncated, unknown_version, malformed, too_many_exporters.",
		}, []string{"reason"}),
		noTemplate: f.NewCounter(prometheus.CounterOpts{
			Name: "no_template_total", Help: "NetFlow v9/IPFIX datagrams with a data set whose template is not known yet.",
		}),
		unattributed: f.NewCounterVec(prometheus.CounterOpts{
			Name: "unattributed_records_total", Help: "Records not counted toward a link: unknown_exporter, unknown_interface, not_edge, stale.",
		}, []string{"reason"}),
	}
}
