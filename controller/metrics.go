package controller

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/sdnoc/sdnoc/decisions"
)

type metrics struct {
	linkState, linkWithdrawn, published *prometheus.GaugeVec
	lossRatio, rttSeconds               *prometheus.GaugeVec
	intents, refusals                   *prometheus.CounterVec
	intentFailures, journalErrors       prometheus.Counter
	samplesDropped                      prometheus.Counter
	alerts                              prometheus.Gauge
	stepSeconds                         prometheus.Histogram
	// Manual actions: playbooks active, writes by outcome, router changes.
	overrides      prometheus.Gauge
	playbookWrites *prometheus.CounterVec
	routerChanges  *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) metrics {
	f := promauto.With(reg)
	return metrics{
		linkState: f.NewGaugeVec(prometheus.GaugeOpts{Name: "link_state",
			Help: "Link state: 0 unknown, 1 healthy, 2 degraded."}, []string{"link"}),
		linkWithdrawn: f.NewGaugeVec(prometheus.GaugeOpts{Name: "link_withdrawn",
			Help: "1 when the planner has taken the link out."}, []string{"link"}),
		published: f.NewGaugeVec(prometheus.GaugeOpts{Name: "link_published_prefixes",
			Help: "Prefixes the link publishes, as applied."}, []string{"link"}),
		lossRatio: f.NewGaugeVec(prometheus.GaugeOpts{Name: "link_loss_ratio",
			Help: "Probe loss over the link's loss window, as the engine judges it."}, []string{"link"}),
		rttSeconds: f.NewGaugeVec(prometheus.GaugeOpts{Name: "link_rtt_seconds",
			Help: "Mean probe RTT over the link's loss window."}, []string{"link"}),
		intents: f.NewCounterVec(prometheus.CounterOpts{Name: "intent_prefixes_total",
			Help: "Prefixes announced or withdrawn, by action and rule."}, []string{"action", "rule"}),
		refusals: f.NewCounterVec(prometheus.CounterOpts{Name: "refusals_total",
			Help: "Actions refused (never-strand, cap)."}, []string{"rule"}),
		intentFailures: f.NewCounter(prometheus.CounterOpts{Name: "intent_failures_total", Help: "Intents the actuator failed to apply."}),
		journalErrors:  f.NewCounter(prometheus.CounterOpts{Name: "journal_errors_total", Help: "Journal writes that failed."}),
		samplesDropped: f.NewCounter(prometheus.CounterOpts{Name: "samples_dropped_total", Help: "Probe samples dropped because the loop was behind."}),
		alerts:         f.NewGauge(prometheus.GaugeOpts{Name: "alerts", Help: "Alerts currently raised."}),
		stepSeconds: f.NewHistogram(prometheus.HistogramOpts{Name: "step_seconds", Help: "Time of one decision step.",
			Buckets: prometheus.ExponentialBuckets(1e-5, 4, 10)}),
		overrides: f.NewGauge(prometheus.GaugeOpts{Name: "playbooks_active", Help: "Playbooks (overrides) in force or in their prepend phase."}),
		playbookWrites: f.NewCounterVec(prometheus.CounterOpts{Name: "playbook_writes_total",
			Help: "Playbook writes by outcome: applied, denied, released, expired."}, []string{"outcome"}),
		routerChanges: f.NewCounterVec(prometheus.CounterOpts{Name: "router_changes_total",
			Help: "Router configuration changes over the CLI by outcome: applied, rolled_back, failed."}, []string{"outcome"}),
	}
}

func (m metrics) update(st []decisions.LinkStatus) {
	for _, s := range st {
		m.linkState.WithLabelValues(s.Link).Set(float64(s.State))
		w := 0.0
		if s.Withdrawn {
			w = 1
		}
		m.linkWithdrawn.WithLabelValues(s.Link).Set(w)
		m.published.WithLabelValues(s.Link).Set(float64(s.Published))
		m.lossRatio.WithLabelValues(s.Link).Set(s.Window.LossPct / 100)
		m.rttSeconds.WithLabelValues(s.Link).Set(s.Window.RTTAvg.Seconds())
	}
}
