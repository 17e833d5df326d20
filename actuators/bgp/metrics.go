package bgp

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

type metrics struct {
	sessionUp *prometheus.GaugeVec
	announces *prometheus.CounterVec
	withdraws *prometheus.CounterVec
	errors    *prometheus.CounterVec
}

// newMetrics creates the speaker's metrics on reg; nil reg keeps them
// private. The neighbor label takes the configured link names only, so the
// label set is bounded.
func newMetrics(reg prometheus.Registerer) metrics {
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	f := promauto.With(reg)
	return metrics{
		sessionUp: f.NewGaugeVec(prometheus.GaugeOpts{
			Name: "session_up",
			Help: "1 while the BGP session to the neighbour is established, else 0.",
		}, []string{"neighbor"}),
		announces: f.NewCounterVec(prometheus.CounterOpts{
			Name: "announces_total",
			Help: "Prefixes originated towards the neighbour (repeats of an announced prefix are not counted).",
		}, []string{"neighbor"}),
		withdraws: f.NewCounterVec(prometheus.CounterOpts{
			Name: "withdraws_total",
			Help: "Prefixes withdrawn from the neighbour (withdrawals of an absent prefix are not counted).",
		}, []string{"neighbor"}),
		errors: f.NewCounterVec(prometheus.CounterOpts{
			Name: "errors_total",
			Help: "Announcements and withdrawals towards the neighbour that GoBGP refused.",
		}, []string{"neighbor"}),
	}
}
