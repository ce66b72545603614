package ingest

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"time"

	"github.com/google/uuid"
	"github.com/lib/pq"

	"github.com/chatwire/chatwire/pkg/app"
	"github.com/chatwire/chatwire/pkg/event"
	"github.com/chatwire/chatwire/pkg/store"
)

// The batch's SQL. Row locks on conversations are what serialize ingestors that share phone
// numbers, so they are taken as late as possible — after the messages are inserted, right before
// the conversation update and the commit — and always in conversation-id order, so two ingestors
// never lock the same rows in opposite orders (no deadlock).
const (
	// sqlEnsureConversations creates the batch's missing conversations (taking the message's
	// channel and the customer's name) and returns the id of every conversation of the batch;
	// created marks the ones this statement inserted. ON CONFLICT DO NOTHING takes no lock on an
	// existing row. A conversation committed by another ingestor after this statement's snapshot
	// can be missing from the result; the caller looks those up again.
	sqlEnsureConversations = `
WITH ins AS (
    INSERT INTO conversations AS c (phone_number, customer_name, channel)
    SELECT u.phone, NULLIF(u.name, ''), u.channel
      FROM unnest($1::text[], $2::text[], $3::text[]) AS u(phone, name, channel)
     ORDER BY u.phone
    ON CONFLICT (phone_number) DO NOTHING
    RETURNING c.id, c.phone_number
)
SELECT id, phone_number, true AS created FROM ins
UNION ALL
SELECT id, phone_number, false FROM conversations WHERE phone_number = ANY($1::text[])`

	sqlFindConversations = `SELECT id, phone_number, false AS created FROM conversations WHERE phone_number = ANY($1::text[])`

	// sqlInsertMessages inserts the batch's messages; a row whose (channel, external_message_id),
	// legacy interakt_message_id or id exists already is skipped by the unique indexes — that is
	// the whole of deduplication. Only ids come back: the caller knows everything else it wrote.
	sqlInsertMessages = `
INSERT INTO chat_messages (id, conversation_id, channel, external_message_id, interakt_message_id,
       direction, message_type, content, media_url, sender_type, sender_name, created_at, provider_payload)
SELECT u.id, u.conv, u.channel, u.ext, NULLIF(u.ik, ''), 'inbound', u.typ, NULLIF(u.content, ''),
       NULLIF(u.media, ''), 'customer', NULLIF(u.name, ''), u.at, NULLIF(u.payload, '')::jsonb
  FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[],
              $8::text[], $9::text[], $10::timestamptz[], $11::text[])
       AS u(id, conv, channel, ext, ik, typ, content, media, name, at, payload)
ON CONFLICT DO NOTHING
RETURNING id`

	// sqlSelectMessages loads rows by id (rows an earlier delivery of the same INBOUND message
	// committed, or rows whose status changed).
	sqlSelectMessages = `SELECT ` + msgColumns + ` FROM chat_messages WHERE id = ANY($1::uuid[])`

	// sqlLockConversations locks the conversations that receive new messages, in id order, and
	// returns their status before this batch (resolved: being reopened). NO KEY UPDATE is the
	// lock the UPDATE takes anyway; FOR UPDATE would conflict with the KEY SHARE locks that other
	// ingestors' foreign-key checks hold on the same conversations, and deadlock. It is a
	// statement of its own so that the UPDATE after it takes its snapshot once every lock is held
	// and sees the messages of the ingestors it waited for.
	//
	// The same statement tells which of the batch's rows that were not inserted ($2) exist with
	// their own id (an earlier delivery of the same INBOUND message committed them): conv is
	// false on those rows. Its snapshot is taken after the INSERT returned, and the INSERT waited
	// for every transaction it conflicted with, so those rows are visible.
	sqlLockConversations = `
WITH locked AS (
    SELECT id, status FROM conversations WHERE id = ANY($1::uuid[]) ORDER BY id FOR NO KEY UPDATE
)
SELECT true AS conv, id, status FROM locked
UNION ALL
SELECT false, id, NULL FROM chat_messages WHERE id = ANY($2::uuid[])`

	sqlSelectConversations = `SELECT ` + store.ConversationColumns + ` FROM conversations WHERE id = ANY($1::uuid[])`

	// sqlApplyStatus finds the outbound message a receipt is about — by the provider's id on its
	// channel, or by our own id echoed back (callbackData / x-apiheader) — locks it, and moves its
	// status forward only. A message found by our id whose send response was lost learns its
	// provider id here. It returns whether the message exists and, if changed, its id.
	sqlApplyStatus = `
WITH target AS (
    SELECT id, status FROM chat_messages
     WHERE direction = 'outbound'
       AND ((channel = $1 AND external_message_id = NULLIF($2, '')) OR id = $3::uuid)
     LIMIT 1
       FOR UPDATE
), upd AS (
    UPDATE chat_messages m
       SET status     = $4,
           status_at  = $5,
           error_code = CASE WHEN $4 = 'failed' THEN NULLIF($6, '') ELSE m.error_code END,
           error_text = CASE WHEN $4 = 'failed' THEN NULLIF($7, '') ELSE m.error_text END,
           external_message_id = CASE
               WHEN m.external_message_id IS NULL AND $2 <> '' AND NOT EXISTS (
                    SELECT 1 FROM chat_messages x WHERE x.channel = $1 AND x.external_message_id = $2)
               THEN $2 ELSE m.external_message_id END
      FROM target t
     WHERE m.id = t.id
       -- forward only, in event.StatusRank's order
       AND (CASE t.status WHEN 'pending' THEN 1 WHEN 'sent' THEN 2 WHEN 'delivered' THEN 3
                WHEN 'read' THEN 4 WHEN 'failed' THEN 5 ELSE 0 END) <
           (CASE $4 WHEN 'pending' THEN 1 WHEN 'sent' THEN 2 WHEN 'delivered' THEN 3
                WHEN 'read' THEN 4 WHEN 'failed' THEN 5 ELSE 0 END)
    RETURNING m.id
)
SELECT EXISTS (SELECT 1 FROM target) AS found, (SELECT id FROM upd) AS updated`

	sqlTeams = `SELECT id, assigned_team FROM conversations WHERE id = ANY($1::uuid[])`
)

// sqlUpdateConversations applies the batch's new messages to their locked conversations by
// SQL arithmetic: unread_count grows by the number of new rows, last_message_at takes the
// newest time (GREATEST, so a late message never moves it back), a resolved conversation
// reopens, a missing name is filled in. The channel follows the customer's latest inbound
// message: it changes to the batch's latest channel only if no stored inbound message is newer
// (conversations.channel already is the channel of the latest one stored before, so the index
// probe runs only when the channel would change). The same statement marks the messages whose
// conversation must be classified ($6: rows this transaction inserted). It is a var because its RETURNING list must be
// qualified: v has an id, name and channel too.
var sqlUpdateConversations = `
WITH mark AS (
    UPDATE chat_messages SET classify_pending = true WHERE id = ANY($6::uuid[])
)
UPDATE conversations AS c
   SET unread_count    = c.unread_count + v.n,
       last_message_at = GREATEST(c.last_message_at, v.max_at),
       status          = CASE WHEN c.status = 'resolved' THEN 'open' ELSE c.status END,
       customer_name   = COALESCE(NULLIF(c.customer_name, ''), NULLIF(v.name, '')),
       channel         = CASE
           WHEN v.channel = c.channel THEN c.channel
           WHEN EXISTS (SELECT 1 FROM chat_messages m
                         WHERE m.conversation_id = c.id AND m.created_at > v.max_at
                           AND m.direction = 'inbound') THEN c.channel
           ELSE v.channel END,
       updated_at      = now()
  FROM unnest($1::uuid[], $2::int[], $3::timestamptz[], $4::text[], $5::text[]) AS v(id, n, max_at, name, channel)
 WHERE c.id = v.id
RETURNING ` + store.ConversationColumnsOf("c")

// batchResult is what a committed batch publishes.
type batchResult struct {
	events []*event.AgentEvent
	jobs   []*event.ClassifyJob

	stored, duplicates, reemitted map[string]int // by channel
	applied, stale, unknown       int
}

func newBatchResult() *batchResult {
	return &batchResult{stored: map[string]int{}, duplicates: map[string]int{}, reemitted: map[string]int{}}
}

// storeItems writes the batch in tx and records each item's outcome (ok, or retry for a status
// whose message is not known yet). It returns the events and jobs to publish after commit.
func storeItems(ctx context.Context, tx stx, items []*item, now time.Time) (*batchResult, error) {
	res := newBatchResult()
	var inbound []*item
	var statuses []*item
	for _, it := range items {
		it.outcome = outcomeAck
		switch {
		case it.inbound != nil:
			inbound = append(inbound, it)
		case it.status != nil:
			statuses = append(statuses, it)
		}
	}
	if len(inbound) > 0 {
		if err := storeInbound(ctx, tx, inbound, now, res); err != nil {
			return nil, err
		}
	}
	if len(statuses) > 0 {
		if err := storeStatuses(ctx, tx, statuses, res); err != nil {
			return nil, err
		}
	}
	return res, nil
}

type convInfo struct {
	id         string
	created    bool
	prevStatus string
}

type phoneAgg struct {
	name    string
	channel string
	latest  time.Time
}

func storeInbound(ctx context.Context, tx stx, items []*item, now time.Time, res *batchResult) error {
	// Two deliveries of one provider message in the same batch: the first stands for both.
	rows := make([]inboundRow, 0, len(items))
	rowItem := make(map[uuid.UUID]*item, len(items))
	seen := make(map[string]bool, len(items))
	phones := map[string]*phoneAgg{}
	for _, it := range items {
		r := toRow(it.inbound, now)
		key := r.channel + "\x00" + r.externalID
		if seen[key] {
			res.duplicates[r.channel]++
			continue
		}
		seen[key] = true
		rows = append(rows, r)
		rowItem[r.id] = it
		p := phones[r.phone]
		if p == nil {
			p = &phoneAgg{}
			phones[r.phone] = p
		}
		if p.channel == "" || !r.createdAt.Before(p.latest) {
			p.channel, p.latest = r.channel, r.createdAt
			if r.senderName != "" {
				p.name = r.senderName
			}
		}
		if p.name == "" {
			p.name = r.senderName
		}
	}

	// 1. Conversations: create the missing ones, learn every id. No row lock yet.
	sorted := make([]string, 0, len(phones))
	for p := range phones {
		sorted = append(sorted, p)
	}
	sort.Strings(sorted)
	names := make([]string, len(sorted))
	channels := make([]string, len(sorted))
	for i, p := range sorted {
		names[i], channels[i] = phones[p].name, phones[p].channel
	}
	convs := make(map[string]*convInfo, len(sorted)) // by phone
	if err := scanConversations(ctx, tx, convs, sqlEnsureConversations, pq.Array(sorted), pq.Array(names), pq.Array(channels)); err != nil {
		return fmt.Errorf("creating conversations: %w", err)
	}
	if len(convs) < len(sorted) {
		var late []string
		for _, p := range sorted {
			if convs[p] == nil {
				late = append(late, p)
			}
		}
		if err := scanConversations(ctx, tx, convs, sqlFindConversations, pq.Array(late)); err != nil {
			return fmt.Errorf("finding conversations: %w", err)
		}
	}

	// 2. Messages, in (channel, external id) order: two ingestors inserting the same messages
	// then meet on the first shared one instead of each waiting for a row the other holds.
	sort.Slice(rows, func(i, j int) bool {
		if rows[i].channel != rows[j].channel {
			return rows[i].channel < rows[j].channel
		}
		return rows[i].externalID < rows[j].externalID
	})
	n := len(rows)
	var (
		ids, convIDs, chans, exts, iks = make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
		types, contents, medias, sndrs = make([]string, n), make([]string, n), make([]string, n), make([]string, n)
		ats, payloads                  = make([]string, n), make([]string, n)
	)
	for i, r := range rows {
		ci := convs[r.phone]
		if ci == nil {
			return fmt.Errorf("conversation for %s missing after upsert", app.MaskPhone(r.phone))
		}
		ids[i], convIDs[i], chans[i], exts[i], iks[i] = r.id.String(), ci.id, r.channel, r.externalID, r.interaktID
		types[i], contents[i], medias[i], sndrs[i] = r.messageType, r.content, r.mediaURL, r.senderName
		ats[i], payloads[i] = r.createdAt.Format(time.RFC3339Nano), r.payload
	}
	var insertedList []string
	if err := tx.SelectContext(ctx, &insertedList, sqlInsertMessages, pq.Array(ids), pq.Array(convIDs),
		pq.Array(chans), pq.Array(exts), pq.Array(iks), pq.Array(types), pq.Array(contents),
		pq.Array(medias), pq.Array(sndrs), pq.Array(ats), pq.Array(payloads)); err != nil {
		return fmt.Errorf("inserting messages: %w", err)
	}
	insertedIDs := make(map[string]bool, len(insertedList))
	for _, id := range insertedList {
		insertedIDs[id] = true
	}
	inserted := make([]msgRow, 0, len(insertedList))
	for i, r := range rows {
		if insertedIDs[ids[i]] {
			inserted = append(inserted, r.msgRow(convIDs[i]))
		}
	}

	// Rows that were not inserted: either an earlier delivery of this very INBOUND message
	// committed them (same id: publish their events again, the crash-after-commit case), or the
	// provider message was stored under another delivery (a duplicate: nothing to do). Which one
	// is asked together with the conversation locks below.
	var missing []string
	for i := range rows {
		if !insertedIDs[ids[i]] {
			missing = append(missing, ids[i])
		}
	}

	// 3. Conversations that received new messages: lock them in id order, then update them.
	type convAgg struct {
		n       int
		maxAt   time.Time
		channel string // of the latest new message
		name    string
		msgs    []*msgRow
	}
	byConv := map[string]*convAgg{}
	convByID := map[string]*convInfo{}
	for _, ci := range convs {
		convByID[ci.id] = ci
	}
	for i := range inserted {
		m := &inserted[i]
		a := byConv[m.ConversationID]
		if a == nil {
			a = &convAgg{}
			byConv[m.ConversationID] = a
		}
		a.n++
		if a.channel == "" || !m.CreatedAt.Before(a.maxAt) {
			a.maxAt, a.channel = m.CreatedAt, m.Channel.String
		}
		if a.name == "" {
			a.name = m.SenderName.String
		}
		a.msgs = append(a.msgs, m)
	}
	cids := make([]string, 0, len(byConv))
	for id := range byConv {
		cids = append(cids, id)
	}
	sort.Strings(cids)
	var oursIDs map[string]bool
	if len(cids) > 0 || len(missing) > 0 {
		lrows, err := tx.QueryxContext(ctx, sqlLockConversations, pq.Array(cids), pq.Array(missing))
		if err != nil {
			return fmt.Errorf("locking conversations: %w", err)
		}
		for lrows.Next() {
			var conv bool
			var id string
			var status *string
			if err := lrows.Scan(&conv, &id, &status); err != nil {
				lrows.Close()
				return fmt.Errorf("locking conversations: %w", err)
			}
			switch {
			case !conv:
				if oursIDs == nil {
					oursIDs = map[string]bool{}
				}
				oursIDs[id] = true
			case status != nil:
				if ci := convByID[id]; ci != nil {
					ci.prevStatus = *status
				}
			}
		}
		if err := lrows.Close(); err != nil {
			return fmt.Errorf("locking conversations: %w", err)
		}
	}
	var ours []msgRow
	if len(oursIDs) > 0 {
		found := make([]string, 0, len(oursIDs))
		for id := range oursIDs {
			found = append(found, id)
		}
		if err := tx.SelectContext(ctx, &ours, sqlSelectMessages, pq.Array(found)); err != nil {
			return fmt.Errorf("loading already stored messages: %w", err)
		}
	}
	for i, r := range rows {
		switch {
		case insertedIDs[ids[i]]:
			res.stored[r.channel]++
		case oursIDs[ids[i]]:
			res.reemitted[r.channel]++
		default:
			res.duplicates[r.channel]++
		}
	}

	// Classification: the first new message of a conversation this batch created or reopened.
	// It is marked by the conversation update's statement.
	var classifyIDs []string
	classifyMsg := map[string]bool{}
	for cid, a := range byConv {
		ci := convByID[cid]
		if ci == nil || !(ci.created || ci.prevStatus == "resolved") {
			continue
		}
		first := firstMessage(a.msgs)
		classifyIDs = append(classifyIDs, first.ID)
		classifyMsg[first.ID] = true
	}

	convData := map[string]*store.ConversationRow{}
	if len(cids) > 0 {
		ns := make([]int64, len(cids))
		maxAts := make([]string, len(cids))
		cnames := make([]string, len(cids))
		cchans := make([]string, len(cids))
		for i, id := range cids {
			a := byConv[id]
			ns[i], maxAts[i], cnames[i], cchans[i] = int64(a.n), a.maxAt.Format(time.RFC3339Nano), a.name, a.channel
		}
		var updated []store.ConversationRow
		if err := tx.SelectContext(ctx, &updated, sqlUpdateConversations, pq.Array(cids), pq.Array(ns),
			pq.Array(maxAts), pq.Array(cnames), pq.Array(cchans), pq.Array(classifyIDs)); err != nil {
			return fmt.Errorf("updating conversations: %w", err)
		}
		for i := range updated {
			convData[updated[i].ID] = &updated[i]
		}
	}

	// Conversations of re-emitted rows that this batch did not update: load them for the events.
	var need []string
	for _, m := range ours {
		if convData[m.ConversationID] == nil {
			need = append(need, m.ConversationID)
		}
	}
	if len(need) > 0 {
		var loaded []store.ConversationRow
		if err := tx.SelectContext(ctx, &loaded, sqlSelectConversations, pq.Array(need)); err != nil {
			return fmt.Errorf("loading conversations: %w", err)
		}
		for i := range loaded {
			convData[loaded[i].ID] = &loaded[i]
		}
	}

	// Events, in the order agents expect them: the messages, then their conversation.
	emitted := map[string][]*msgRow{}
	var order []string
	add := func(m *msgRow) {
		if _, ok := emitted[m.ConversationID]; !ok {
			order = append(order, m.ConversationID)
		}
		emitted[m.ConversationID] = append(emitted[m.ConversationID], m)
	}
	for i := range inserted {
		add(&inserted[i])
	}
	for i := range ours {
		add(&ours[i])
	}
	for _, cid := range order {
		conv := convData[cid]
		team := ""
		if conv != nil {
			team = conv.AssignedTeam.String
		}
		msgs := emitted[cid]
		sortMessages(msgs)
		for _, m := range msgs {
			ev, err := agentEvent(event.EventNewMessage, "msg:"+m.ID, cid, team, m.Data())
			if err != nil {
				return err
			}
			res.events = append(res.events, ev)
			if classifyMsg[m.ID] || m.ClassifyPending.Bool {
				it := rowItem[uuid.MustParse(m.ID)]
				text := ""
				if it != nil {
					text = toRow(it.inbound, now).classify
				}
				res.jobs = append(res.jobs, &event.ClassifyJob{ConversationID: cid, MessageID: m.ID, Text: text})
			}
		}
		if conv != nil {
			last := msgs[len(msgs)-1]
			ev, err := agentEvent(event.EventConversationUpdated, "conv:"+cid+":msg:"+last.ID, cid, team, conv.Data())
			if err != nil {
				return err
			}
			res.events = append(res.events, ev)
		}
	}
	return nil
}

// firstMessage is the earliest message by provider time (id breaks ties, so every delivery of
// the same batch picks the same one).
// scanConversations runs q and records (id, phone, created) rows in convs.
func scanConversations(ctx context.Context, tx stx, convs map[string]*convInfo, q string, args ...any) error {
	rows, err := tx.QueryxContext(ctx, q, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var ci convInfo
		var phone string
		if err := rows.Scan(&ci.id, &phone, &ci.created); err != nil {
			return err
		}
		if prev := convs[phone]; prev == nil || ci.created {
			convs[phone] = &ci
		}
	}
	return rows.Err()
}

func firstMessage(ms []*msgRow) *msgRow {
	f := ms[0]
	for _, m := range ms[1:] {
		if m.CreatedAt.Before(f.CreatedAt) || (m.CreatedAt.Equal(f.CreatedAt) && m.ID < f.ID) {
			f = m
		}
	}
	return f
}

func sortMessages(ms []*msgRow) {
	sort.SliceStable(ms, func(i, j int) bool {
		if !ms[i].CreatedAt.Equal(ms[j].CreatedAt) {
			return ms[i].CreatedAt.Before(ms[j].CreatedAt)
		}
		return ms[i].ID < ms[j].ID
	})
}

func agentEvent(name, id, conversationID, team string, data any) (*event.AgentEvent, error) {
	b, err := json.Marshal(data)
	if err != nil {
		return nil, fmt.Errorf("encoding %s data: %w", name, err)
	}
	return &event.AgentEvent{ID: id, Event: name, ConversationID: conversationID, Team: team, Data: b}, nil
}

// storeStatuses applies delivery receipts, each under its message's row lock. Receipts are
// applied in a fixed order (message key, then status rank) so that two ingestors holding receipts
// for the same messages lock them in the same order.
func storeStatuses(ctx context.Context, tx stx, items []*item, res *batchResult) error {
	sort.SliceStable(items, func(i, j int) bool {
		a, b := items[i].status, items[j].status
		ka, kb := a.Channel+"\x00"+a.ExternalID+"\x00"+a.Reference, b.Channel+"\x00"+b.ExternalID+"\x00"+b.Reference
		if ka != kb {
			return ka < kb
		}
		return event.StatusRank(a.Status) < event.StatusRank(b.Status)
	})
	type applied struct {
		id     string
		status string
	}
	var changes []applied
	for _, it := range items {
		s := it.status
		var ref any // NULL unless the echoed reference is one of our ids
		if u, err := uuid.Parse(s.Reference); err == nil {
			ref = u.String()
		}
		at := s.At.UTC()
		if s.At.IsZero() {
			at = time.Now().UTC()
		}
		var found bool
		var updated *string
		if err := tx.QueryRowxContext(ctx, sqlApplyStatus, s.Channel, clean(s.ExternalID), ref, s.Status, at,
			clean(s.ErrorCode), clean(s.ErrorText)).Scan(&found, &updated); err != nil {
			return fmt.Errorf("applying status %s: %w", s.Status, err)
		}
		switch {
		case !found:
			it.outcome = outcomeRetry
			res.unknown++
		case updated == nil:
			res.stale++
		default:
			res.applied++
			changes = append(changes, applied{id: *updated, status: s.Status})
		}
	}
	if len(changes) == 0 {
		return nil
	}
	ids := make([]string, 0, len(changes))
	for _, c := range changes {
		ids = append(ids, c.id)
	}
	var rows []msgRow
	if err := tx.SelectContext(ctx, &rows, sqlSelectMessages, pq.Array(ids)); err != nil {
		return fmt.Errorf("loading updated messages: %w", err)
	}
	byID := make(map[string]*msgRow, len(rows))
	convIDs := make([]string, 0, len(rows))
	for i := range rows {
		byID[rows[i].ID] = &rows[i]
		convIDs = append(convIDs, rows[i].ConversationID)
	}
	teams := map[string]string{}
	trows, err := tx.QueryxContext(ctx, sqlTeams, pq.Array(convIDs))
	if err != nil {
		return fmt.Errorf("loading teams: %w", err)
	}
	for trows.Next() {
		var id string
		var team *string
		if err := trows.Scan(&id, &team); err != nil {
			trows.Close()
			return fmt.Errorf("scanning team: %w", err)
		}
		if team != nil {
			teams[id] = *team
		}
	}
	if err := trows.Close(); err != nil {
		return fmt.Errorf("loading teams: %w", err)
	}
	for _, c := range changes {
		m := byID[c.id]
		if m == nil {
			continue
		}
		ev, err := agentEvent(event.EventMessageStatus, "status:"+c.id+":"+c.status, m.ConversationID, teams[m.ConversationID], m.Data())
		if err != nil {
			return err
		}
		res.events = append(res.events, ev)
	}
	return nil
}
