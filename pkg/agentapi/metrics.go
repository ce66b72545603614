package agentapi

import (
	"strconv"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// Metric collectors, package-level because Prometheus registration is process-wide.
var (
	mRequests = promauto.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "chatwire_notifier_api_request_seconds",
		Help:    "Agent REST API requests by route, method and HTTP status code.",
		Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
	}, []string{"route", "method", "code"})
	mAuthRefused = promauto.NewCounter(prometheus.CounterOpts{
		Name: "chatwire_notifier_api_auth_refused_total",
		Help: "Agent REST API requests refused with 401.",
	})
	mReplies = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "chatwire_notifier_api_replies_total",
		Help: "Reply commands by result: queued, duplicate (same command_id again), conflict, unavailable.",
	}, []string{"result"})
	mEventFailures = promauto.NewCounter(prometheus.CounterOpts{
		Name: "chatwire_notifier_api_event_publish_failures_total",
		Help: "conversation_updated events the API could not publish after a change was saved.",
	})
)

func metricsMiddleware(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		start := time.Now()
		err := next(c)
		code := c.Response().Status
		if he, ok := err.(*echo.HTTPError); ok {
			code = he.Code
		} else if err != nil {
			code = 500
		}
		mRequests.WithLabelValues(c.Path(), c.Request().Method, strconv.Itoa(code)).Observe(time.Since(start).Seconds())
		return err
	}
}
