package ingest

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// Metrics of the ingestor and its classify worker. Classifier outcomes per classifier are counted
// by pkg/classify (chatwire_ingestor_classifier_outcomes_total); the worker counts what it did
// with each job.
var (
	mStored = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "chatwire_ingestor_messages_stored_total",
		Help: "Inbound messages stored (new rows), by channel.",
	}, []string{"channel"})
	mDuplicates = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "chatwire_ingestor_duplicates_total",
		Help: "Inbound messages already stored under another delivery (provider retry, replay): nothing changed, nothing emitted.",
	}, []string{"channel"})
	mReemitted = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "chatwire_ingestor_reemitted_total",
		Help: "Redeliveries of an INBOUND message whose row an earlier delivery committed: its events were published again (JetStream drops the copies).",
	}, []string{"channel"})
	mStatuses = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "chatwire_ingestor_statuses_total",
		Help: "Delivery status updates by result: applied, stale (would move backwards), unknown (message not found yet).",
	}, []string{"result"})
	mBatchSize = promauto.NewHistogram(prometheus.HistogramOpts{
		Name:    "chatwire_ingestor_batch_size",
		Help:    "Messages per fetched INBOUND batch.",
		Buckets: []float64{1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000},
	})
	mCommit = promauto.NewHistogram(prometheus.HistogramOpts{
		Name:    "chatwire_ingestor_commit_seconds",
		Help:    "Time of one batch transaction, from BEGIN to COMMIT.",
		Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
	})
	mBatchFailures = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "chatwire_ingestor_batch_failures_total",
		Help: "Batches that could not be stored as a whole: transient (retried later), permanent (split to find the poison), publish (events not confirmed).",
	}, []string{"kind"})
	mLag = promauto.NewGaugeVec(prometheus.GaugeOpts{
		Name: "chatwire_ingestor_consumer_lag",
		Help: "Messages in the stream not yet delivered to the consumer.",
	}, []string{"consumer"})
	mAckPending = promauto.NewGaugeVec(prometheus.GaugeOpts{
		Name: "chatwire_ingestor_consumer_ack_pending",
		Help: "Messages delivered to the consumer and not yet acknowledged.",
	}, []string{"consumer"})
	mDeadLetters = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "chatwire_ingestor_dead_letters_total",
		Help: "Messages published to a dead-letter subject, by subject and reason (decode, store, unknown_status, max_deliver).",
	}, []string{"subject", "reason"})
	mClassifyJobs = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "chatwire_ingestor_classify_jobs_total",
		Help: "Classify jobs by result: classified, fallback, already_done, message_gone, retry.",
	}, []string{"result"})
)
