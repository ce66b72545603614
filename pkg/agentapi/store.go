package agentapi

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"

	"github.com/chatwire/chatwire/pkg/notify"
	"github.com/chatwire/chatwire/pkg/store"
)

// errNotFound means the conversation does not exist or the caller may not see it; the API answers
// 404 in both cases so an agent cannot probe for other teams' conversations.
var errNotFound = errors.New("conversation not found")

// Every query that reads or writes a conversation starts with the same three parameters, so the
// visibility rule is written once: $1 admin, $2 the agent's teams (lower-case), $3 the team that
// sees unassigned conversations. Teams compare case-insensitively, as on the WebSocket.
const visibleSQL = `($1::bool OR coalesce(nullif(lower(btrim(c.assigned_team)), ''), $3::text) = ANY($2::text[]))`

// The statements below select or return columns of one table each, so the shared column lists
// need no alias (c and m only qualify the WHERE clauses).

// Conversation list: newest activity first, conversations without any message last, keyset
// pagination on (last_message_at, id). The two parts are separate queries because one ORDER BY
// last_message_at DESC NULLS LAST cannot walk idx_conversations_last_message_at (DESC, so NULLS
// FIRST) and would sort every visible conversation for each page; the first part walks the index
// and stops after a page. The variants are chosen by code, never built from input.
// $4 status filter (empty = any), $5 limit, then the cursor ($6 time, $7 id; or $6 id).
const (
	listConvHead = `SELECT ` + store.ConversationColumns + ` FROM conversations c
 WHERE ` + visibleSQL + ` AND ($4::text = '' OR c.status = $4::text)`
	listConvActiveSQL = listConvHead + `
   AND c.last_message_at IS NOT NULL
 ORDER BY c.last_message_at DESC, c.id DESC
 LIMIT $5`
	listConvActiveAfterSQL = listConvHead + `
   AND c.last_message_at IS NOT NULL
   AND (c.last_message_at < $6::timestamptz OR (c.last_message_at = $6::timestamptz AND c.id < $7::uuid))
 ORDER BY c.last_message_at DESC, c.id DESC
 LIMIT $5`
	listConvIdleSQL = listConvHead + `
   AND c.last_message_at IS NULL
 ORDER BY c.id DESC
 LIMIT $5`
	listConvIdleAfterSQL = listConvHead + `
   AND c.last_message_at IS NULL AND c.id < $6::uuid
 ORDER BY c.id DESC
 LIMIT $5`
)

const getConvSQL = `SELECT ` + store.ConversationColumns + ` FROM conversations c WHERE ` + visibleSQL + ` AND c.id = $4::uuid`

// History of one conversation, newest first by provider time. $1 conversation, $2 limit, $3/$4
// the cursor.
const (
	listMsgSQL = `SELECT ` + store.MessageColumns + ` FROM chat_messages m
 WHERE m.conversation_id = $1::uuid
 ORDER BY m.created_at DESC, m.id DESC
 LIMIT $2`
	listMsgAfterSQL = `SELECT ` + store.MessageColumns + ` FROM chat_messages m
 WHERE m.conversation_id = $1::uuid AND (m.created_at, m.id) < ($3::timestamptz, $4::uuid)
 ORDER BY m.created_at DESC, m.id DESC
 LIMIT $2`
)

// markReadSQL zeroes the unread counter. It locks the conversation row before touching the
// messages: the ingestor upserts (locks) the conversation before inserting its messages, so a
// message being stored concurrently either commits before this statement re-reads the row (and
// markMessagesReadSQL, which runs after, sees it) or waits and counts as unread afterwards. It
// changes nothing — and keeps updated_at, hence the event id — when nothing is unread.
const markReadSQL = `
UPDATE conversations c SET unread_count = 0, updated_at = now()
 WHERE ` + visibleSQL + ` AND c.id = $4::uuid
   AND (c.unread_count <> 0 OR EXISTS (SELECT 1 FROM chat_messages m
         WHERE m.conversation_id = c.id AND m.direction = 'inbound' AND NOT m.is_read))
RETURNING ` + store.ConversationColumns

const markMessagesReadSQL = `
UPDATE chat_messages SET is_read = true
 WHERE conversation_id = $1::uuid AND direction = 'inbound' AND NOT is_read`

// patchSQL applies the fields the caller sent ($5 status or NULL; $6/$8 whether to set the team /
// agent, $7/$9 the value, empty = clear). A PATCH that changes nothing keeps updated_at, so repeating
// it re-emits the same event id (dropped by JetStream) instead of a new event.
const patchSQL = `
UPDATE conversations c
   SET status         = coalesce($5::text, c.status),
       assigned_team  = CASE WHEN $6::bool THEN nullif($7::text, '') ELSE c.assigned_team END,
       assigned_agent = CASE WHEN $8::bool THEN nullif($9::text, '') ELSE c.assigned_agent END,
       updated_at     = now()
 WHERE ` + visibleSQL + ` AND c.id = $4::uuid
   AND (($5::text IS NOT NULL AND c.status IS DISTINCT FROM $5::text)
        OR ($6::bool AND c.assigned_team IS DISTINCT FROM nullif($7::text, ''))
        OR ($8::bool AND c.assigned_agent IS DISTINCT FROM nullif($9::text, '')))
RETURNING ` + store.ConversationColumns

const commandConvSQL = `SELECT conversation_id FROM chat_messages WHERE command_id = $1`

// db is the API's SQL.
type db struct {
	x       *sqlx.DB
	timeout time.Duration
}

func visArgs(a notify.Agent) []any {
	return []any{a.Admin, pq.Array(nonNil(a.Teams)), notify.TeamUnassigned}
}

// nonNil keeps pq from sending NULL for an agent without teams (NULL = ANY(...) is NULL, which
// would work, but an empty array says what is meant).
func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func (d *db) ctx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, d.timeout)
}

type listConvQuery struct {
	status string
	limit  int
	cursor *cursor
}

func (d *db) listConversations(ctx context.Context, a notify.Agent, q listConvQuery) ([]store.ConversationRow, error) {
	ctx, cancel := d.ctx(ctx)
	defer cancel()
	base := append(visArgs(a), q.status)
	var rows []store.ConversationRow
	if q.cursor == nil || !q.cursor.null {
		query, args := listConvActiveSQL, append(base, q.limit)
		if q.cursor != nil {
			query, args = listConvActiveAfterSQL, append(args, q.cursor.at, q.cursor.id)
		}
		if err := d.x.SelectContext(ctx, &rows, query, args...); err != nil {
			return nil, fmt.Errorf("listing conversations: %w", err)
		}
		if len(rows) >= q.limit {
			return rows, nil
		}
	}
	// The page reaches past the last conversation with messages: continue with those without.
	query, args := listConvIdleSQL, append(base, q.limit-len(rows))
	if q.cursor != nil && q.cursor.null {
		query, args = listConvIdleAfterSQL, append(args, q.cursor.id)
	}
	var idle []store.ConversationRow
	if err := d.x.SelectContext(ctx, &idle, query, args...); err != nil {
		return nil, fmt.Errorf("listing conversations without messages: %w", err)
	}
	return append(rows, idle...), nil
}

func (d *db) conversation(ctx context.Context, a notify.Agent, id string) (store.ConversationRow, error) {
	ctx, cancel := d.ctx(ctx)
	defer cancel()
	return d.getConversation(ctx, d.x, a, id)
}

func (d *db) getConversation(ctx context.Context, q sqlx.QueryerContext, a notify.Agent, id string) (store.ConversationRow, error) {
	var r store.ConversationRow
	err := sqlx.GetContext(ctx, q, &r, getConvSQL, append(visArgs(a), id)...)
	if errors.Is(err, sql.ErrNoRows) {
		return r, errNotFound
	}
	if err != nil {
		return r, fmt.Errorf("loading conversation %s: %w", id, err)
	}
	return r, nil
}

func (d *db) messages(ctx context.Context, convID string, limit int, c *cursor) ([]store.MessageRow, error) {
	ctx, cancel := d.ctx(ctx)
	defer cancel()
	var rows []store.MessageRow
	var err error
	if c == nil {
		err = d.x.SelectContext(ctx, &rows, listMsgSQL, convID, limit)
	} else {
		err = d.x.SelectContext(ctx, &rows, listMsgAfterSQL, convID, limit, c.at, c.id)
	}
	if err != nil {
		return nil, fmt.Errorf("listing messages of %s: %w", convID, err)
	}
	return rows, nil
}

// markRead zeroes the unread count and marks the inbound messages read, in one transaction.
func (d *db) markRead(ctx context.Context, a notify.Agent, id string) (store.ConversationRow, error) {
	return retryTx(ctx, d, func(ctx context.Context, tx *sqlx.Tx) (store.ConversationRow, error) {
		var r store.ConversationRow
		err := tx.GetContext(ctx, &r, markReadSQL, append(visArgs(a), id)...)
		if errors.Is(err, sql.ErrNoRows) {
			// Nothing unread, or not visible: tell them apart by reading the row.
			return d.getConversation(ctx, tx, a, id)
		}
		if err != nil {
			return r, fmt.Errorf("marking conversation %s read: %w", id, err)
		}
		if _, err := tx.ExecContext(ctx, markMessagesReadSQL, id); err != nil {
			return r, fmt.Errorf("marking messages of %s read: %w", id, err)
		}
		return r, nil
	})
}

type patch struct {
	status        *string
	team, agent   *string
	setTeam, setA bool
}

func (d *db) patch(ctx context.Context, a notify.Agent, id string, p patch) (store.ConversationRow, error) {
	return retryTx(ctx, d, func(ctx context.Context, tx *sqlx.Tx) (store.ConversationRow, error) {
		var r store.ConversationRow
		args := append(visArgs(a), id, p.status, p.setTeam, deref(p.team), p.setA, deref(p.agent))
		err := tx.GetContext(ctx, &r, patchSQL, args...)
		if errors.Is(err, sql.ErrNoRows) {
			return d.getConversation(ctx, tx, a, id)
		}
		if err != nil {
			return r, fmt.Errorf("updating conversation %s: %w", id, err)
		}
		return r, nil
	})
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// commandConversation returns the conversation of the outbound row a command created, or "" when
// the sender has not stored it (yet).
func (d *db) commandConversation(ctx context.Context, commandID string) (string, error) {
	ctx, cancel := d.ctx(ctx)
	defer cancel()
	var conv string
	err := d.x.GetContext(ctx, &conv, commandConvSQL, commandID)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("looking up command %s: %w", commandID, err)
	}
	return conv, nil
}

// retryTx runs fn in a transaction and retries serialization failures and deadlocks: the classify
// worker locks a message before its conversation, markRead the other way round, so the two can
// deadlock; Postgres aborts one and the retry succeeds.
func retryTx(ctx context.Context, d *db, fn func(context.Context, *sqlx.Tx) (store.ConversationRow, error)) (store.ConversationRow, error) {
	ctx, cancel := d.ctx(ctx)
	defer cancel()
	for attempt := 1; ; attempt++ {
		r, err := func() (store.ConversationRow, error) {
			tx, err := d.x.BeginTxx(ctx, nil)
			if err != nil {
				return store.ConversationRow{}, fmt.Errorf("begin: %w", err)
			}
			defer tx.Rollback() //nolint:errcheck // after Commit it is a no-op
			r, err := fn(ctx, tx)
			if err != nil {
				return r, err
			}
			if err := tx.Commit(); err != nil {
				return r, fmt.Errorf("commit: %w", err)
			}
			return r, nil
		}()
		retryable := store.IsCode(err, store.CodeDeadlockDetected) || store.IsCode(err, store.CodeSerializationFailure)
		if !retryable || attempt == 3 {
			return r, err
		}
		select {
		case <-ctx.Done():
			return r, err
		case <-time.After(time.Duration(attempt) * 20 * time.Millisecond):
		}
	}
}
