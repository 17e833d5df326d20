package edge

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// metrics are the proxy's own; per-site and per-origin children are
// resolved once per configuration change, not per request.
type metrics struct {
	requests     *prometheus.CounterVec
	duration     *prometheus.HistogramVec
	retries      *prometheus.CounterVec
	early        *prometheus.CounterVec
	originErrors *prometheus.CounterVec

	dials      *prometheus.CounterVec
	dialErrors *prometheus.CounterVec
	stale      *prometheus.CounterVec
	expired    *prometheus.CounterVec
	warmed     *prometheus.CounterVec
	idle       *prometheus.GaugeVec
	healthy    *prometheus.GaugeVec

	conns       prometheus.Gauge
	inflight    prometheus.GaugeFunc
	draining    prometheus.Gauge
	malformed   prometheus.Counter
	unknownHost prometheus.Counter
	panics      prometheus.Counter
	handovers   prometheus.Counter
	handbacks   prometheus.Counter
	bindErrors  prometheus.Counter
}

func newMetrics(reg prometheus.Registerer, inflight func() float64) *metrics {
	f := promauto.With(reg)
	m := &metrics{
		requests: f.NewCounterVec(prometheus.CounterOpts{
			Name: "sdnoc_edge_requests_total", Help: "Requests served, by site and status class.",
		}, []string{"site", "class"}),
		duration: f.NewHistogramVec(prometheus.HistogramOpts{
			Name: "sdnoc_edge_request_duration_seconds", Help: "Time from a request's head to the end of its response.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"site"}),
		retries: f.NewCounterVec(prometheus.CounterOpts{
			Name: "sdnoc_edge_retries_total", Help: "Idempotent requests sent again on a fresh connection after a reused one failed before any response byte.",
		}, []string{"site"}),
		early: f.NewCounterVec(prometheus.CounterOpts{
			Name: "sdnoc_edge_early_responses_total", Help: "Origin responses that came before the request body was sent, by what we did: relayed or aborted.",
		}, []string{"site", "action"}),
		originErrors: f.NewCounterVec(prometheus.CounterOpts{
			Name: "sdnoc_edge_origin_errors_total", Help: "Requests answered 502 because the origin failed.",
		}, []string{"site"}),
		dials: f.NewCounterVec(prometheus.CounterOpts{
			Name: "sdnoc_edge_origin_dials_total", Help: "Connections opened to an origin.",
		}, []string{"site", "origin"}),
		dialErrors: f.NewCounterVec(prometheus.CounterOpts{
			Name: "sdnoc_edge_origin_dial_errors_total", Help: "Failed attempts to open a connection to an origin.",
		}, []string{"site", "origin"}),
		stale: f.NewCounterVec(prometheus.CounterOpts{
			Name: "sdnoc_edge_origin_stale_connections_total",
			Help: "Pooled connections the origin had closed: found by the liveness check before reuse, or failed on reuse before any response byte.",
		}, []string{"site", "origin", "reason"}),
		expired: f.NewCounterVec(prometheus.CounterOpts{
			Name: "sdnoc_edge_origin_idle_expired_total", Help: "Idle connections we closed at our idle timeout, before the origin's.",
		}, []string{"site", "origin"}),
		warmed: f.NewCounterVec(prometheus.CounterOpts{
			Name: "sdnoc_edge_origin_warm_dials_total", Help: "Connections opened ahead of demand.",
		}, []string{"site", "origin"}),
		idle: f.NewGaugeVec(prometheus.GaugeOpts{
			Name: "sdnoc_edge_origin_idle_connections", Help: "Idle pooled connections per origin.",
		}, []string{"site", "origin"}),
		healthy: f.NewGaugeVec(prometheus.GaugeOpts{
			Name: "sdnoc_edge_origin_healthy", Help: "1 when the origin passes its health check.",
		}, []string{"site", "origin"}),
		conns: f.NewGauge(prometheus.GaugeOpts{
			Name: "sdnoc_edge_client_connections", Help: "Open client connections (HTTP/1.1 engine).",
		}),
		inflight: f.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "sdnoc_edge_requests_in_flight", Help: "Requests being served.",
		}, inflight),
		draining: f.NewGauge(prometheus.GaugeOpts{
			Name: "sdnoc_edge_draining", Help: "1 while the proxy drains.",
		}),
		malformed: f.NewCounter(prometheus.CounterOpts{
			Name: "sdnoc_edge_malformed_requests_total", Help: "Requests refused because their head could not be parsed or framed safely.",
		}),
		unknownHost: f.NewCounter(prometheus.CounterOpts{
			Name: "sdnoc_edge_unknown_host_total", Help: "Requests for a host no site serves.",
		}),
		panics: f.NewCounter(prometheus.CounterOpts{
			Name: "sdnoc_edge_panics_total", Help: "Panics recovered while serving a connection.",
		}),
		bindErrors: f.NewCounter(prometheus.CounterOpts{
			Name: "sdnoc_edge_listen_errors_total", Help: "Dedicated site addresses that could not be bound on a configuration change.",
		}),
	}
	m.handovers = f.NewCounter(prometheus.CounterOpts{
		Name: "sdnoc_edge_loop_handovers_total",
		Help: "Client connections the event loop handed to the goroutine engine at a request it does not relay (a body over 64 KiB or chunked, an upgrade, Expect, an unknown host, a malformed head).",
	})
	m.handbacks = f.NewCounter(prometheus.CounterOpts{
		Name: "sdnoc_edge_loop_handbacks_total",
		Help: "Client connections the goroutine engine returned to an event loop once their handed-over exchange was done.",
	})
	return m
}

// siteMetrics are one site's children.
type siteMetrics struct {
	class        [6]prometheus.Counter // by status / 100
	duration     prometheus.Observer
	retries      prometheus.Counter
	earlyRelayed prometheus.Counter
	earlyAborted prometheus.Counter
	originErrors prometheus.Counter
}

func (m *metrics) site(name string) *siteMetrics {
	sm := &siteMetrics{
		duration:     m.duration.WithLabelValues(name),
		retries:      m.retries.WithLabelValues(name),
		earlyRelayed: m.early.WithLabelValues(name, "relayed"),
		earlyAborted: m.early.WithLabelValues(name, "aborted"),
		originErrors: m.originErrors.WithLabelValues(name),
	}
	for i, c := range []string{"other", "1xx", "2xx", "3xx", "4xx", "5xx"} {
		sm.class[i] = m.requests.WithLabelValues(name, c)
	}
	return sm
}

// originMetrics are one origin's children.
type originMetrics struct {
	dials, dialErrors, expired, warmed prometheus.Counter
	idle, healthy                      prometheus.Gauge
	stale                              *prometheus.CounterVec // by reason
}

func (m *metrics) origin(site, addr string) *originMetrics {
	return &originMetrics{
		dials:      m.dials.WithLabelValues(site, addr),
		dialErrors: m.dialErrors.WithLabelValues(site, addr),
		expired:    m.expired.WithLabelValues(site, addr),
		warmed:     m.warmed.WithLabelValues(site, addr),
		idle:       m.idle.WithLabelValues(site, addr),
		healthy:    m.healthy.WithLabelValues(site, addr),
		stale:      m.stale.MustCurryWith(prometheus.Labels{"site": site, "origin": addr}),
	}
}
