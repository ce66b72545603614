// Package ingest is the ingestor: it stores the customer messages and delivery receipts that the
// gateway put on the INBOUND stream in Postgres exactly once, keeps one conversation per phone
// number, publishes agent events to EVENTS, enqueues classification jobs (and runs the classify
// worker), and dead-letters what can never be stored.
//
// Each fetched batch is one transaction; its messages are acknowledged only after the commit and
// after JetStream confirmed every event of the batch. A crash in between leaves the batch
// unacknowledged: its redelivery finds the rows it committed (their ids derive from the INBOUND
// delivery) and publishes their events again under the same deterministic Nats-Msg-Id, which
// JetStream drops if the first publish got through.
package ingest

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

	"github.com/chatwire/chatwire/pkg/event"
	"github.com/chatwire/chatwire/pkg/queue"
	"github.com/chatwire/chatwire/pkg/store"
)

// Config tunes the consumer. Zero values take the defaults.
type Config struct {
	BatchSize      int           // messages per fetch (INGEST_BATCH_SIZE), default 200
	BatchMaxWait   time.Duration // how long a fetch waits to fill a batch (INGEST_BATCH_MAX_WAIT), default 100ms
	Workers        int           // concurrent batches per process (INGEST_WORKERS), default 2
	StatusRetryFor time.Duration // how long a receipt for an unknown message is retried (INGEST_STATUS_RETRY_FOR), default 10m
	PublishTimeout time.Duration // bound on confirming a batch's events, default 10s
	LagInterval    time.Duration // how often consumer lag is sampled, default 5s
}

func (c Config) withDefaults() Config {
	if c.BatchSize <= 0 {
		c.BatchSize = 200
	}
	if c.BatchMaxWait <= 0 {
		c.BatchMaxWait = 100 * time.Millisecond
	}
	if c.Workers <= 0 {
		c.Workers = 2
	}
	if c.StatusRetryFor <= 0 {
		c.StatusRetryFor = 10 * time.Minute
	}
	if c.PublishTimeout <= 0 {
		c.PublishTimeout = 10 * time.Second
	}
	if c.LagInterval <= 0 {
		c.LagInterval = 5 * time.Second
	}
	return c
}

// Ingestor consumes INBOUND with the durable consumer "ingestor". Several Ingestors, in one
// process or many, may consume at once.
type Ingestor struct {
	db  *sqlx.DB
	js  jetstream.JetStream
	log *slog.Logger
	cfg Config

	ackWait    time.Duration
	maxDeliver int

	hooks hooks
	stmts *stmtCache
}

// hooks let tests fail a batch at the points where a process can die or Postgres can fail. A
// hook error wrapping errAbandon makes the worker abandon the batch (no ack, no nak) and Run
// return, as a killed process would.
type hooks struct {
	beforeCommit func([]*item) error
	afterCommit  func([]*item) error
}

// New returns an Ingestor; call Run to consume.
func New(db *sqlx.DB, js jetstream.JetStream, cfg Config, log *slog.Logger) *Ingestor {
	return &Ingestor{db: db, js: js, log: log, cfg: cfg.withDefaults(), stmts: newStmtCache(db)}
}

// outcome is what happens to one INBOUND message after its batch.
type outcome int

const (
	outcomeAck   outcome = iota // stored (or a duplicate): ack
	outcomeRetry                // receipt for a message not known yet: nak with delay, later DLQ
	outcomeDead                 // can never be stored: DLQ, then Term
	outcomeNak                  // transient failure: nak with backoff
)

// item is one fetched message, decoded.
type item struct {
	msg     jetstream.Msg
	meta    *jetstream.MsgMetadata
	inbound *event.InboundMessage
	status  *event.StatusUpdate

	outcome outcome
	reason  string // why it is dead-lettered
	kind    string // metric label of the dead letter
}

// errAbandon is wrapped by hook errors: the batch is left as a dead process would leave it.
var errAbandon = errors.New("batch abandoned")

// Run consumes until ctx ends. A batch in flight when ctx ends is finished (bounded by the
// publish timeout) so its messages are acknowledged rather than redelivered.
func (in *Ingestor) Run(ctx context.Context) error {
	cons, err := in.js.Consumer(ctx, queue.StreamInbound, queue.ConsumerIngestor)
	if err != nil {
		return fmt.Errorf("ingestor consumer: %w", err)
	}
	info := cons.CachedInfo()
	in.ackWait, in.maxDeliver = info.Config.AckWait, info.Config.MaxDeliver
	if in.ackWait <= 0 {
		in.ackWait = 30 * time.Second
	}

	stopWatch, err := WatchMaxDeliveries(in.js, queue.StreamInbound, queue.ConsumerIngestor, queue.SubjectDLQInbound, in.log)
	if err != nil {
		return err
	}
	defer stopWatch()
	defer in.stmts.close()

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	errc := make(chan error, in.cfg.Workers)
	wg.Add(1)
	go func() { defer wg.Done(); reportLag(ctx, cons, queue.ConsumerIngestor, in.cfg.LagInterval) }()
	for i := 0; i < in.cfg.Workers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := in.work(ctx, cons); err != nil {
				errc <- err
				cancel()
			}
		}()
	}
	wg.Wait()
	close(errc)
	return <-errc // nil when every worker stopped because ctx ended
}

func (in *Ingestor) work(ctx context.Context, cons jetstream.Consumer) error {
	failures := 0
	var prev inFlight // the previous batch, still publishing
	for ctx.Err() == nil {
		batch, err := cons.Fetch(in.cfg.BatchSize, jetstream.FetchMaxWait(in.cfg.BatchMaxWait))
		if err != nil {
			failures++
			in.log.Warn("fetching from INBOUND failed", "err", err)
			sleep(ctx, backoff(failures, 100*time.Millisecond, 5*time.Second))
			continue
		}
		var msgs []jetstream.Msg
		for m := range batch.Messages() {
			msgs = append(msgs, m)
		}
		if err := batch.Error(); err != nil && !errors.Is(err, nats.ErrTimeout) && len(msgs) == 0 {
			failures++
			in.log.Debug("fetch ended with error", "err", err)
			sleep(ctx, backoff(failures, 100*time.Millisecond, 5*time.Second))
			continue
		}
		if len(msgs) == 0 {
			continue
		}
		// The batch runs to its end even if ctx ends now: acking it is cheaper than redelivery.
		bctx := context.WithoutCancel(ctx)
		pb, err := in.storeBatch(bctx, msgs)
		if errors.Is(err, errAbandon) {
			prev.wait() //nolint:errcheck // Run returns err either way
			return err
		}
		if err == nil && pb != nil {
			// The previous batch's events must be confirmed before this batch's are published,
			// so one worker announces its batches in commit order.
			err = prev.wait()
			prev = in.finishAsync(bctx, pb)
		}
		switch {
		case err == nil:
			failures = 0
		default:
			failures++
			// Postgres or NATS is unwell: wait for the database before fetching again, so messages
			// do not burn their deliveries while it is down.
			in.waitForDB(ctx, failures)
		}
	}
	prev.wait() //nolint:errcheck // a failed publish was logged and its batch nak'ed
	return nil
}

// inFlight is a committed batch whose events are being published and whose messages are then
// settled; its channel yields the result once.
type inFlight chan error

// wait blocks until the batch is settled; a nil inFlight is settled already.
func (f inFlight) wait() error {
	if f == nil {
		return nil
	}
	return <-f
}

// finishAsync publishes a committed batch's events and settles its messages in the background,
// so the worker fetches and stores its next batch meanwhile (the order commit → publish → ack
// holds per batch; only the next batch's transaction overlaps).
func (in *Ingestor) finishAsync(ctx context.Context, pb *pendingBatch) inFlight {
	f := make(inFlight, 1)
	go func() { f <- in.finishBatch(ctx, pb) }()
	return f
}

// waitForDB sleeps with backoff until Postgres answers or ctx ends.
func (in *Ingestor) waitForDB(ctx context.Context, failures int) {
	for ctx.Err() == nil {
		sleep(ctx, backoff(failures, 200*time.Millisecond, 10*time.Second))
		pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		err := in.db.PingContext(pctx)
		cancel()
		if err == nil {
			return
		}
		failures++
		in.log.Warn("postgres unreachable, consumer paused", "err", err)
	}
}

// pendingBatch is a batch whose transaction is over: what to publish, then how to settle.
type pendingBatch struct {
	items []*item
	res   *batchResult
	stop  func() // ends the InProgress ticker
}

// storeBatch decodes and stores one fetched batch. Messages that cannot be decoded are settled
// at once; on a transient failure every message is nak'ed and the error returned. It returns nil
// when nothing is left to publish or settle.
func (in *Ingestor) storeBatch(ctx context.Context, msgs []jetstream.Msg) (*pendingBatch, error) {
	mBatchSize.Observe(float64(len(msgs)))
	stop := keepInProgress(msgs, in.ackWait)

	items := make([]*item, 0, len(msgs))
	for _, m := range msgs {
		it := decode(m)
		if it.outcome == outcomeDead {
			in.settle(ctx, it)
			continue
		}
		items = append(items, it)
	}
	if len(items) == 0 {
		stop()
		return nil, nil
	}

	res, err := in.storeWithRetry(ctx, items)
	switch {
	case err == nil:
	case errors.Is(err, errAbandon):
		stop()
		return nil, err
	case store.IsTransient(err):
		mBatchFailures.WithLabelValues("transient").Inc()
		in.log.Warn("batch not stored, will be redelivered", "messages", len(items), "err", err)
		for _, it := range items {
			it.outcome = outcomeNak
			in.settle(ctx, it)
		}
		stop()
		return nil, err
	default:
		// Something in the batch can never be stored. Store each message on its own, so the
		// poison is found and dead-lettered and the rest is kept.
		mBatchFailures.WithLabelValues("permanent").Inc()
		in.log.Warn("batch refused by postgres, storing its messages one by one", "messages", len(items), "err", err)
		res, err = in.storeOneByOne(ctx, items)
		if err != nil {
			stop()
			return nil, err
		}
	}

	if err := in.hook(in.hooks.afterCommit, items); errors.Is(err, errAbandon) {
		stop()
		return nil, err
	}
	return &pendingBatch{items: items, res: res, stop: stop}, nil
}

// finishBatch publishes a committed batch's events and classify jobs, then settles its messages:
// ack once every event is confirmed, nak (so the redelivery re-publishes) otherwise.
func (in *Ingestor) finishBatch(ctx context.Context, pb *pendingBatch) error {
	defer pb.stop()
	items, res := pb.items, pb.res
	err := in.publish(ctx, res)
	if err != nil {
		// Committed but not announced: leave the batch to be redelivered, which re-publishes.
		mBatchFailures.WithLabelValues("publish").Inc()
		in.log.Warn("events not confirmed, batch will be redelivered", "messages", len(items), "err", err)
		for _, it := range items {
			if it.outcome == outcomeAck {
				it.outcome = outcomeNak
			}
		}
	} else {
		res.count()
	}
	for _, it := range items {
		in.settle(ctx, it)
	}
	return err
}

func (r *batchResult) count() {
	for ch, n := range r.stored {
		mStored.WithLabelValues(ch).Add(float64(n))
	}
	for ch, n := range r.duplicates {
		mDuplicates.WithLabelValues(ch).Add(float64(n))
	}
	for ch, n := range r.reemitted {
		mReemitted.WithLabelValues(ch).Add(float64(n))
	}
	mStatuses.WithLabelValues("applied").Add(float64(r.applied))
	mStatuses.WithLabelValues("stale").Add(float64(r.stale))
	mStatuses.WithLabelValues("unknown").Add(float64(r.unknown))
}

// hook runs a test hook. An error wrapping errAbandon leaves the batch as a killed process would;
// any other error stands for a storage failure.
func (in *Ingestor) hook(h func([]*item) error, items []*item) error {
	if h == nil {
		return nil
	}
	return h(items)
}

// storeWithRetry runs the batch transaction, retrying serialization failures and deadlocks a few
// times at once: they mean another ingestor touched the same rows, and a retry usually succeeds.
func (in *Ingestor) storeWithRetry(ctx context.Context, items []*item) (*batchResult, error) {
	var err error
	for attempt := 1; ; attempt++ {
		var res *batchResult
		res, err = in.storeTx(ctx, items)
		if err == nil || errors.Is(err, errAbandon) {
			return res, err
		}
		if !store.IsCode(err, store.CodeSerializationFailure) && !store.IsCode(err, store.CodeDeadlockDetected) || attempt == 3 {
			return nil, err
		}
		in.log.Debug("batch conflicted with another transaction, retrying", "attempt", attempt, "err", err)
		sleep(ctx, time.Duration(rand.N(20*attempt)+1)*time.Millisecond)
	}
}

func (in *Ingestor) storeTx(ctx context.Context, items []*item) (*batchResult, error) {
	start := time.Now()
	tctx, cancel := context.WithTimeout(ctx, in.ackWait)
	defer cancel()
	tx, err := in.db.BeginTxx(tctx, nil)
	if err != nil {
		return nil, fmt.Errorf("begin: %w", err)
	}
	defer tx.Rollback() //nolint:errcheck // after Commit it is a no-op
	res, err := storeItems(tctx, stx{tx: tx, cache: in.stmts}, items, time.Now())
	if err != nil {
		return nil, err
	}
	if err := in.hook(in.hooks.beforeCommit, items); err != nil {
		return nil, err
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("commit: %w", err)
	}
	mCommit.Observe(time.Since(start).Seconds())
	return res, nil
}

// storeOneByOne stores each item in its own transaction: a permanent failure dead-letters that
// item only. Returns the merged result of the items that were stored.
func (in *Ingestor) storeOneByOne(ctx context.Context, items []*item) (*batchResult, error) {
	all := newBatchResult()
	for _, it := range items {
		res, err := in.storeWithRetry(ctx, []*item{it})
		switch {
		case err == nil:
			all.merge(res)
		case errors.Is(err, errAbandon):
			return nil, err
		case store.IsTransient(err):
			it.outcome = outcomeNak
		default:
			it.outcome, it.kind, it.reason = outcomeDead, "store", "store: "+err.Error()
		}
	}
	return all, nil
}

func (r *batchResult) merge(o *batchResult) {
	r.events = append(r.events, o.events...)
	r.jobs = append(r.jobs, o.jobs...)
	for k, v := range o.stored {
		r.stored[k] += v
	}
	for k, v := range o.duplicates {
		r.duplicates[k] += v
	}
	for k, v := range o.reemitted {
		r.reemitted[k] += v
	}
	r.applied += o.applied
	r.stale += o.stale
	r.unknown += o.unknown
}

// publish sends the batch's agent events and classify jobs and waits until JetStream confirmed
// every one. Publishing is asynchronous so a batch pays one round trip, not one per event.
func (in *Ingestor) publish(ctx context.Context, res *batchResult) error {
	if len(res.events) == 0 && len(res.jobs) == 0 {
		return nil
	}
	pctx, cancel := context.WithTimeout(ctx, in.cfg.PublishTimeout)
	defer cancel()
	futures := make([]jetstream.PubAckFuture, 0, len(res.events)+len(res.jobs))
	for _, ev := range res.events {
		data, err := encodeAgentEvent(ev)
		if err != nil {
			return fmt.Errorf("encoding %s event: %w", ev.Event, err)
		}
		f, err := in.js.PublishMsgAsync(&nats.Msg{Subject: queue.EventSubject(ev.ConversationID), Data: data},
			jetstream.WithMsgID(ev.ID))
		if err != nil {
			return fmt.Errorf("publishing %s event %s: %w", ev.Event, ev.ID, err)
		}
		futures = append(futures, f)
	}
	for _, job := range res.jobs {
		data, err := event.Encode(job)
		if err != nil {
			return fmt.Errorf("encoding classify job: %w", err)
		}
		f, err := in.js.PublishMsgAsync(&nats.Msg{Subject: queue.SubjectClassify, Data: data},
			jetstream.WithMsgID("classify:"+job.MessageID))
		if err != nil {
			return fmt.Errorf("publishing classify job for %s: %w", job.MessageID, err)
		}
		futures = append(futures, f)
	}
	for _, f := range futures {
		select {
		case <-f.Ok():
		case err := <-f.Err():
			return fmt.Errorf("event not confirmed: %w", err)
		case <-pctx.Done():
			return fmt.Errorf("events not confirmed within %v", in.cfg.PublishTimeout)
		}
	}
	return nil
}

// settle acknowledges, delays, or dead-letters one message according to its outcome.
func (in *Ingestor) settle(ctx context.Context, it *item) {
	var err error
	switch it.outcome {
	case outcomeAck:
		err = it.msg.Ack()
	case outcomeNak:
		err = it.msg.NakWithDelay(backoff(int(it.delivered()), time.Second, 30*time.Second))
	case outcomeRetry:
		// A receipt can overtake the sender's write of the provider id: retry for a while.
		if time.Since(it.meta.Timestamp) < in.cfg.StatusRetryFor && (in.maxDeliver <= 0 || int(it.delivered()) < in.maxDeliver-1) {
			delay := min(max(in.cfg.StatusRetryFor/10, 100*time.Millisecond), 30*time.Second)
			err = it.msg.NakWithDelay(delay)
			break
		}
		s := it.status
		it.kind = "unknown_status"
		it.reason = fmt.Sprintf("status %q for unknown outbound message (channel %s, external_id %q, reference %q) after %v",
			s.Status, s.Channel, s.ExternalID, s.Reference, time.Since(it.meta.Timestamp).Round(time.Second))
		fallthrough
	case outcomeDead:
		if derr := deadLetter(ctx, in.js, queue.SubjectDLQInbound, it.msg.Subject(), it.msg.Headers(), it.msg.Data(),
			it.meta, it.reason); derr != nil {
			in.log.Error("dead-lettering failed, message will be redelivered", "subject", it.msg.Subject(), "err", derr)
			err = it.msg.NakWithDelay(5 * time.Second)
			break
		}
		mDeadLetters.WithLabelValues(queue.SubjectDLQInbound, it.kind).Inc()
		in.log.Warn("message dead-lettered", "subject", it.msg.Subject(), "stream_seq", it.meta.Sequence.Stream,
			"delivered", it.meta.NumDelivered, "reason", it.reason)
		err = it.msg.TermWithReason(truncate(it.reason, 200))
	}
	if err != nil {
		in.log.Warn("settling message failed; it will be redelivered", "subject", it.msg.Subject(), "err", err)
	}
}

func (it *item) delivered() uint64 {
	if it.meta == nil {
		return 1
	}
	return it.meta.NumDelivered
}

// decode reads one INBOUND message. A message that cannot be decoded can never be stored.
func decode(m jetstream.Msg) *item {
	it := &item{msg: m}
	meta, err := m.Metadata()
	if err != nil {
		meta = &jetstream.MsgMetadata{NumDelivered: 1, Timestamp: time.Now()}
	}
	it.meta = meta
	dead := func(err error) *item {
		it.outcome, it.kind, it.reason = outcomeDead, "decode", "decode: "+err.Error()
		return it
	}
	switch {
	case strings.HasPrefix(m.Subject(), "inbound.message."):
		v, err := event.Decode[event.InboundMessage](m.Data())
		if err != nil {
			return dead(err)
		}
		if normalizePhone(v.FromPhone) == "" {
			return dead(fmt.Errorf("%w: inbound message %s: from_phone has no digits", event.ErrInvalid, v.ExternalID))
		}
		it.inbound = &v
	case strings.HasPrefix(m.Subject(), "inbound.status."):
		v, err := event.Decode[event.StatusUpdate](m.Data())
		if err != nil {
			return dead(err)
		}
		it.status = &v
	default:
		return dead(fmt.Errorf("unexpected subject %q", m.Subject()))
	}
	return it
}

// keepInProgress tells JetStream the batch is still being worked on while it takes long, so its
// messages are not redelivered to another ingestor meanwhile.
func keepInProgress(msgs []jetstream.Msg, ackWait time.Duration) (stop func()) {
	done := make(chan struct{})
	go func() {
		t := time.NewTicker(max(ackWait/3, 100*time.Millisecond))
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				for _, m := range msgs {
					_ = m.InProgress()
				}
			}
		}
	}()
	return func() { close(done) }
}

// reportLag samples the consumer's backlog for /metrics.
func reportLag(ctx context.Context, cons jetstream.Consumer, name string, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		ictx, cancel := context.WithTimeout(ctx, 5*time.Second)
		info, err := cons.Info(ictx)
		cancel()
		if err == nil {
			mLag.WithLabelValues(name).Set(float64(info.NumPending))
			mAckPending.WithLabelValues(name).Set(float64(info.NumAckPending))
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// backoff doubles from base per failure up to limit, with jitter.
func backoff(n int, base, limit time.Duration) time.Duration {
	if n < 1 {
		n = 1
	}
	d := base
	for i := 1; i < n && d < limit; i++ {
		d *= 2
	}
	d = min(d, limit)
	return d/2 + rand.N(d/2+1)
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}
