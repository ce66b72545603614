package notify

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// Metric collectors. Package-level because Prometheus registration is process-wide; several
// servers in one process (tests) share them.
var (
	mConnections = promauto.NewGauge(prometheus.GaugeOpts{
		Name: "chatwire_notifier_connections",
		Help: "Open agent WebSocket connections.",
	})
	mRefused = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "chatwire_notifier_refused_total",
		Help: "WebSocket requests refused before upgrade, by reason (origin, auth, bad_request).",
	}, []string{"reason"})
	mEventsReceived = promauto.NewCounter(prometheus.CounterOpts{
		Name: "chatwire_notifier_events_received_total",
		Help: "Events read from the EVENTS stream by the live fan-out.",
	})
	mEventsInvalid = promauto.NewCounter(prometheus.CounterOpts{
		Name: "chatwire_notifier_events_invalid_total",
		Help: "Events on the EVENTS stream that could not be decoded and were skipped.",
	})
	mEventsDelivered = promauto.NewCounter(prometheus.CounterOpts{
		Name: "chatwire_notifier_events_delivered_total",
		Help: "Event frames written to agent sockets (live and replayed).",
	})
	mSlowDisconnects = promauto.NewCounter(prometheus.CounterOpts{
		Name: "chatwire_notifier_slow_disconnects_total",
		Help: "Connections closed because the client could not keep up (it will resume).",
	})
	mResumes = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "chatwire_notifier_resumes_total",
		Help: "Resume requests by result: replayed, resync (resume point gone), error.",
	}, []string{"result"})
	mReplayed = promauto.NewCounter(prometheus.CounterOpts{
		Name: "chatwire_notifier_replayed_events_total",
		Help: "Event frames sent while replaying for a resume.",
	})
	mFanoutLatency = promauto.NewHistogram(prometheus.HistogramOpts{
		Name:    "chatwire_notifier_fanout_latency_seconds",
		Help:    "Time from an event's storage in the EVENTS stream to its write on live sockets: once per block of up to 64 sockets the fan-out wrote directly (its last write), once per frame a connection's writer sent later.",
		Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
	})
)
