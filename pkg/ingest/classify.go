package ingest

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/chatwire/chatwire/pkg/classify"
	"github.com/chatwire/chatwire/pkg/event"
	"github.com/chatwire/chatwire/pkg/queue"
	"github.com/chatwire/chatwire/pkg/store"
)

// ClassifyConfig tunes the classify worker. Zero values take the defaults.
type ClassifyConfig struct {
	// Concurrency is how many jobs are classified at once (CLASSIFY_CONCURRENCY), default 4. It
	// bounds the load on an LLM endpoint independently of the ingest rate.
	Concurrency int
	// JobTimeout bounds one job's classification, retries included, default 60s. A classifier
	// that does not answer by then is abandoned and the fallback stored.
	JobTimeout time.Duration
}

// Classifier is what the worker needs from pkg/classify.
type Classifier interface {
	Classify(ctx context.Context, text string) (classify.Result, error)
}

// ClassifyWorker consumes CLASSIFY with the durable consumer "classifier": it classifies the
// first message of a new or reopened conversation, stores summary and suggested team on the
// message, assigns the team to the conversation if it has none, and announces the change. It
// runs beside the ingest consumer and never holds it up: ingest only enqueues jobs.
type ClassifyWorker struct {
	db  *sqlx.DB
	js  jetstream.JetStream
	clf Classifier
	cfg ClassifyConfig
	log *slog.Logger

	ackWait time.Duration
}

// NewClassifyWorker returns a worker; call Run to consume.
func NewClassifyWorker(db *sqlx.DB, js jetstream.JetStream, clf Classifier, cfg ClassifyConfig, log *slog.Logger) *ClassifyWorker {
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = 4
	}
	if cfg.JobTimeout <= 0 {
		cfg.JobTimeout = 60 * time.Second
	}
	return &ClassifyWorker{db: db, js: js, clf: clf, cfg: cfg, log: log}
}

const (
	sqlClassifyState = `SELECT conversation_id, summary, classify_pending FROM chat_messages WHERE id = $1::uuid`

	// sqlStoreClassification stores the result on the message and, in the same statement, gives
	// the conversation the suggested team unless someone assigned one already. m has no column
	// named like a conversations column, so the RETURNING list needs no alias. The conversation
	// is locked first (c0, which m reads before it updates), the order every other writer uses —
	// the ingestor and the agent API's mark-read lock the conversation, then its messages — so
	// they cannot deadlock.
	sqlStoreClassification = `
WITH c0 AS (
    SELECT id FROM conversations
     WHERE id = (SELECT conversation_id FROM chat_messages WHERE id = $1::uuid)
       FOR NO KEY UPDATE
), m AS (
    UPDATE chat_messages SET summary = $2, suggested_team = $3, classify_pending = NULL
     WHERE id = $1::uuid AND conversation_id = (SELECT id FROM c0)
    RETURNING conversation_id
)
UPDATE conversations c
   SET assigned_team = CASE WHEN COALESCE(c.assigned_team, '') = '' THEN $3 ELSE c.assigned_team END,
       updated_at    = CASE WHEN COALESCE(c.assigned_team, '') = '' THEN now() ELSE c.updated_at END
  FROM m
 WHERE c.id = m.conversation_id
RETURNING ` + store.ConversationColumns
)

// Run consumes until ctx ends.
func (w *ClassifyWorker) Run(ctx context.Context) error {
	cons, err := w.js.Consumer(ctx, queue.StreamClassify, queue.ConsumerClassifier)
	if err != nil {
		return fmt.Errorf("classifier consumer: %w", err)
	}
	w.ackWait = cons.CachedInfo().Config.AckWait
	if w.ackWait <= 0 {
		w.ackWait = 30 * time.Second
	}
	stopWatch, err := WatchMaxDeliveries(w.js, queue.StreamClassify, queue.ConsumerClassifier, queue.SubjectDLQClassify, w.log)
	if err != nil {
		return err
	}
	defer stopWatch()

	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); reportLag(ctx, cons, queue.ConsumerClassifier, 5*time.Second) }()
	for i := 0; i < w.cfg.Concurrency; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			failures := 0
			for ctx.Err() == nil {
				m, err := cons.Next(jetstream.FetchMaxWait(time.Second))
				if err != nil {
					if !errors.Is(err, nats.ErrTimeout) {
						failures++
						w.log.Warn("fetching from CLASSIFY failed", "err", err)
						sleep(ctx, backoff(failures, 100*time.Millisecond, 5*time.Second))
					}
					continue
				}
				failures = 0
				w.handle(ctx, m)
			}
		}()
	}
	wg.Wait()
	return nil
}

func (w *ClassifyWorker) handle(ctx context.Context, m jetstream.Msg) {
	meta, err := m.Metadata()
	if err != nil {
		meta = &jetstream.MsgMetadata{NumDelivered: 1}
	}
	// Storage and publishing finish even when shutdown starts; classification does not.
	bg := context.WithoutCancel(ctx)
	job, err := event.Decode[event.ClassifyJob](m.Data())
	if err != nil {
		w.deadLetter(bg, m, meta, "decode: "+err.Error())
		return
	}
	stop := keepInProgress([]jetstream.Msg{m}, w.ackWait)
	defer stop()

	var convID string
	var summary sql.NullString
	var pending sql.NullBool
	qctx, cancel := context.WithTimeout(bg, 10*time.Second)
	err = w.db.QueryRowxContext(qctx, sqlClassifyState, job.MessageID).Scan(&convID, &summary, &pending)
	cancel()
	switch {
	case errors.Is(err, sql.ErrNoRows):
		// The conversation was deleted meanwhile: nothing left to classify.
		mClassifyJobs.WithLabelValues("message_gone").Inc()
		_ = m.Ack()
		return
	case err != nil:
		w.retry(m, meta, err)
		return
	}

	var conv store.ConversationRow
	if summary.Valid && !pending.Bool {
		// Stored by an earlier delivery that died before publishing: announce it again.
		mClassifyJobs.WithLabelValues("already_done").Inc()
		qctx, cancel := context.WithTimeout(bg, 10*time.Second)
		err = w.db.GetContext(qctx, &conv, sqlSelectConversationByID, convID)
		cancel()
		if err != nil {
			w.retry(m, meta, err)
			return
		}
	} else {
		res, cerr := w.classify(ctx, job.Text)
		if cerr != nil && ctx.Err() != nil {
			// Shutting down, not a failing classifier: leave the job for the next worker.
			_ = m.NakWithDelay(time.Second)
			mClassifyJobs.WithLabelValues("retry").Inc()
			return
		}
		result := "classified"
		if cerr != nil {
			result = "fallback"
			w.log.Warn("classification fell back", "message_id", job.MessageID, "err", cerr)
		}
		qctx, cancel := context.WithTimeout(bg, 10*time.Second)
		err = w.db.GetContext(qctx, &conv, sqlStoreClassification, job.MessageID, res.Summary, res.Team)
		cancel()
		if errors.Is(err, sql.ErrNoRows) {
			mClassifyJobs.WithLabelValues("message_gone").Inc()
			_ = m.Ack()
			return
		}
		if err != nil {
			w.retry(m, meta, err)
			return
		}
		mClassifyJobs.WithLabelValues(result).Inc()
	}

	ev, err := agentEvent(event.EventConversationUpdated, "classified:"+job.MessageID, conv.ID, conv.AssignedTeam.String, conv.Data())
	if err == nil {
		pctx, cancel := context.WithTimeout(bg, 10*time.Second)
		_, err = queue.PublishEvent(pctx, w.js, ev)
		cancel()
	}
	if err != nil {
		w.retry(m, meta, err)
		return
	}
	if err := m.Ack(); err != nil {
		w.log.Warn("ack of classify job failed; it will be redelivered", "message_id", job.MessageID, "err", err)
	}
}

const sqlSelectConversationByID = `SELECT ` + store.ConversationColumns + ` FROM conversations WHERE id = $1::uuid`

// classify runs the classifier under the job timeout and always returns a usable result. A
// classifier that ignores its context is abandoned (its goroutine ends whenever it returns), so
// one hung call never holds a worker for longer than the timeout.
func (w *ClassifyWorker) classify(ctx context.Context, text string) (classify.Result, error) {
	cctx, cancel := context.WithTimeout(ctx, w.cfg.JobTimeout)
	defer cancel()
	type answer struct {
		r   classify.Result
		err error
	}
	ch := make(chan answer, 1)
	go func() {
		r, err := w.clf.Classify(cctx, text)
		ch <- answer{r, err}
	}()
	var a answer
	select {
	case a = <-ch:
	case <-cctx.Done():
		return classify.Fallback(text), fmt.Errorf("classifier gave no answer within %v: %w", w.cfg.JobTimeout, cctx.Err())
	}
	if a.err != nil {
		return classify.Fallback(text), a.err
	}
	r := a.r
	// A summary is one line; a team must be one of ours.
	r.Summary = strings.Join(strings.Fields(r.Summary), " ")
	if r.Summary == "" {
		r.Summary = classify.Fallback(text).Summary
	}
	if !classify.ValidTeam(r.Team) {
		return classify.Result{Summary: r.Summary, Team: classify.TeamGeneral}, fmt.Errorf("classifier answered unknown team %q", truncate(r.Team, 40))
	}
	return r, nil
}

func (w *ClassifyWorker) retry(m jetstream.Msg, meta *jetstream.MsgMetadata, err error) {
	mClassifyJobs.WithLabelValues("retry").Inc()
	w.log.Warn("classify job failed, will be redelivered", "err", err)
	_ = m.NakWithDelay(backoff(int(meta.NumDelivered), time.Second, 30*time.Second))
}

func (w *ClassifyWorker) deadLetter(ctx context.Context, m jetstream.Msg, meta *jetstream.MsgMetadata, reason string) {
	if err := deadLetter(ctx, w.js, queue.SubjectDLQClassify, m.Subject(), m.Headers(), m.Data(), meta, reason); err != nil {
		w.log.Error("dead-lettering classify job failed", "err", err)
		_ = m.NakWithDelay(5 * time.Second)
		return
	}
	mDeadLetters.WithLabelValues(queue.SubjectDLQClassify, "decode").Inc()
	_ = m.TermWithReason(truncate(reason, 200))
}
