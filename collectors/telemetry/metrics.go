package telemetry

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// metrics are the Collector's. Labels: router (RouterConfig.Name) and
// link (the link ID), both from the configuration.
type metrics struct {
	updates, streamErrors *prometheus.CounterVec // router
	routerUp              *prometheus.GaugeVec   // router
	utilisation           *prometheus.GaugeVec   // link
}

func newMetrics(reg prometheus.Registerer) metrics {
	f := promauto.With(reg)
	r := []string{"router"}
	return metrics{
		updates: f.NewCounterVec(prometheus.CounterOpts{
			Name: "updates_total", Help: "gNMI notifications received.",
		}, r),
		streamErrors: f.NewCounterVec(prometheus.CounterOpts{
			Name: "stream_errors_total", Help: "Subscriptions that failed or ended: dial, subscribe, stream broken or silent for 3 intervals.",
		}, r),
		routerUp: f.NewGaugeVec(prometheus.GaugeOpts{
			Name: "router_up", Help: "1 while the router's subscription delivers updates, else 0.",
		}, r),
		utilisation: f.NewGaugeVec(prometheus.GaugeOpts{
			Name: "link_utilisation_ratio", Help: "max(in, out) bit/s over capacity at the last sample; NaN when unknown.",
		}, []string{"link"}),
	}
}
