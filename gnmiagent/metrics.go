package gnmiagent

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// metrics are the Agent's. Labels are the RPC name and the source name,
// both fixed sets.
type metrics struct {
	requests      *prometheus.CounterVec // rpc
	sourceErrors  *prometheus.CounterVec // source
	subscriptions prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer) metrics {
	f := promauto.With(reg)
	return metrics{
		requests: f.NewCounterVec(prometheus.CounterOpts{
			Name: "requests_total", Help: "gNMI RPCs received.",
		}, []string{"rpc"}),
		sourceErrors: f.NewCounterVec(prometheus.CounterOpts{
			Name: "source_errors_total", Help: "Failed reads of a data source (sysfs, bgp).",
		}, []string{"source"}),
		subscriptions: f.NewGauge(prometheus.GaugeOpts{
			Name: "subscriptions", Help: "Subscribe streams open.",
		}),
	}
}
