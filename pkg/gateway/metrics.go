package gateway

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// Request outcomes, the label of chatwire_gateway_webhooks_total.
const (
	OutcomeAccepted      = "accepted"       // every event acknowledged by JetStream, 200
	OutcomeInvalid       = "invalid"        // body not understood, kept raw on inbound.invalid, 200
	OutcomeUnauthorized  = "unauthorized"   // signature or token check failed, 401
	OutcomeTooLarge      = "too_large"      // body over WEBHOOK_MAX_BYTES, 413
	OutcomePublishFailed = "publish_failed" // JetStream did not acknowledge in time, 503
	OutcomeBadRequest    = "bad_request"    // body could not be read, 400
)

var (
	metricRequests = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "chatwire_gateway_webhooks_total",
		Help: "Webhook requests by channel and outcome.",
	}, []string{"channel", "outcome"})
	metricEvents = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "chatwire_gateway_events_total",
		Help: "Events published to INBOUND by channel and kind (message, status, invalid); duplicate=true when JetStream dropped a copy already stored.",
	}, []string{"channel", "kind", "duplicate"})
	metricIgnored = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "chatwire_gateway_ignored_total",
		Help: "Understood webhook items deliberately not published (echoes of outbound messages, clicks).",
	}, []string{"channel"})
	metricInvalid = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "chatwire_gateway_invalid_total",
		Help: "Bodies or batch items not understood and kept raw on inbound.invalid.<channel>.",
	}, []string{"channel"})
	metricPublishSeconds = promauto.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "chatwire_gateway_publish_seconds",
		Help:    "Time from the first publish of a webhook's events to the last PubAck.",
		Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
	}, []string{"channel"})
	metricRequestSeconds = promauto.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "chatwire_gateway_request_seconds",
		Help:    "Webhook request handling time by channel.",
		Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
	}, []string{"channel"})
)
