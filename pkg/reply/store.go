package reply

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"

	"github.com/chatwire/chatwire/pkg/event"
	pgstore "github.com/chatwire/chatwire/pkg/store"
)

// Outcomes of a send attempt, kept in provider_payload.send.outcome. An attempt without an outcome
// was cut short (crash, shutdown) and is treated like "unknown".
const (
	outcomeAccepted = "accepted" // the provider took the message
	outcomeRejected = "rejected" // the provider answered and did not take it: safe to resend
	outcomeUnknown  = "unknown"  // no usable answer after the request went out: it may have been taken
	outcomeAborted  = "aborted"  // stopped before the request went out: safe to resend
	outcomeFailed   = "failed"   // final failure
)

// sendState is the sender's bookkeeping for one outbound row, stored as provider_payload.send so
// a redelivered command (after a crash, or a duplicate command) can tell whether a request may
// already be with the provider.
type sendState struct {
	Attempts  int       `json:"attempts"`
	StartedAt time.Time `json:"started_at"`
	Outcome   string    `json:"outcome,omitempty"`
	LastCode  string    `json:"last_code,omitempty"`
	LastError string    `json:"last_error,omitempty"`
}

// row is an outbound chat_messages row joined with what sending needs from its conversation.
type row struct {
	pgstore.MessageRow
	Payload   []byte         `db:"provider_payload"`
	CommandID sql.NullString `db:"command_id"`
	Phone     string         `db:"phone_number"`
	Team      string         `db:"team"`
}

func (r *row) state() sendState {
	var p struct {
		Send sendState `json:"send"`
	}
	if len(r.Payload) > 0 {
		_ = json.Unmarshal(r.Payload, &p) // unreadable bookkeeping counts as "never attempted"
	}
	return p.Send
}

// rowCols is what row scans. The statements join conversations, which shares column names with
// chat_messages, so the message columns are qualified; that makes these statements vars.
var rowCols = pgstore.MessageColumnsOf("m") + `, m.provider_payload, m.command_id, c.phone_number,
	coalesce(c.assigned_team, '') AS team`

// insertBatchSQL writes the outbound rows (status pending) of a batch of commands and claims each
// one's first send attempt in the same statement, and moves the conversations' last_message_at.
// ON CONFLICT on the unique command_id makes a repeated command a no-op: it returns no row for
// it, and the caller loads the existing row. A command whose conversation does not exist returns
// no row either. SKIP LOCKED: a concurrent writer of the same conversation (another reply, an
// inbound message) is setting last_message_at to about the same time; waiting for its lock would
// hold a pool connection for nothing.
var insertBatchSQL = `
WITH i AS (
	SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[])
	         AS i(conversation_id, message_type, content, media_url, sender_name, agent_id, command_id)
), m AS (
	INSERT INTO chat_messages (conversation_id, direction, message_type, content, media_url, sender_type,
	                           sender_name, agent_id, channel, status, status_at, command_id, provider_payload)
	SELECT i.conversation_id, 'outbound', i.message_type, i.content, nullif(i.media_url, ''), 'agent',
	       nullif(i.sender_name, ''), nullif(i.agent_id, ''), c.channel, 'pending', now(), i.command_id,
	       jsonb_build_object('send', jsonb_build_object('attempts', 1, 'started_at', now()))
	  FROM i JOIN conversations c ON c.id = i.conversation_id
	 ORDER BY i.command_id
	ON CONFLICT (command_id) DO NOTHING
	RETURNING *
), touched AS (
	SELECT conversation_id, max(created_at) AS at FROM m GROUP BY conversation_id
), touch AS (
	UPDATE conversations SET last_message_at = GREATEST(last_message_at, t.at), updated_at = now()
	  FROM touched t
	 WHERE conversations.id = t.conversation_id
	   AND conversations.id IN (SELECT id FROM conversations WHERE id IN (SELECT conversation_id FROM touched)
	                             ORDER BY id FOR UPDATE SKIP LOCKED)
)
SELECT ` + rowCols + `
  FROM m JOIN conversations c ON c.id = m.conversation_id`

var loadSQL = `
SELECT ` + rowCols + `
  FROM chat_messages m JOIN conversations c ON c.id = m.conversation_id
 WHERE m.command_id = $1`

// claimSQL takes the next send attempt if nobody else did since we read the row (compare and set
// on the attempt count), so two deliveries of one command never send at the same time.
const claimSQL = `
UPDATE chat_messages
   SET provider_payload = coalesce(provider_payload, '{}'::jsonb)
       || jsonb_build_object('send', jsonb_build_object('attempts', $2::int + 1, 'started_at', now()))
 WHERE id = $1 AND status = 'pending'
   AND coalesce((provider_payload->'send'->>'attempts')::int, 0) = $2`

const outcomeSQL = `
UPDATE chat_messages
   SET provider_payload = jsonb_set(coalesce(provider_payload, '{}'::jsonb), '{send}',
       coalesce(provider_payload->'send', '{}'::jsonb)
       || jsonb_build_object('outcome', $2::text, 'last_code', $3::text, 'last_error', $4::text))
 WHERE id = $1 AND status = 'pending'`

// sentSQL records the provider's acceptance. A delivery receipt may have moved the row past
// "sent" already (statuses only move forward); the external id is filled in either way, and the
// legacy interakt_message_id too, so tools built on the original schema keep working.
var sentSQL = `
UPDATE chat_messages m
   SET status = CASE WHEN m.status = 'pending' THEN 'sent' ELSE m.status END,
       status_at = CASE WHEN m.status = 'pending' THEN now() ELSE m.status_at END,
       external_message_id = coalesce(m.external_message_id, nullif($2, '')),
       interakt_message_id = CASE WHEN m.channel = 'interakt' THEN coalesce(m.interakt_message_id, nullif($2, ''))
                                  ELSE m.interakt_message_id END,
       provider_payload = jsonb_set(coalesce(m.provider_payload, '{}'::jsonb), '{send}',
           coalesce(m.provider_payload->'send', '{}'::jsonb) || jsonb_build_object('outcome', 'accepted'))
  FROM conversations c
 WHERE m.id = $1 AND c.id = m.conversation_id
RETURNING ` + rowCols

// sentBatchSQL is sentSQL for many messages in one statement.
var sentBatchSQL = `
UPDATE chat_messages m
   SET status = CASE WHEN m.status = 'pending' THEN 'sent' ELSE m.status END,
       status_at = CASE WHEN m.status = 'pending' THEN now() ELSE m.status_at END,
       external_message_id = coalesce(m.external_message_id, nullif(u.ext, '')),
       interakt_message_id = CASE WHEN m.channel = 'interakt' THEN coalesce(m.interakt_message_id, nullif(u.ext, ''))
                                  ELSE m.interakt_message_id END,
       provider_payload = jsonb_set(coalesce(m.provider_payload, '{}'::jsonb), '{send}',
           coalesce(m.provider_payload->'send', '{}'::jsonb) || jsonb_build_object('outcome', 'accepted'))
  FROM unnest($1::uuid[], $2::text[]) AS u(id, ext), conversations c
 WHERE m.id = u.id AND c.id = m.conversation_id
RETURNING ` + rowCols

var failedSQL = `
UPDATE chat_messages m
   SET status = 'failed', status_at = now(), error_code = $2, error_text = $3,
       provider_payload = jsonb_set(coalesce(m.provider_payload, '{}'::jsonb), '{send}',
           coalesce(m.provider_payload->'send', '{}'::jsonb) || jsonb_build_object('outcome', 'failed'))
  FROM conversations c
 WHERE m.id = $1 AND m.status = 'pending' AND c.id = m.conversation_id
RETURNING ` + rowCols

// store is the sender's SQL. Statements are prepared once: lib/pq otherwise spends a round trip
// preparing every parameterized query, and the pool is the sender's bottleneck.
type store struct {
	db      *sqlx.DB
	timeout time.Duration

	load, claimQ, outcomeQ, sentQ, failedQ *sqlx.Stmt

	inserts *batcher[insertIn, *row]
	sents   *batcher[sentIn, *row]
}

// Batch sizes and parallel statements of the two statements every reply runs.
const (
	batchMax     = 256
	batchWorkers = 4
)

type insertIn struct {
	cmd                        *event.ReplyCommand
	msgType, content, mediaURL string
}

type sentIn struct{ id, externalID string }

func newStore(db *sqlx.DB, timeout time.Duration) *store {
	s := &store{db: db, timeout: timeout}
	s.inserts = newBatcher(batchMax, batchWorkers, s.insertBatch)
	s.sents = newBatcher(batchMax, batchWorkers, s.sentBatch)
	return s
}

// start runs the batchers until ctx ends; the returned func waits for them.
func (s *store) start(ctx context.Context) (wait func()) {
	w1, w2 := s.inserts.start(ctx), s.sents.start(ctx)
	return func() { w1(); w2() }
}

func (s *store) insertBatch(ctx context.Context, ins []insertIn) ([]*row, error) {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	n := len(ins)
	conv, typ, content, media, name, agent, cmd := make([]string, n), make([]string, n), make([]string, n),
		make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	for i, in := range ins {
		conv[i], typ[i], content[i], media[i] = in.cmd.ConversationID, in.msgType, in.content, in.mediaURL
		name[i], agent[i], cmd[i] = in.cmd.SenderName, in.cmd.AgentID, in.cmd.CommandID
	}
	var rows []row
	err := s.db.SelectContext(ctx, &rows, insertBatchSQL, pq.Array(conv), pq.Array(typ), pq.Array(content),
		pq.Array(media), pq.Array(name), pq.Array(agent), pq.Array(cmd))
	if err != nil {
		return nil, fmt.Errorf("inserting outbound messages: %w", err)
	}
	byCmd := make(map[string]*row, len(rows))
	for i := range rows {
		byCmd[rows[i].CommandID.String] = &rows[i]
	}
	out := make([]*row, n)
	for i, in := range ins {
		// Only the first copy of a command in the batch created the row; the others load it.
		if r, ok := byCmd[in.cmd.CommandID]; ok {
			out[i] = r
			delete(byCmd, in.cmd.CommandID)
		}
	}
	return out, nil
}

func (s *store) sentBatch(ctx context.Context, ins []sentIn) ([]*row, error) {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	ids, exts := make([]string, len(ins)), make([]string, len(ins))
	for i, in := range ins {
		ids[i], exts[i] = in.id, in.externalID
	}
	var rows []row
	if err := s.db.SelectContext(ctx, &rows, sentBatchSQL, pq.Array(ids), pq.Array(exts)); err != nil {
		return nil, fmt.Errorf("marking messages sent: %w", err)
	}
	byID := make(map[string]*row, len(rows))
	for i := range rows {
		byID[rows[i].ID] = &rows[i]
	}
	out := make([]*row, len(ins))
	for i, in := range ins {
		out[i] = byID[in.id]
	}
	return out, nil
}

func (s *store) prepare(ctx context.Context) error {
	for _, p := range []struct {
		dst **sqlx.Stmt
		sql string
	}{{&s.load, loadSQL}, {&s.claimQ, claimSQL}, {&s.outcomeQ, outcomeSQL},
		{&s.sentQ, sentSQL}, {&s.failedQ, failedSQL}} {
		st, err := s.db.PreparexContext(ctx, p.sql)
		if err != nil {
			return fmt.Errorf("preparing sender statements: %w", err)
		}
		*p.dst = st
	}
	return nil
}

func (s *store) close() {
	for _, st := range []*sqlx.Stmt{s.load, s.claimQ, s.outcomeQ, s.sentQ, s.failedQ} {
		if st != nil {
			st.Close()
		}
	}
}

// createOrLoad inserts the outbound row for cmd, or loads the row an earlier delivery of the same
// command_id created. It returns (nil, false, nil) when the conversation does not exist.
func (s *store) createOrLoad(ctx context.Context, cmd *event.ReplyCommand, msgType, content, mediaURL string) (*row, bool, error) {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	created, err := s.inserts.do(ctx, insertIn{cmd: cmd, msgType: msgType, content: content, mediaURL: mediaURL})
	if err != nil {
		return nil, false, err
	}
	if created != nil {
		return created, true, nil
	}
	var r row
	err = s.load.GetContext(ctx, &r, cmd.CommandID)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("loading outbound message: %w", err)
	}
	return &r, false, nil
}

func (s *store) claim(ctx context.Context, id string, attempts int) (bool, error) {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	res, err := s.claimQ.ExecContext(ctx, id, attempts)
	if err != nil {
		return false, fmt.Errorf("claiming send attempt: %w", err)
	}
	n, _ := res.RowsAffected()
	return n == 1, nil
}

func (s *store) outcome(ctx context.Context, id, outcome, code, text string) error {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	if _, err := s.outcomeQ.ExecContext(ctx, id, outcome, code, text); err != nil {
		return fmt.Errorf("recording send outcome: %w", err)
	}
	return nil
}

// sent records the provider's acceptance. The record is what keeps a redelivery from sending
// again, so a failed batch is retried row by row before giving up.
func (s *store) sent(ctx context.Context, id, externalID string) (*row, error) {
	r, err := s.sents.do(ctx, sentIn{id: id, externalID: externalID})
	if err == nil && r != nil {
		return r, nil
	}
	for attempt := 0; attempt < 3; attempt++ {
		if attempt > 0 {
			time.Sleep(time.Duration(attempt) * 100 * time.Millisecond)
		}
		r, err = s.sentOne(ctx, id, externalID)
		if err == nil {
			return r, nil
		}
	}
	return nil, err
}

func (s *store) sentOne(ctx context.Context, id, externalID string) (*row, error) {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	var r row
	if err := s.sentQ.GetContext(ctx, &r, id, externalID); err != nil {
		return nil, fmt.Errorf("marking message sent: %w", err)
	}
	return &r, nil
}

// failed marks a pending row failed. It returns nil when the row was no longer pending (a
// receipt got there first), in which case nothing changed and no event is due.
func (s *store) failed(ctx context.Context, id, code, text string) (*row, error) {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	var r row
	err := s.failedQ.GetContext(ctx, &r, id, code, text)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("marking message failed: %w", err)
	}
	return &r, nil
}
