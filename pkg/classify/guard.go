package classify

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// Outcome of one guarded classification, as counted in
// chatwire_ingestor_classifier_outcomes_total{classifier,outcome}.
type Outcome string

// Outcomes. Every fallback outcome comes with Fallback(text) as the result.
const (
	OutcomeOK                Outcome = "ok"
	OutcomeFallbackTimeout   Outcome = "fallback_timeout"   // the last attempt timed out
	OutcomeFallbackError     Outcome = "fallback_error"     // HTTP/transport error, rate limited too long, or rejected
	OutcomeFallbackMalformed Outcome = "fallback_malformed" // the model answered, but not with the JSON asked for
)

// Outcomes lists every Outcome, e.g. to pre-register metric label values.
var Outcomes = []Outcome{OutcomeOK, OutcomeFallbackTimeout, OutcomeFallbackError, OutcomeFallbackMalformed}

// Defaults for Config fields left zero.
const (
	DefaultTimeout = 10 * time.Second
	DefaultRetries = 2
	// MaxRetryAfter is the longest rate-limit pause the guard waits out; a longer Retry-After
	// means the quota is gone for now, and holding a worker that long helps nobody.
	MaxRetryAfter = 30 * time.Second
)

var (
	outcomesTotal = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "chatwire_ingestor_classifier_outcomes_total",
		Help: "Classifications by classifier and outcome (ok, fallback_timeout, fallback_error, fallback_malformed).",
	}, []string{"classifier", "outcome"})
	classifyDuration = promauto.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "chatwire_ingestor_classifier_duration_seconds",
		Help:    "Time to classify one message, retries and backoff included.",
		Buckets: []float64{.001, .01, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60},
	}, []string{"classifier"})
)

// FallbackError is returned, together with Fallback(text), when the classifier gave no usable
// answer. errors.Is(err, context.Canceled) tells a shutdown apart from a failing classifier: a
// caller should then retry the job later rather than store the fallback.
type FallbackError struct {
	Classifier string
	Outcome    Outcome
	Attempts   int
	Err        error // the last attempt's error
}

func (e *FallbackError) Error() string {
	return fmt.Sprintf("classifier %s: %s after %d attempt(s): %v", e.Classifier, e.Outcome, e.Attempts, e.Err)
}

func (e *FallbackError) Unwrap() error { return e.Err }

// OutcomeOf returns the outcome a Guarded.Classify error stands for: ok for nil.
func OutcomeOf(err error) Outcome {
	if err == nil {
		return OutcomeOK
	}
	var fe *FallbackError
	if errors.As(err, &fe) {
		return fe.Outcome
	}
	return OutcomeFallbackError
}

// Guarded wraps a classifier with a per-attempt timeout, bounded retries with backoff, and the
// fallback, so that its Classify always returns a usable Result.
type Guarded struct {
	name    string
	inner   Classifier
	timeout time.Duration
	retries int
	log     *slog.Logger

	backoffBase   time.Duration
	backoffMax    time.Duration
	maxRetryAfter time.Duration
}

// NewGuarded wraps inner (named name in metrics and logs). timeout bounds each attempt; retries
// is the number of attempts after the first (negative: none).
func NewGuarded(name string, inner Classifier, timeout time.Duration, retries int, log *slog.Logger) *Guarded {
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	if retries < 0 {
		retries = 0
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	for _, o := range Outcomes {
		outcomesTotal.WithLabelValues(name, string(o)) // so every series exists from the start
	}
	return &Guarded{
		name: name, inner: inner, timeout: timeout, retries: retries,
		log:         log.With("classifier", name),
		backoffBase: 250 * time.Millisecond, backoffMax: 4 * time.Second, maxRetryAfter: MaxRetryAfter,
	}
}

// MaxDuration bounds how long one Classify call can take, every attempt, backoff and
// rate-limit pause included: a caller's ack deadline for a classify job should exceed it.
func (g *Guarded) MaxDuration() time.Duration {
	return time.Duration(g.retries+1)*g.timeout + time.Duration(g.retries)*max(g.backoffMax, g.maxRetryAfter)
}

// Name is the classifier's kind: rules, gemini or openai.
func (g *Guarded) Name() string { return g.name }

// Classify always returns a usable Result. A nil error means the classifier answered (outcome
// ok); otherwise the Result is Fallback(text) and the error is a *FallbackError (see OutcomeOf).
func (g *Guarded) Classify(ctx context.Context, text string) (Result, error) {
	start := time.Now()
	defer func() { classifyDuration.WithLabelValues(g.name).Observe(time.Since(start).Seconds()) }()

	malformedRetried := false
	for attempt := 1; ; attempt++ {
		actx, cancel := context.WithTimeout(ctx, g.timeout)
		r, err := g.inner.Classify(actx, text)
		cancel()
		if err == nil {
			outcomesTotal.WithLabelValues(g.name, string(OutcomeOK)).Inc()
			return r, nil
		}
		outcome, retryable, wait := g.judge(err)
		if ctx.Err() != nil {
			return g.fallback(text, outcome, attempt, fmt.Errorf("%w (%w)", err, ctx.Err()))
		}
		if outcome == OutcomeFallbackMalformed {
			retryable = !malformedRetried
			malformedRetried = true
		}
		if !retryable || attempt > g.retries {
			return g.fallback(text, outcome, attempt, err)
		}
		if wait > g.maxRetryAfter {
			return g.fallback(text, outcome, attempt, fmt.Errorf("%w: rate limited for longer than %s", err, g.maxRetryAfter))
		}
		if wait == 0 {
			wait = g.backoff(attempt)
		}
		g.log.DebugContext(ctx, "classifier attempt failed, retrying", "attempt", attempt, "wait", wait, "err", err)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return g.fallback(text, outcome, attempt, fmt.Errorf("%w (%w)", err, ctx.Err()))
		case <-t.C:
		}
	}
}

func (g *Guarded) fallback(text string, o Outcome, attempts int, err error) (Result, error) {
	outcomesTotal.WithLabelValues(g.name, string(o)).Inc()
	// err carries statuses and error codes only, never the text or a key (see StatusError).
	g.log.Warn("classifier fell back", "outcome", string(o), "attempts", attempts, "err", err)
	return Fallback(text), &FallbackError{Classifier: g.name, Outcome: o, Attempts: attempts, Err: err}
}

// judge maps an attempt's error to its outcome, whether another attempt may help, and how long
// the server asked to wait (0: use the backoff).
func (g *Guarded) judge(err error) (Outcome, bool, time.Duration) {
	var se *StatusError
	var ne net.Error
	switch {
	case errors.Is(err, ErrMalformed):
		return OutcomeFallbackMalformed, true, 0
	case errors.As(err, &se):
		if se.Status == http.StatusTooManyRequests {
			return OutcomeFallbackError, true, se.RetryAfter
		}
		return OutcomeFallbackError, se.Retryable(), 0
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return OutcomeFallbackTimeout, true, 0
	case errors.Is(err, context.Canceled):
		return OutcomeFallbackError, false, 0
	default: // connection refused, reset, DNS: worth another try
		return OutcomeFallbackError, true, 0
	}
}

// backoff doubles from backoffBase up to backoffMax, with jitter so that workers that failed
// together do not retry together.
func (g *Guarded) backoff(attempt int) time.Duration {
	d := g.backoffBase << (attempt - 1)
	if d > g.backoffMax || d <= 0 {
		d = g.backoffMax
	}
	return d/2 + rand.N(d/2+1)
}
