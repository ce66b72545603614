// Package reply is the sender's worker. It consumes agents' ReplyCommands from the REPLIES stream,
// writes the outbound chat_messages row before any provider call, sends through the provider of the
// conversation's channel (Interakt or Netcore, behind the small Sender interface), records the
// delivery status, and publishes new_message and message_status events to EVENTS.
//
// A command_id is sent at most once as long as the provider's answer (or a delivery receipt) is
// recorded; docs/replies.md describes the one remaining at-least-once window.
package reply

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strings"
	"sync"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"golang.org/x/time/rate"

	"github.com/chatwire/chatwire/pkg/event"
	"github.com/chatwire/chatwire/pkg/queue"
)

// Sender sends one message through a provider. ref is our message id (the row id), which the
// provider echoes in delivery receipts (Interakt callbackData, Netcore x-apiheader); phone is the
// conversation's number as stored. It returns the provider's message id.
//
// Errors may implement Failure to say how to handle them; any other error is treated as a
// transient failure whose request may have reached the provider.
type Sender interface {
	Send(ctx context.Context, ref, phone, text string, media *event.Media) (externalID string, err error)
}

// Failure is what a provider's error tells the worker.
type Failure interface {
	error
	Permanent() bool           // retrying cannot succeed: fail the message
	MaybeAccepted() bool       // the request may have been accepted despite the error
	ProviderCode() string      // stored as error_code
	ProviderText() string      // stored as error_text
	RetryAfter() time.Duration // the provider's Retry-After, 0 if none
}

// Config is the worker's configuration.
type Config struct {
	// Senders holds the configured channels. A conversation on a channel missing here gets its
	// replies failed with "channel <name> is not configured".
	Senders map[string]Sender
	// RatePerMin caps sends per channel per minute; 0 or missing means unlimited.
	RatePerMin map[string]int
	// Concurrency is how many commands are handled at once.
	Concurrency int
	// SendTimeout bounds one provider call.
	SendTimeout time.Duration
	// RetryDeadline bounds retries, measured from the row's creation; no attempt starts later.
	RetryDeadline time.Duration
	// RetryBase and RetryMax shape the exponential backoff between attempts.
	RetryBase, RetryMax time.Duration
	// ReconcileWait is how long a redelivered command waits for a delivery receipt when an earlier
	// attempt's outcome is unknown (crash or timeout after the request went out) before sending
	// again.
	ReconcileWait time.Duration
	// DBTimeout bounds each database statement.
	DBTimeout time.Duration
	// Observe, if set, is called once per handled delivery (benchmarks and tests).
	Observe func(Outcome)
}

// Outcome describes one handled delivery of a command.
type Outcome struct {
	CommandID string
	Channel   string
	Result    string        // one of the Result* constants
	Total     time.Duration // from the start of handling to the ack
	Provider  time.Duration // time inside the provider call, 0 if none
}

func (c *Config) defaults() {
	if c.Concurrency <= 0 {
		c.Concurrency = 64
	}
	if c.SendTimeout <= 0 {
		c.SendTimeout = 10 * time.Second
	}
	if c.RetryDeadline <= 0 {
		c.RetryDeadline = 10 * time.Minute
	}
	if c.RetryBase <= 0 {
		c.RetryBase = time.Second
	}
	if c.RetryMax <= 0 {
		c.RetryMax = time.Minute
	}
	if c.ReconcileWait <= 0 {
		c.ReconcileWait = time.Minute
	}
	if c.DBTimeout <= 0 {
		c.DBTimeout = 10 * time.Second
	}
}

// Worker consumes REPLIES and sends replies.
type Worker struct {
	js       jetstream.JetStream
	log      *slog.Logger
	cfg      Config
	store    *store
	limiters map[string]*rate.Limiter

	maxDeliver int
	ackWait    time.Duration

	// crashAfterSend is a test hook: returning true abandons the delivery right after the
	// provider answered, before anything is recorded — what a crash at that point leaves behind.
	crashAfterSend func(messageID string) bool
}

// New returns a worker. Channels with a rate get a token-bucket limiter whose burst is a
// hundredth of a second's worth (at least 1), so no minute sees more than the rate plus that.
func New(db *sqlx.DB, js jetstream.JetStream, log *slog.Logger, cfg Config) *Worker {
	cfg.defaults()
	w := &Worker{js: js, log: log, cfg: cfg, store: newStore(db, cfg.DBTimeout),
		limiters: map[string]*rate.Limiter{}}
	for ch, perMin := range cfg.RatePerMin {
		if perMin > 0 {
			burst := max(1, perMin/6000)
			w.limiters[ch] = rate.NewLimiter(rate.Limit(float64(perMin)/60), burst)
		}
	}
	return w
}

// Run consumes reply commands until ctx ends, then waits for the commands in hand to settle.
func (w *Worker) Run(ctx context.Context) error {
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	cons, err := w.js.Consumer(cctx, queue.StreamReplies, queue.ConsumerSender)
	cancel()
	if err != nil {
		return fmt.Errorf("reply consumer %s: %w", queue.ConsumerSender, err)
	}
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	err = w.store.prepare(pctx)
	cancel()
	if err != nil {
		return err
	}
	defer w.store.close()
	// The batchers outlive the handlers: they stop only after every command in hand settled.
	bctx, stopBatchers := context.WithCancel(context.WithoutCancel(ctx))
	waitBatchers := w.store.start(bctx)
	defer func() { stopBatchers(); waitBatchers() }()
	info := cons.CachedInfo()
	w.maxDeliver, w.ackWait = info.Config.MaxDeliver, info.Config.AckWait

	// Work keeps going through shutdown (a provider call is not abandoned halfway, which would
	// leave its outcome unknown); only waits for the rate limiter stop with ctx.
	work := context.WithoutCancel(ctx)
	sem := make(chan struct{}, w.cfg.Concurrency)
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		closing bool
	)
	cc, err := cons.Consume(func(msg jetstream.Msg) {
		mu.Lock()
		if closing {
			mu.Unlock()
			_ = msg.Nak() // let another replica (or the next start) have it now
			return
		}
		wg.Add(1)
		mu.Unlock()
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			w.handle(work, ctx, msg)
		}()
	},
		jetstream.PullMaxMessages(w.cfg.Concurrency),
		jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
			if !errors.Is(err, jetstream.ErrNoHeartbeat) {
				w.log.Warn("reply consumer", "err", err)
			}
		}))
	if err != nil {
		return fmt.Errorf("consuming %s: %w", queue.StreamReplies, err)
	}
	w.log.Info("sender consuming replies", "concurrency", w.cfg.Concurrency, "channels", w.channels())
	<-ctx.Done()
	cc.Stop()
	mu.Lock()
	closing = true
	mu.Unlock()
	wg.Wait()
	return nil
}

func (w *Worker) channels() string {
	var out []string
	for ch := range w.cfg.Senders {
		out = append(out, ch)
	}
	return strings.Join(out, ",")
}

// verdict is what to do with a delivery once handled.
type verdict struct {
	act      int // actAck, actTerm, actNak, actNone
	delay    time.Duration
	result   string
	channel  string
	provider time.Duration
}

const (
	actAck = iota
	actTerm
	actNak
	actNone
)

func (w *Worker) handle(ctx, stop context.Context, msg jetstream.Msg) {
	start := time.Now()
	// Extend the ack deadline while a command waits for the rate limiter or a slow provider.
	hb := startHeartbeat(msg, w.ackWait/2)
	v := w.process(ctx, stop, msg)
	hb.stop()
	var err error
	switch v.act {
	case actAck:
		err = msg.Ack()
	case actTerm:
		err = msg.Term()
	case actNak:
		err = msg.NakWithDelay(v.delay)
	}
	if err != nil {
		// The command will come back after AckWait; the row state makes that harmless.
		w.log.Warn("settling reply command", "act", v.act, "err", err)
	}
	ch := v.channel
	if ch == "" {
		ch = "none"
	}
	metricSends.WithLabelValues(ch, v.result).Inc()
	if w.cfg.Observe != nil {
		id := ""
		if h := msg.Headers(); h != nil {
			id = h.Get(jetstream.MsgIDHeader)
		}
		w.cfg.Observe(Outcome{CommandID: id, Channel: v.channel, Result: v.result, Total: time.Since(start), Provider: v.provider})
	}
}

func (w *Worker) process(ctx, stop context.Context, msg jetstream.Msg) verdict {
	md, err := msg.Metadata()
	delivered := uint64(1)
	if err == nil {
		delivered = md.NumDelivered
	}
	cmd, err := event.Decode[event.ReplyCommand](msg.Data())
	if err != nil {
		return w.reject(ctx, msg, delivered, fmt.Sprintf("invalid reply command: %v", err))
	}
	if !validUUID(cmd.ConversationID) {
		return w.reject(ctx, msg, delivered, fmt.Sprintf("reply command %s: conversation_id %q is not a uuid", cmd.CommandID, cmd.ConversationID))
	}
	log := w.log.With("command_id", cmd.CommandID, "conversation_id", cmd.ConversationID)
	msgType, content, mediaURL := rowContent(&cmd)
	r, created, err := w.store.createOrLoad(ctx, &cmd, msgType, content, mediaURL)
	if err != nil {
		return w.ourFailure(ctx, msg, log, delivered, "", err)
	}
	if r == nil {
		return w.reject(ctx, msg, delivered, fmt.Sprintf("reply command %s: conversation %s not found", cmd.CommandID, cmd.ConversationID))
	}
	ch := r.Channel.String
	log = log.With("message_id", r.ID, "channel", ch)
	// new_message goes out on every delivery: its id is deterministic, so JetStream drops the
	// copies, and a crash between the insert and this publish cannot lose it. It is published
	// while the provider call runs; announced() joins it before any status event (so agents see
	// the message before its status) and before the command is settled.
	announce := make(chan error, 1)
	go func() { announce <- w.publish(ctx, event.EventNewMessage, "msg:"+r.ID, r) }()
	var (
		announceOnce sync.Once
		announceErr  error
	)
	announced := func() error {
		announceOnce.Do(func() { announceErr = <-announce })
		return announceErr
	}
	v := w.send(ctx, stop, msg, log, &cmd, r, created, delivered, announced)
	if err := announced(); err != nil && v.act != actNak && v.act != actNone {
		// Settled but not announced: redeliver; the row's state makes the redelivery harmless.
		v2 := w.ourFailure(ctx, msg, log, delivered, ch, err)
		v2.provider = v.provider
		return v2
	}
	return v
}

// send takes a command whose row exists to a final or retry verdict. announced waits for the
// new_message event; it must be called before publishing a status event.
func (w *Worker) send(ctx, stop context.Context, msg jetstream.Msg, log *slog.Logger, cmd *event.ReplyCommand,
	r *row, created bool, delivered uint64, announced func() error) verdict {
	ch := r.Channel.String
	if r.Status.String != event.StatusPending {
		// Handled before (a duplicate command, or a redelivery after a crash): re-emit the status
		// event the earlier delivery may not have published, and send nothing.
		if r.Status.String == event.StatusSent || r.Status.String == event.StatusFailed {
			if err := announced(); err != nil {
				return w.ourFailure(ctx, msg, log, delivered, ch, err)
			}
			if err := w.publishStatus(ctx, r); err != nil {
				return w.ourFailure(ctx, msg, log, delivered, ch, err)
			}
		}
		return verdict{act: actAck, result: ResultDuplicate, channel: ch}
	}

	st := r.state()
	if !created {
		now := time.Now()
		inDoubt := st.Attempts > 0 && (st.Outcome == "" || st.Outcome == outcomeUnknown)
		deadline := r.CreatedAt.Add(w.cfg.RetryDeadline)
		if inDoubt {
			if wait := st.StartedAt.Add(w.cfg.ReconcileWait).Sub(now); wait > 0 {
				// The earlier attempt may be with the provider (or still running): wait for its
				// receipt to move the row instead of sending a second copy.
				if now.Add(wait).After(deadline) || delivered >= uint64(w.maxDeliverOr(1<<30)) {
					return w.fail(ctx, log, announced, r, "outcome_unknown",
						"gave up: the last attempt's outcome is unknown and no delivery receipt arrived"+lastErr(st), ResultFailed)
				}
				log.Info("earlier send attempt in doubt; waiting for its receipt", "attempts", st.Attempts, "wait", wait)
				return verdict{act: actNak, delay: wait, result: ResultReconcile, channel: ch}
			}
			log.Warn("no receipt for an attempt in doubt; sending again", "attempts", st.Attempts)
		}
		if now.After(deadline) {
			code := st.LastCode
			if code == "" {
				code = "retry_deadline"
			}
			return w.fail(ctx, log, announced, r, code,
				fmt.Sprintf("gave up after %d attempts: retry deadline passed%s", st.Attempts, lastErr(st)), ResultFailed)
		}
		ok, err := w.store.claim(ctx, r.ID, st.Attempts)
		if err != nil {
			return w.ourFailure(ctx, msg, log, delivered, ch, err)
		}
		if !ok {
			// Another delivery claimed the attempt between our read and our claim.
			return verdict{act: actNak, delay: w.cfg.RetryBase, result: ResultReconcile, channel: ch}
		}
		st.Attempts++
	}

	sender := w.cfg.Senders[ch]
	if sender == nil {
		return w.fail(ctx, log, announced, r, "channel_not_configured", fmt.Sprintf("channel %s is not configured", ch), ResultUnconfigured)
	}
	if err := w.waitTurn(stop, ch); err != nil {
		// Shutting down before the request went out: safe to send on redelivery.
		if err := w.store.outcome(ctx, r.ID, outcomeAborted, "", ""); err != nil {
			log.Warn("recording aborted attempt", "err", err)
		}
		return verdict{act: actNak, result: ResultAborted, channel: ch}
	}

	sctx, cancel := context.WithTimeout(ctx, w.cfg.SendTimeout)
	t0 := time.Now()
	extID, sendErr := sender.Send(sctx, r.ID, r.Phone, cmd.Text, cmd.Media)
	took := time.Since(t0)
	cancel()
	res := "ok"
	if sendErr != nil {
		res = "error"
	}
	metricProviderSeconds.WithLabelValues(ch, res).Observe(took.Seconds())
	if w.crashAfterSend != nil && w.crashAfterSend(r.ID) {
		return verdict{act: actNone, result: ResultAborted, channel: ch, provider: took}
	}

	if sendErr == nil {
		sent, err := w.store.sent(ctx, r.ID, extID)
		if err != nil {
			// Accepted but not recorded: the redelivery finds the attempt in doubt and waits for
			// the receipt, which carries our id.
			return w.ourFailure(ctx, msg, log, delivered, ch, err)
		}
		if err := announced(); err != nil {
			return w.ourFailure(ctx, msg, log, delivered, ch, err)
		}
		if err := w.publishStatus(ctx, sent); err != nil {
			return w.ourFailure(ctx, msg, log, delivered, ch, err)
		}
		log.Debug("reply sent", "external_id", extID, "took", took)
		return verdict{act: actAck, result: ResultSent, channel: ch, provider: took}
	}

	var f Failure
	if errors.As(sendErr, &f) && f.Permanent() {
		log.Warn("reply refused by provider", "code", f.ProviderCode(), "err", sendErr)
		v := w.fail(ctx, log, announced, r, f.ProviderCode(), f.ProviderText(), ResultFailed)
		v.provider = took
		return v
	}
	v := w.retry(ctx, log, announced, r, st, delivered, sendErr)
	v.provider = took
	return v
}

// retry schedules the next attempt after a transient failure, or fails the row when the retry
// deadline or the consumer's MaxDeliver would be passed.
func (w *Worker) retry(ctx context.Context, log *slog.Logger, announced func() error, r *row, st sendState, delivered uint64, sendErr error) verdict {
	ch := r.Channel.String
	var f Failure
	isF := errors.As(sendErr, &f)
	outcome, code, text, after := outcomeUnknown, "error", sendErr.Error(), time.Duration(0)
	if isF {
		code, text, after = f.ProviderCode(), f.ProviderText(), f.RetryAfter()
		if !f.MaybeAccepted() {
			outcome = outcomeRejected
		}
	}
	delay := w.backoff(int(delivered), after)
	if outcome == outcomeUnknown {
		// The provider may have the message: the next delivery waits for its receipt first.
		delay = max(delay, w.cfg.ReconcileWait)
	}
	now := time.Now()
	if now.Add(delay).After(r.CreatedAt.Add(w.cfg.RetryDeadline)) || delivered >= uint64(w.maxDeliverOr(1<<30)) {
		reason := fmt.Sprintf("gave up after %d attempts: %s", st.Attempts, text)
		if outcome == outcomeUnknown {
			reason += " (the last attempt's outcome is unknown: the provider may have delivered it)"
		}
		return w.fail(ctx, log, announced, r, code, reason, ResultFailed)
	}
	if err := w.store.outcome(ctx, r.ID, outcome, code, text); err != nil {
		log.Warn("recording send outcome", "err", err)
	}
	metricRetries.WithLabelValues(ch, code).Inc()
	log.Info("send failed; will retry", "code", code, "attempts", st.Attempts, "delay", delay, "err", sendErr)
	return verdict{act: actNak, delay: delay, result: ResultRetry, channel: ch}
}

// backoff is exponential from RetryBase, capped at RetryMax, with jitter in [d/2, d), and never
// shorter than the provider's Retry-After.
func (w *Worker) backoff(attempt int, retryAfter time.Duration) time.Duration {
	d := w.cfg.RetryBase
	for i := 1; i < attempt && d < w.cfg.RetryMax; i++ {
		d *= 2
	}
	d = min(d, w.cfg.RetryMax)
	d = d/2 + rand.N(d/2+1)
	return max(d, retryAfter)
}

func (w *Worker) maxDeliverOr(def int) int {
	if w.maxDeliver > 0 {
		return w.maxDeliver
	}
	return def
}

func lastErr(st sendState) string {
	if st.LastError == "" {
		return ""
	}
	return "; last error: " + st.LastError
}

// fail marks the row failed with code and text and publishes message_status. Term: retrying the
// command cannot change the outcome.
func (w *Worker) fail(ctx context.Context, log *slog.Logger, announced func() error, r *row, code, text, result string) verdict {
	ch := r.Channel.String
	failed, err := w.store.failed(ctx, r.ID, code, text)
	if err != nil {
		return verdict{act: actNak, delay: w.cfg.RetryBase, result: ResultError, channel: ch}
	}
	if failed != nil {
		if err := announced(); err != nil {
			return verdict{act: actNak, delay: w.cfg.RetryBase, result: ResultError, channel: ch}
		}
		if err := w.publishStatus(ctx, failed); err != nil {
			log.Warn("publishing failed status", "err", err)
			return verdict{act: actNak, delay: w.cfg.RetryBase, result: ResultError, channel: ch}
		}
		log.Warn("reply failed", "code", code, "reason", text)
	}
	return verdict{act: actTerm, result: result, channel: ch}
}

// ourFailure handles a database or JetStream failure: redeliver with backoff, and once MaxDeliver
// is reached dead-letter the command so it is not silently dropped.
func (w *Worker) ourFailure(ctx context.Context, msg jetstream.Msg, log *slog.Logger, delivered uint64, ch string, err error) verdict {
	if delivered >= uint64(w.maxDeliverOr(1<<30)) {
		log.Error("reply command failed on every delivery; dead-lettering", "err", err)
		v := w.reject(ctx, msg, delivered, "sender kept failing: "+err.Error())
		v.channel = ch
		return v
	}
	log.Warn("reply command failed; will retry", "err", err, "delivered", delivered)
	return verdict{act: actNak, delay: w.backoff(int(delivered), 0), result: ResultError, channel: ch}
}

// reject dead-letters a command that can never be sent (undecodable, unknown conversation), then
// Terms it. Without a row there is no conversation to tell; the reason is in the DLQ and the log.
func (w *Worker) reject(ctx context.Context, msg jetstream.Msg, delivered uint64, reason string) verdict {
	out := nats.NewMsg(queue.SubjectDLQReplies)
	out.Data = msg.Data()
	for k, vs := range msg.Headers() {
		if k == jetstream.MsgIDHeader {
			continue
		}
		out.Header[k] = vs
	}
	out.Header.Set(queue.HeaderError, reason)
	out.Header.Set(queue.HeaderDelivered, fmt.Sprint(delivered))
	out.Header.Set(queue.HeaderSubject, msg.Subject())
	out.Header.Set(queue.HeaderStream, queue.StreamReplies)
	if md, err := msg.Metadata(); err == nil {
		out.Header.Set(queue.HeaderStreamSeq, fmt.Sprint(md.Sequence.Stream))
	}
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if _, err := w.js.PublishMsg(pctx, out); err != nil {
		w.log.Error("dead-lettering reply command", "reason", reason, "err", err)
		return verdict{act: actNak, delay: w.cfg.RetryBase, result: ResultError}
	}
	w.log.Warn("reply command rejected", "reason", reason)
	return verdict{act: actTerm, result: ResultInvalid}
}

func (w *Worker) waitTurn(ctx context.Context, ch string) error {
	l := w.limiters[ch]
	if l == nil {
		return nil
	}
	t0 := time.Now()
	err := l.Wait(ctx)
	if d := time.Since(t0); d > time.Millisecond {
		metricRateWaits.WithLabelValues(ch).Inc()
		metricRateWaitSeconds.WithLabelValues(ch).Observe(d.Seconds())
	}
	return err
}

func (w *Worker) publishStatus(ctx context.Context, r *row) error {
	return w.publish(ctx, event.EventMessageStatus, "status:"+r.ID+":"+r.Status.String, r)
}

func (w *Worker) publish(ctx context.Context, name, id string, r *row) error {
	data, err := jsonData(r.Data())
	if err != nil {
		return err
	}
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	_, err = queue.PublishEvent(pctx, w.js, &event.AgentEvent{
		ID: id, Event: name, ConversationID: r.ConversationID, Team: r.Team, Data: data,
	})
	return err
}

// heartbeat calls InProgress every interval until stopped, without a goroutine per message.
type heartbeat struct {
	mu      sync.Mutex
	t       *time.Timer
	stopped bool
}

func startHeartbeat(msg jetstream.Msg, every time.Duration) *heartbeat {
	h := &heartbeat{}
	if every <= 0 {
		return h
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	tick := func() {
		_ = msg.InProgress()
		h.mu.Lock()
		defer h.mu.Unlock()
		if !h.stopped {
			h.t.Reset(every)
		}
	}
	h.t = time.AfterFunc(every, tick)
	return h
}

func (h *heartbeat) stop() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.stopped = true
	if h.t != nil {
		h.t.Stop()
	}
}
