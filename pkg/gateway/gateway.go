// Package gateway receives provider webhooks over HTTP, normalizes them with the provider parsers
// and publishes the events to the INBOUND stream. It answers 2xx only once JetStream has
// acknowledged every event of the request, so a 2xx means the webhook is durable; if JetStream
// cannot acknowledge in time it answers 503 and the provider retries. Bodies it cannot understand
// are kept raw on inbound.invalid.<channel> for replay, never dropped.
package gateway

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/oklog/ulid/v2"

	"github.com/chatwire/chatwire/pkg/event"
	"github.com/chatwire/chatwire/pkg/queue"
)

// Config is what the gateway needs from the process configuration.
type Config struct {
	InteraktSecret     string        // unset = signatures not checked
	NetcoreToken       string        // unset = no token required
	NetcoreTokenHeader string        // header carrying the Netcore token
	NetcoreTokenQuery  string        // query parameter carrying the Netcore token
	MaxBytes           int64         // larger bodies get 413
	PublishTimeout     time.Duration // wait for every PubAck of a request at most this long
}

// HeaderReason names why a body went to inbound.invalid.<channel>.
const HeaderReason = "Chatwire-Error"

// Publisher is the part of JetStream the gateway uses: asynchronous publishes, so concurrent
// requests share the connection instead of queueing behind one another's round trips.
type Publisher interface {
	PublishMsgAsync(m *nats.Msg, opts ...jetstream.PublishOpt) (jetstream.PubAckFuture, error)
}

// Gateway serves the webhook endpoints.
type Gateway struct {
	log *slog.Logger
	pub Publisher
	// connected reports whether the NATS connection is up; while it is not, requests fail fast with
	// 503 instead of filling the reconnect buffer and waiting out the publish timeout.
	connected func() bool
	cfg       Config
	now       func() time.Time
}

// New builds a gateway publishing through js. Build js with NewJetStream so abandoned
// publishes time out instead of piling up.
func New(log *slog.Logger, js jetstream.JetStream, cfg Config) *Gateway {
	if cfg.PublishTimeout <= 0 {
		cfg.PublishTimeout = 2 * time.Second
	}
	if cfg.MaxBytes <= 0 {
		cfg.MaxBytes = 1 << 20
	}
	nc := js.Conn()
	return &Gateway{log: log, pub: js, cfg: cfg, now: time.Now,
		connected: func() bool { return nc == nil || nc.IsConnected() }}
}

// NewJetStream returns a JetStream context for the gateway: each asynchronous publish gives up
// after timeout (its request has answered 503 by then), and at most maxPending are in flight.
func NewJetStream(nc *nats.Conn, timeout time.Duration, maxPending int) (jetstream.JetStream, error) {
	js, err := jetstream.New(nc,
		jetstream.WithPublishAsyncTimeout(timeout),
		jetstream.WithPublishAsyncMaxPending(maxPending),
	)
	if err != nil {
		return nil, fmt.Errorf("jetstream: %w", err)
	}
	return js, nil
}

// WarnUnauthenticated logs loudly for every channel that accepts webhooks without checking who
// sent them; call it once at start-up.
func (g *Gateway) WarnUnauthenticated() {
	if g.cfg.InteraktSecret == "" {
		g.log.Warn("INTERAKT_WEBHOOK_SECRET is not set: Interakt webhook signatures are NOT checked and anyone who finds /webhooks/interakt can inject messages; set it to the webhook secret configured in Interakt's developer settings")
	}
	if g.cfg.NetcoreToken == "" {
		g.log.Warn("NETCORE_WEBHOOK_TOKEN is not set: Netcore webhooks are NOT authenticated and anyone who finds /webhooks/netcore can inject messages; set a shared token (header " +
			g.cfg.NetcoreTokenHeader + " or query parameter " + g.cfg.NetcoreTokenQuery + ") and/or allow only Netcore's IP ranges in front of the gateway")
	}
}

// Register adds the webhook routes to e (which already serves /healthz, /readyz and /metrics).
func (g *Gateway) Register(e *echo.Echo) {
	e.POST("/webhooks/interakt", g.handler(event.ChannelInterakt))
	e.POST("/webhooks/netcore", g.handler(event.ChannelNetcore))
}

func (g *Gateway) handler(channel string) echo.HandlerFunc {
	return func(c echo.Context) error {
		start := time.Now()
		code, outcome, body := g.serve(c.Response(), c.Request(), channel)
		metricRequests.WithLabelValues(channel, outcome).Inc()
		metricRequestSeconds.WithLabelValues(channel).Observe(time.Since(start).Seconds())
		return c.JSON(code, body)
	}
}

type reply struct {
	Status string `json:"status"`
	Error  string `json:"error,omitempty"`
	Events int    `json:"events,omitempty"`
}

// serve handles one webhook and returns the HTTP status, the metric outcome and the reply.
func (g *Gateway) serve(w http.ResponseWriter, r *http.Request, channel string) (int, string, reply) {
	log := g.log.With("channel", channel)
	if channel == event.ChannelNetcore && g.cfg.NetcoreToken != "" &&
		!verifyNetcoreToken(g.cfg.NetcoreToken, g.cfg.NetcoreTokenHeader, g.cfg.NetcoreTokenQuery, r) {
		log.Warn("webhook rejected: missing or wrong token", "remote", r.RemoteAddr)
		return http.StatusUnauthorized, OutcomeUnauthorized, reply{Status: "rejected", Error: "missing or wrong token"}
	}
	if r.ContentLength > g.cfg.MaxBytes {
		log.Warn("webhook rejected: body too large", "bytes", r.ContentLength, "max", g.cfg.MaxBytes)
		return http.StatusRequestEntityTooLarge, OutcomeTooLarge, reply{Status: "rejected", Error: "body too large"}
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, g.cfg.MaxBytes))
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			log.Warn("webhook rejected: body too large", "max", g.cfg.MaxBytes)
			return http.StatusRequestEntityTooLarge, OutcomeTooLarge, reply{Status: "rejected", Error: "body too large"}
		}
		log.Warn("webhook body unreadable", "err", err)
		return http.StatusBadRequest, OutcomeBadRequest, reply{Status: "rejected", Error: "body unreadable"}
	}
	if channel == event.ChannelInterakt && g.cfg.InteraktSecret != "" &&
		!VerifyInteraktSignature(g.cfg.InteraktSecret, body, r.Header.Get(InteraktSignatureHeader)) {
		log.Warn("webhook rejected: bad signature", "remote", r.RemoteAddr, "has_signature", r.Header.Get(InteraktSignatureHeader) != "")
		return http.StatusUnauthorized, OutcomeUnauthorized, reply{Status: "rejected", Error: "bad signature"}
	}

	outcome := OutcomeAccepted
	var out []Outgoing
	batch, perr := Normalize(channel, body, g.now())
	if perr != nil {
		// Not understood at all: keep it raw for replay and answer 200, because Interakt disables a
		// webhook that keeps failing and retrying would not make the body any more readable.
		outcome = OutcomeInvalid
		out = []Outgoing{InvalidOutgoing(channel, body, perr.Error())}
	} else {
		out, err = batch.Outgoing(func() string { return ulid.Make().String() })
		if err != nil {
			log.Error("encoding events", "err", err)
			return http.StatusInternalServerError, OutcomePublishFailed, reply{Status: "error", Error: "encoding events"}
		}
		if len(batch.Invalid) > 0 {
			outcome = OutcomeInvalid
		}
		if len(batch.Ignored) > 0 {
			metricIgnored.WithLabelValues(channel).Add(float64(len(batch.Ignored)))
			for _, ig := range batch.Ignored {
				log.Debug("webhook item ignored", "external_id", ig.ExternalID, "reason", ig.Reason)
			}
		}
	}

	ctx, cancel := context.WithTimeout(r.Context(), g.cfg.PublishTimeout)
	defer cancel()
	if err := g.publish(ctx, channel, out); err != nil {
		log.Warn("webhook not acknowledged by JetStream; answering 503 so the provider retries", "events", len(out), "err", err)
		return http.StatusServiceUnavailable, OutcomePublishFailed, reply{Status: "unavailable", Error: "not stored, retry later"}
	}
	for _, o := range out {
		if o.Kind == KindInvalid {
			metricInvalid.WithLabelValues(channel).Inc()
			// ids only: the reason names types and ids, never message content.
			log.Warn("webhook content not understood; kept raw for replay", "subject", o.Subject, "nats_msg_id", o.MsgID,
				"bytes", len(o.Raw), "reason", o.Reason)
		}
	}
	return http.StatusOK, outcome, reply{Status: "ok", Events: len(out)}
}

// publish sends every message asynchronously and waits for all PubAcks; a duplicate ack (the
// event is already stored) counts as success.
func (g *Gateway) publish(ctx context.Context, channel string, out []Outgoing) error {
	if len(out) == 0 {
		return nil
	}
	if !g.connected() {
		return errors.New("nats connection is down")
	}
	start := time.Now()
	futures := make([]jetstream.PubAckFuture, 0, len(out))
	for _, o := range out {
		m := nats.NewMsg(o.Subject)
		m.Data = o.Data()
		m.Header.Set(jetstream.MsgIDHeader, o.MsgID)
		if o.Reason != "" {
			m.Header.Set(HeaderReason, headerSafe(o.Reason))
		}
		// The stream is named so a publish that lands on a subject outside INBOUND fails loudly.
		f, err := g.pub.PublishMsgAsync(m, jetstream.WithExpectStream(queue.StreamInbound))
		if err != nil {
			return fmt.Errorf("publishing %s %s: %w", o.Kind, o.MsgID, err)
		}
		futures = append(futures, f)
	}
	for i, f := range futures {
		select {
		case ack := <-f.Ok():
			metricEvents.WithLabelValues(channel, out[i].Kind, fmt.Sprint(ack.Duplicate)).Inc()
		case err := <-f.Err():
			return fmt.Errorf("publishing %s %s: %w", out[i].Kind, out[i].MsgID, err)
		case <-ctx.Done():
			return fmt.Errorf("waiting for the ack of %s %s: %w", out[i].Kind, out[i].MsgID, ctx.Err())
		}
	}
	metricPublishSeconds.WithLabelValues(channel).Observe(time.Since(start).Seconds())
	return nil
}

// headerSafe keeps a NATS header value on one line and short.
func headerSafe(s string) string {
	s = strings.Map(func(r rune) rune {
		if r == '\r' || r == '\n' {
			return ' '
		}
		return r
	}, s)
	if len(s) > 256 {
		s = s[:256]
	}
	return s
}
