package reply

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// Results a reply command's delivery settles with, as metric labels and in Outcome.
const (
	ResultSent         = "sent"         // the provider accepted the message
	ResultFailed       = "failed"       // final failure recorded on the row
	ResultUnconfigured = "unconfigured" // the channel has no credentials; row failed
	ResultRetry        = "retry"        // transient failure; redelivered later
	ResultReconcile    = "reconcile"    // an earlier attempt's outcome is unknown; waiting for its receipt
	ResultDuplicate    = "duplicate"    // the command was handled already; nothing sent
	ResultInvalid      = "invalid"      // undecodable command or unknown conversation; dead-lettered
	ResultError        = "error"        // our own failure (database, JetStream); redelivered later
	ResultAborted      = "aborted"      // shutting down before the request went out
)

var (
	metricSends = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "chatwire_sender_sends_total",
		Help: "Reply command deliveries handled, by provider (channel) and outcome.",
	}, []string{"provider", "outcome"})
	metricProviderSeconds = promauto.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "chatwire_sender_provider_request_seconds",
		Help:    "Latency of provider send API calls, by provider and result (ok, error).",
		Buckets: []float64{.005, .01, .02, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
	}, []string{"provider", "result"})
	metricRetries = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "chatwire_sender_retries_total",
		Help: "Sends scheduled for retry, by provider and reason (provider code such as http_503, timeout, network).",
	}, []string{"provider", "reason"})
	metricRateWaits = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "chatwire_sender_rate_limit_waits_total",
		Help: "Sends that waited for the per-provider rate limiter.",
	}, []string{"provider"})
	metricRateWaitSeconds = promauto.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "chatwire_sender_rate_limit_wait_seconds",
		Help:    "Time sends waited for the per-provider rate limiter.",
		Buckets: []float64{.001, .005, .01, .05, .1, .5, 1, 5, 15, 60},
	}, []string{"provider"})
)
