package probes

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// metrics are the Collector's. Labels: link (LinkConfig.ID) and target
// (as configured); both come from the configuration, so they are bounded.
type metrics struct {
	sent, received, lost, late, sendErrors *prometheus.CounterVec // link, target
	malformed                              *prometheus.CounterVec // link
	rtt, loss, jitter                      *prometheus.GaugeVec   // link
}

func newMetrics(reg prometheus.Registerer) metrics {
	f := promauto.With(reg)
	lt := []string{"link", "target"}
	l := []string{"link"}
	return metrics{
		sent: f.NewCounterVec(prometheus.CounterOpts{
			Name: "sent_total", Help: "Probes sent.",
		}, lt),
		received: f.NewCounterVec(prometheus.CounterOpts{
			Name: "received_total", Help: "Probes answered within the timeout.",
		}, lt),
		lost: f.NewCounterVec(prometheus.CounterOpts{
			Name: "lost_total", Help: "Probes not answered within the timeout.",
		}, lt),
		late: f.NewCounterVec(prometheus.CounterOpts{
			Name: "late_total", Help: "Replies that came after the timeout (their probes are counted lost).",
		}, lt),
		sendErrors: f.NewCounterVec(prometheus.CounterOpts{
			Name: "send_errors_total", Help: "Probes that could not be sent (not counted as sent nor lost).",
		}, lt),
		malformed: f.NewCounterVec(prometheus.CounterOpts{
			Name: "malformed_total", Help: "Datagrams dropped on a link's socket: foreign source, bad format, unknown or duplicate sequence number.",
		}, l),
		rtt: f.NewGaugeVec(prometheus.GaugeOpts{
			Name: "rtt_seconds", Help: "Mean round-trip time over the last window; NaN when no reply came.",
		}, l),
		loss: f.NewGaugeVec(prometheus.GaugeOpts{
			Name: "loss_ratio", Help: "Lost/(received+lost) over the last window; NaN when no probe was resolved.",
		}, l),
		jitter: f.NewGaugeVec(prometheus.GaugeOpts{
			Name: "jitter_seconds", Help: "Interarrival jitter (RFC 3550) at the end of the last window, mean over targets.",
		}, l),
	}
}

// reflectorMetrics are the Reflector's.
type reflectorMetrics struct {
	reflected, malformed, sendErrors prometheus.Counter
}

func newReflectorMetrics(reg prometheus.Registerer) reflectorMetrics {
	f := promauto.With(reg)
	return reflectorMetrics{
		reflected: f.NewCounter(prometheus.CounterOpts{
			Name: "reflector_reflected_total", Help: "Test packets reflected.",
		}),
		malformed: f.NewCounter(prometheus.CounterOpts{
			Name: "reflector_malformed_total", Help: "Datagrams dropped because they are not STAMP test packets.",
		}),
		sendErrors: f.NewCounter(prometheus.CounterOpts{
			Name: "reflector_send_errors_total", Help: "Reflected packets that could not be sent.",
		}),
	}
}
