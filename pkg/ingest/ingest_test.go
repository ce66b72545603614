package ingest_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lib/pq"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/oklog/ulid/v2"

	"github.com/chatwire/chatwire/pkg/classify"
	"github.com/chatwire/chatwire/pkg/event"
	"github.com/chatwire/chatwire/pkg/ingest"
	"github.com/chatwire/chatwire/pkg/queue"
	"github.com/chatwire/chatwire/pkg/testenv"
)

// The same provider message reaches the ingestors three times — the gateway's publish, a provider
// retry accepted as a new webhook, and a replay of the first — while two ingestors consume at
// once: one row, one new_message event, unread_count 1.
func TestSameMessageThreeTimesThroughTwoReplicas(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.startIngestor(fastConfig())
	e.startIngestor(fastConfig())

	const n = 10
	for i := 0; i < n; i++ {
		first := inbound(event.ChannelNetcore, fmt.Sprintf("wamid.%d", i), "919201053157", t0.Add(time.Duration(i)*time.Second))
		retry := *first
		retry.ID = ulid.Make().String() // the gateway saw a second webhook
		e.publish(first, "")
		e.publish(&retry, "retry-"+retry.ID) // outside the dedup window
		e.publish(first, "replay-"+first.ID) // an operator replays the stream
	}
	e.drained(queue.StreamInbound, queue.ConsumerIngestor, 20*time.Second)

	if got := e.count(`SELECT count(*) FROM chat_messages`); got != n {
		t.Fatalf("rows = %d, want %d", got, n)
	}
	c := e.conversation("919201053157")
	if c.Unread != n {
		t.Errorf("unread_count = %d, want %d", c.Unread, n)
	}
	if got := len(e.events(event.EventNewMessage)); got != n {
		t.Errorf("new_message events = %d, want %d", got, n)
	}
	if got := e.count(`SELECT count(*) FROM conversations`); got != 1 {
		t.Errorf("conversations = %d, want 1", got)
	}
}

// Fifty messages from one phone, published concurrently and stored by two ingestors in small
// concurrent batches: one conversation, unread_count 50, last_message_at the newest provider time.
func TestFiftyConcurrentMessagesOnePhone(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	cfg := fastConfig()
	cfg.BatchSize = 4
	e.startIngestor(cfg)
	e.startIngestor(cfg)

	const p = "919811112222"
	var wg sync.WaitGroup
	for i := 0; i < 50; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ch := event.ChannelInterakt
			if i%2 == 1 {
				ch = event.ChannelNetcore
			}
			e.publish(inbound(ch, fmt.Sprintf("m-%02d", i), p, t0.Add(time.Duration(i)*time.Minute)), "")
		}()
	}
	wg.Wait()
	e.drained(queue.StreamInbound, queue.ConsumerIngestor, 30*time.Second)

	if got := e.count(`SELECT count(*) FROM conversations WHERE phone_number = $1`, p); got != 1 {
		t.Fatalf("conversations for the phone = %d, want 1", got)
	}
	c := e.conversation(p)
	if c.Unread != 50 {
		t.Errorf("unread_count = %d, want 50", c.Unread)
	}
	if want := t0.Add(49 * time.Minute); c.LastAt == nil || !c.LastAt.Equal(want) {
		t.Errorf("last_message_at = %v, want %v", c.LastAt, want)
	}
	// The newest message (i = 49) came through Netcore: replies must go there.
	if c.Channel != event.ChannelNetcore {
		t.Errorf("channel = %q, want netcore (channel of the latest inbound message)", c.Channel)
	}
	if got := e.count(`SELECT count(*) FROM chat_messages WHERE conversation_id = $1`, c.ID); got != 50 {
		t.Errorf("rows = %d, want 50", got)
	}
	// Only the first message of the new conversation is classified.
	if got := len(e.streamMsgs(queue.StreamClassify)); got != 1 {
		t.Errorf("classify jobs = %d, want 1", got)
	}
}

// An inbound message reopens a resolved conversation, enqueues its classification, and the
// classify worker assigns the suggested team and announces it.
func TestResolvedConversationReopenedAndClassified(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	const p = "919822223333"
	if _, err := e.db.Exec(`INSERT INTO conversations (phone_number, customer_name, status, unread_count, last_message_at, channel)
	                        VALUES ($1, 'Asha', 'resolved', 0, $2, 'interakt')`, p, t0); err != nil {
		t.Fatal(err)
	}
	clf := &fixedClassifier{r: classify.Result{Summary: "Customer wants a refund\nfor a damaged item", Team: "returns_refunds"}}
	e.startClassifier(clf, ingest.ClassifyConfig{Concurrency: 2, JobTimeout: 5 * time.Second})
	e.startIngestor(fastConfig())

	m := inbound(event.ChannelNetcore, "wamid.reopen", p, t0.Add(time.Hour))
	e.publish(m, "")
	e.drained(queue.StreamInbound, queue.ConsumerIngestor, 20*time.Second)

	c := e.conversation(p)
	if c.Status != "open" || c.Unread != 1 || c.Channel != event.ChannelNetcore {
		t.Errorf("conversation = status %q unread %d channel %q, want open/1/netcore", c.Status, c.Unread, c.Channel)
	}
	testenv.Eventually(t, 10*time.Second, func() bool {
		return e.count(`SELECT count(*) FROM conversations WHERE phone_number = $1 AND assigned_team = 'returns_refunds'`, p) == 1
	}, "assigned_team not set by the classify worker")
	var summary, team string
	if err := e.db.QueryRow(`SELECT summary, suggested_team FROM chat_messages WHERE external_message_id = 'wamid.reopen'`).Scan(&summary, &team); err != nil {
		t.Fatal(err)
	}
	if summary != "Customer wants a refund for a damaged item" || team != "returns_refunds" {
		t.Errorf("summary/team = %q/%q", summary, team)
	}
	testenv.Eventually(t, 5*time.Second, func() bool {
		for _, ev := range e.events(event.EventConversationUpdated) {
			if strings.HasPrefix(ev.ID, "classified:") && ev.Team == "returns_refunds" {
				return true
			}
		}
		return false
	}, "no conversation_updated event after classification")

	// A second message to the open conversation is not classified, and an assigned team stays.
	if _, err := e.db.Exec(`UPDATE conversations SET assigned_team = 'finance' WHERE phone_number = $1`, p); err != nil {
		t.Fatal(err)
	}
	e.publish(inbound(event.ChannelNetcore, "wamid.second", p, t0.Add(2*time.Hour)), "")
	e.drained(queue.StreamInbound, queue.ConsumerIngestor, 20*time.Second)
	time.Sleep(300 * time.Millisecond)
	if clf.calls != 1 {
		t.Errorf("classifier calls = %d, want 1 (only the reopening message)", clf.calls)
	}
	ev := e.events(event.EventNewMessage)
	if len(ev) != 2 || ev[1].Team != "finance" {
		t.Errorf("new_message events = %d (last team %q), want 2 with team finance", len(ev), ev[len(ev)-1].Team)
	}
}

// Delivery receipts only move forward; failed keeps its code and text; our echoed reference
// finds a message whose provider id was never stored.
func TestStatusOnlyMovesForward(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	var convID, msgID, refID string
	if err := e.db.QueryRow(`INSERT INTO conversations (phone_number, channel) VALUES ('919833334444', 'netcore') RETURNING id`).Scan(&convID); err != nil {
		t.Fatal(err)
	}
	if err := e.db.QueryRow(`INSERT INTO chat_messages (conversation_id, channel, external_message_id, direction, message_type, content, sender_type, status)
	                         VALUES ($1, 'netcore', 'nc-out-1', 'outbound', 'text', 'Your order ships today', 'agent', 'sent') RETURNING id`, convID).Scan(&msgID); err != nil {
		t.Fatal(err)
	}
	if err := e.db.QueryRow(`INSERT INTO chat_messages (conversation_id, channel, direction, message_type, content, sender_type, status)
	                         VALUES ($1, 'netcore', 'outbound', 'text', 'lost response', 'agent', 'pending') RETURNING id`, convID).Scan(&refID); err != nil {
		t.Fatal(err)
	}
	e.startIngestor(fastConfig())
	status := func() (s string, code, text *string) {
		if err := e.db.QueryRow(`SELECT status, error_code, error_text FROM chat_messages WHERE id = $1`, msgID).Scan(&s, &code, &text); err != nil {
			t.Fatal(err)
		}
		return
	}
	send := func(s *event.StatusUpdate) {
		e.publishStatus(s)
		e.drained(queue.StreamInbound, queue.ConsumerIngestor, 20*time.Second)
	}
	send(&event.StatusUpdate{Channel: "netcore", ExternalID: "nc-out-1", Status: "delivered", At: t0})
	send(&event.StatusUpdate{Channel: "netcore", ExternalID: "nc-out-1", Status: "read", At: t0.Add(time.Minute)})
	send(&event.StatusUpdate{Channel: "netcore", ExternalID: "nc-out-1", Status: "delivered", At: t0.Add(30 * time.Second)}) // late
	send(&event.StatusUpdate{Channel: "netcore", ExternalID: "nc-out-1", Status: "sent", At: t0})                            // later still
	if s, _, _ := status(); s != "read" {
		t.Fatalf("status after late delivered = %q, want read", s)
	}
	evs := e.events(event.EventMessageStatus)
	if got := ids(evs); len(got) != 2 || got[0] != "status:"+msgID+":delivered" || got[1] != "status:"+msgID+":read" {
		t.Errorf("message_status events = %v, want delivered and read only", got)
	}
	if d := dataOf[event.MessageData](t, evs[len(evs)-1]); d.Status != "read" || d.ConversationID != convID {
		t.Errorf("last event data = %+v", d)
	}

	send(&event.StatusUpdate{Channel: "netcore", ExternalID: "nc-out-1", Status: "failed", ErrorCode: "8007", ErrorText: "outside the 24-hour window", At: t0.Add(2 * time.Minute)})
	if s, code, text := status(); s != "failed" || code == nil || *code != "8007" || text == nil || *text != "outside the 24-hour window" {
		t.Errorf("after failed: status %q code %v text %v", s, code, text)
	}

	// The send response was lost: the receipt names our id and teaches us the provider's.
	send(&event.StatusUpdate{Channel: "netcore", ExternalID: "nc-out-2", Reference: refID, Status: "delivered", At: t0})
	var s, ext string
	if err := e.db.QueryRow(`SELECT status, external_message_id FROM chat_messages WHERE id = $1`, refID).Scan(&s, &ext); err != nil {
		t.Fatal(err)
	}
	if s != "delivered" || ext != "nc-out-2" {
		t.Errorf("by reference: status %q external id %q, want delivered/nc-out-2", s, ext)
	}
}

// A receipt that overtakes the sender's write is retried until its message exists; one for a
// message that never appears is dead-lettered with the reason.
func TestStatusForUnknownMessage(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	cfg := fastConfig()
	cfg.StatusRetryFor = 2 * time.Second
	e.startIngestor(cfg)

	e.publishStatus(&event.StatusUpdate{Channel: "interakt", ExternalID: "ik-late", Status: "read", At: t0})
	e.publishStatus(&event.StatusUpdate{Channel: "interakt", ExternalID: "ik-never", Status: "delivered", At: t0})
	time.Sleep(500 * time.Millisecond)
	var convID string
	if err := e.db.QueryRow(`INSERT INTO conversations (phone_number) VALUES ('919844445555') RETURNING id`).Scan(&convID); err != nil {
		t.Fatal(err)
	}
	if _, err := e.db.Exec(`INSERT INTO chat_messages (conversation_id, channel, external_message_id, direction, message_type, content, sender_type, status)
	                        VALUES ($1, 'interakt', 'ik-late', 'outbound', 'text', 'hi', 'agent', 'sent')`, convID); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 10*time.Second, func() bool {
		return e.count(`SELECT count(*) FROM chat_messages WHERE external_message_id = 'ik-late' AND status = 'read'`) == 1
	}, "late receipt not applied")
	testenv.Eventually(t, 10*time.Second, func() bool { return len(e.dlq(queue.SubjectDLQInbound)) == 1 }, "unknown receipt not dead-lettered")
	dl := e.dlq(queue.SubjectDLQInbound)[0]
	if reason := dl.Header.Get(queue.HeaderError); !strings.Contains(reason, "unknown outbound message") || !strings.Contains(reason, "ik-never") {
		t.Errorf("dead letter reason = %q", reason)
	}
	if dl.Header.Get(queue.HeaderSubject) != queue.InboundStatusSubject("interakt") {
		t.Errorf("dead letter subject header = %q", dl.Header.Get(queue.HeaderSubject))
	}
	e.drained(queue.StreamInbound, queue.ConsumerIngestor, 10*time.Second)
}

// The ingestor dies mid-batch — before its commit, or after the commit and before any event is
// published — and another one takes over: every message is stored once, every event and classify
// job exists exactly once.
func TestKilledMidBatchThenRestarted(t *testing.T) {
	t.Parallel()
	for _, when := range []string{"before commit", "after commit"} {
		t.Run(when, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			e.setConsumer(queue.StreamInbound, queue.ConsumerIngestor, func(c *jetstream.ConsumerConfig) { c.AckWait = time.Second })
			const phones, perPhone = 10, 3
			for i := 0; i < phones*perPhone; i++ {
				e.publish(inbound(event.ChannelInterakt, fmt.Sprintf("ik-%02d", i), phone(i%phones), t0.Add(time.Duration(i)*time.Second)), "")
			}

			cfg := fastConfig()
			cfg.Workers = 1
			cfg.BatchSize = 100
			first := e.newReplica(cfg)
			kill := func([]string) error { return fmt.Errorf("SIGKILL: %w", ingest.ErrKill) }
			if when == "before commit" {
				ingest.SetHooks(first.in, kill, nil)
			} else {
				ingest.SetHooks(first.in, nil, kill)
			}
			first.start(t)
			select {
			case <-first.done:
				if first.err == nil {
					t.Fatal("first ingestor stopped without dying")
				}
			case <-time.After(20 * time.Second):
				t.Fatal("first ingestor never reached the kill point")
			}
			first.nc.Close() // the process is gone

			wantRows := 0
			if when == "after commit" {
				wantRows = phones * perPhone
			}
			if got := e.count(`SELECT count(*) FROM chat_messages`); got != wantRows {
				t.Fatalf("rows after the kill = %d, want %d", got, wantRows)
			}
			if got := len(e.events("")); got != 0 {
				t.Fatalf("events after the kill = %d, want 0", got)
			}

			e.startIngestor(fastConfig())
			e.drained(queue.StreamInbound, queue.ConsumerIngestor, 30*time.Second)

			if got := e.count(`SELECT count(*) FROM chat_messages`); got != phones*perPhone {
				t.Errorf("rows = %d, want %d", got, phones*perPhone)
			}
			if got := e.count(`SELECT count(*) FROM conversations WHERE unread_count = $1`, perPhone); got != phones {
				t.Errorf("conversations with unread_count %d = %d, want %d", perPhone, got, phones)
			}
			newMsgs := e.events(event.EventNewMessage)
			if len(newMsgs) != phones*perPhone {
				t.Errorf("new_message events = %d, want %d", len(newMsgs), phones*perPhone)
			}
			seen := map[string]bool{}
			for _, ev := range newMsgs {
				if seen[ev.ID] {
					t.Errorf("event %s published twice", ev.ID)
				}
				seen[ev.ID] = true
			}
			// The redelivered messages may come back in one batch or several (they return as their
			// AckWait runs out); each batch that changes a conversation announces it once. What must
			// hold: every conversation announced, no event twice, and one announcement carries the
			// final state (two batches may publish in either order, so not necessarily the last).
			lastUnread := map[string]int{}
			updSeen := map[string]bool{}
			for _, ev := range e.events(event.EventConversationUpdated) {
				if updSeen[ev.ID] {
					t.Errorf("conversation_updated %s published twice", ev.ID)
				}
				updSeen[ev.ID] = true
				lastUnread[ev.ConversationID] = max(lastUnread[ev.ConversationID], dataOf[event.ConversationData](t, ev).UnreadCount)
			}
			if len(lastUnread) != phones {
				t.Errorf("conversation_updated events for %d conversations, want %d", len(lastUnread), phones)
			}
			for conv, n := range lastUnread {
				if n != perPhone {
					t.Errorf("no conversation_updated of %s carries the final unread_count %d (highest %d)", conv, perPhone, n)
				}
			}
			if got := len(e.streamMsgs(queue.StreamClassify)); got != phones {
				t.Errorf("classify jobs = %d, want %d (one per new conversation)", got, phones)
			}
		})
	}
}

// A batch holding undecodable and unstorable messages: those go to the DLQ with the error and
// delivery count, then are terminated; the rest of the batch is stored.
func TestPoisonMessagesDeadLetteredRestOfBatchStored(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	for i := 0; i < 3; i++ {
		e.publish(inbound(event.ChannelInterakt, fmt.Sprintf("good-%d", i), phone(i), t0), "")
	}
	e.publishRaw(queue.InboundMessageSubject("interakt"), []byte(`{"v":1,"channel":"interakt",`), "interakt:truncated")
	e.publishRaw(queue.InboundMessageSubject("netcore"), []byte(`{"v":2,"channel":"netcore","external_id":"x"}`), "netcore:future")
	bad := inbound(event.ChannelNetcore, "wamid.nul", phone(7), t0)
	bad.Payload = json.RawMessage(`{"text":"a\u0000b"}`) // valid JSON, refused by jsonb
	e.publish(bad, "")
	nul := inbound(event.ChannelNetcore, "wamid.nul-text", phone(8), t0)
	nul.Text = "hel\x00lo" // a NUL in text is dropped, the message kept
	e.publish(nul, "")
	for i := 3; i < 6; i++ {
		e.publish(inbound(event.ChannelInterakt, fmt.Sprintf("good-%d", i), phone(i), t0), "")
	}

	cfg := fastConfig()
	cfg.BatchSize = 100
	cfg.Workers = 1
	e.startIngestor(cfg)
	e.drained(queue.StreamInbound, queue.ConsumerIngestor, 20*time.Second)

	if got := e.count(`SELECT count(*) FROM chat_messages WHERE external_message_id LIKE 'good-%'`); got != 6 {
		t.Errorf("good rows = %d, want 6", got)
	}
	var content string
	if err := e.db.Get(&content, `SELECT content FROM chat_messages WHERE external_message_id = 'wamid.nul-text'`); err != nil || content != "hello" {
		t.Errorf("NUL text: content %q err %v", content, err)
	}
	dl := e.dlq(queue.SubjectDLQInbound)
	if len(dl) != 3 {
		t.Fatalf("dead letters = %d, want 3", len(dl))
	}
	byID := map[string]*jetstream.RawStreamMsg{}
	for _, m := range dl {
		byID[m.Header.Get("Nats-Msg-Id")] = m
		if m.Header.Get(queue.HeaderDelivered) != "1" || m.Header.Get(queue.HeaderStreamSeq) == "" {
			t.Errorf("dead letter %s headers: %v", m.Header.Get("Nats-Msg-Id"), m.Header)
		}
	}
	for id, want := range map[string]string{"interakt:truncated": "decode", "netcore:future": "unsupported wire version", "netcore:wamid.nul": "store"} {
		m := byID[id]
		if m == nil {
			t.Errorf("%s not dead-lettered", id)
			continue
		}
		if !strings.Contains(m.Header.Get(queue.HeaderError), want) {
			t.Errorf("%s error = %q, want it to mention %q", id, m.Header.Get(queue.HeaderError), want)
		}
	}
	if string(byID["interakt:truncated"].Data) != `{"v":1,"channel":"interakt",` {
		t.Error("dead letter body is not the original body")
	}
	// Nothing is redelivered afterwards.
	time.Sleep(1500 * time.Millisecond)
	if got := len(e.dlq(queue.SubjectDLQInbound)); got != 3 {
		t.Errorf("dead letters later = %d, want 3", got)
	}
}

// A message that keeps failing transiently until MaxDeliver is dead-lettered from the advisory;
// the messages after it are stored.
func TestMaxDeliverExhaustionDeadLettered(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.setConsumer(queue.StreamInbound, queue.ConsumerIngestor, func(c *jetstream.ConsumerConfig) { c.MaxDeliver = 2 })
	cfg := fastConfig()
	cfg.BatchSize = 1
	cfg.Workers = 1
	r := e.newReplica(cfg)
	ingest.SetHooks(r.in, func(ids []string) error {
		for _, id := range ids {
			if id == "doomed" {
				return &pq.Error{Code: "40001", Message: "could not serialize access (injected)"}
			}
		}
		return nil
	}, nil)
	r.start(t)
	e.publish(inbound(event.ChannelNetcore, "doomed", phone(1), t0), "")
	e.publish(inbound(event.ChannelNetcore, "fine", phone(2), t0), "")

	testenv.Eventually(t, 20*time.Second, func() bool { return len(e.dlq(queue.SubjectDLQInbound)) == 1 }, "exhausted message not dead-lettered")
	m := e.dlq(queue.SubjectDLQInbound)[0]
	if m.Header.Get("Nats-Msg-Id") != "netcore:doomed" || !strings.Contains(m.Header.Get(queue.HeaderError), "max deliveries") ||
		m.Header.Get(queue.HeaderDelivered) != "2" {
		t.Errorf("dead letter headers = %v", m.Header)
	}
	testenv.Eventually(t, 10*time.Second, func() bool {
		return e.count(`SELECT count(*) FROM chat_messages WHERE external_message_id = 'fine'`) == 1
	}, "message after the doomed one not stored")
	if got := e.count(`SELECT count(*) FROM chat_messages WHERE external_message_id = 'doomed'`); got != 0 {
		t.Errorf("doomed rows = %d", got)
	}
}

// A classifier that hangs (and ignores its context) does not slow storage: every message of 200
// new conversations is stored while the single classify worker is stuck, and the stuck job ends
// with the fallback.
func TestHangingClassifierDoesNotDelayIngest(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	hung := &hungClassifier{release: make(chan struct{})}
	t.Cleanup(func() { close(hung.release) })
	e.startClassifier(hung, ingest.ClassifyConfig{Concurrency: 1, JobTimeout: 3 * time.Second})
	e.startIngestor(fastConfig())

	const n = 200
	start := time.Now()
	for i := 0; i < n; i++ {
		e.publish(inbound(event.ChannelInterakt, fmt.Sprintf("h-%03d", i), phone(i), t0), "")
	}
	testenv.Eventually(t, 10*time.Second, func() bool {
		return e.count(`SELECT count(*) FROM chat_messages`) == n
	}, "messages not stored while the classifier hangs")
	took := time.Since(start)
	if got := e.count(`SELECT count(*) FROM chat_messages WHERE summary IS NOT NULL`); got > 1 {
		t.Errorf("%d messages classified already; the classifier was supposed to hang", got)
	}
	t.Logf("%d messages stored in %v with the classifier hung", n, took)

	// The first job gives up at the timeout and stores the fallback: first 200 characters, general.
	testenv.Eventually(t, 10*time.Second, func() bool {
		return e.count(`SELECT count(*) FROM chat_messages WHERE suggested_team = 'general' AND summary LIKE 'Where is my order h-%'`) >= 1
	}, "hung classification did not fall back")
	if got := e.count(`SELECT count(*) FROM conversations WHERE assigned_team = 'general'`); got < 1 {
		t.Errorf("no conversation assigned to general after the fallback")
	}
}

// Interakt rows fill the legacy interakt_message_id; a message already there under the legacy
// column is a duplicate; Netcore media keeps its provider id; types map onto the widened CHECK;
// the channel follows the latest inbound message even when messages arrive out of order.
func TestRowsLegacyDedupMediaAndChannel(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	const p = "919855556666"
	var convID string
	if err := e.db.QueryRow(`INSERT INTO conversations (phone_number, unread_count) VALUES ($1, 0) RETURNING id`, p).Scan(&convID); err != nil {
		t.Fatal(err)
	}
	// Written by the original system: legacy id only, no channel, no external_message_id.
	if _, err := e.db.Exec(`INSERT INTO chat_messages (conversation_id, interakt_message_id, direction, message_type, content, sender_type, created_at)
	                        VALUES ($1, 'legacy-1', 'inbound', 'text', 'old', 'customer', $2)`, convID, t0.Add(-time.Hour)); err != nil {
		t.Fatal(err)
	}
	e.startIngestor(fastConfig())

	e.publish(inbound(event.ChannelInterakt, "legacy-1", p, t0), "")
	e.drained(queue.StreamInbound, queue.ConsumerIngestor, 20*time.Second)
	if c := e.conversation(p); c.Unread != 0 {
		t.Errorf("legacy duplicate changed unread_count to %d", c.Unread)
	}
	if got := len(e.events("")); got != 0 {
		t.Errorf("legacy duplicate emitted %d events", got)
	}

	ik := inbound(event.ChannelInterakt, "ik-1", p, t0.Add(time.Minute))
	ik.Type = "Image"
	ik.Text = ""
	ik.Media = &event.Media{URL: "https://cdn.interakt.example/img.jpg", Caption: "broken lid"}
	nc := inbound(event.ChannelNetcore, "wamid.nc-1", p, t0.Add(2*time.Minute))
	nc.Type = event.TypeDocument
	nc.Media = &event.Media{ProviderMediaID: "f1d2d2f9-media", MimeType: "application/pdf", Filename: "invoice.pdf"}
	late := inbound(event.ChannelInterakt, "ik-0", p, t0.Add(30*time.Second)) // older than both
	late.Type = "button_reply"
	for _, m := range []*event.InboundMessage{ik, nc} {
		e.publish(m, "")
		e.drained(queue.StreamInbound, queue.ConsumerIngestor, 20*time.Second)
	}
	e.publish(late, "")
	e.drained(queue.StreamInbound, queue.ConsumerIngestor, 20*time.Second)

	type row struct {
		Ext, Channel, Type string
		IK, Media, Content *string
		Payload            *string
	}
	get := func(ext string) row {
		var r row
		if err := e.db.QueryRow(`SELECT external_message_id, channel, message_type, interakt_message_id, media_url, content, provider_payload::text
		                           FROM chat_messages WHERE external_message_id = $1`, ext).
			Scan(&r.Ext, &r.Channel, &r.Type, &r.IK, &r.Media, &r.Content, &r.Payload); err != nil {
			t.Fatalf("%s: %v", ext, err)
		}
		return r
	}
	if r := get("ik-1"); r.IK == nil || *r.IK != "ik-1" || r.Type != "image" || *r.Media != "https://cdn.interakt.example/img.jpg" || *r.Content != "broken lid" {
		t.Errorf("interakt image row = %+v", r)
	}
	if r := get("wamid.nc-1"); r.IK != nil || r.Type != "document" || r.Media == nil || *r.Media != "netcore-media:f1d2d2f9-media" || r.Payload == nil {
		t.Errorf("netcore document row = %+v", r)
	} else if id, ok := ingest.NetcoreMediaID(*r.Media); !ok || id != "f1d2d2f9-media" {
		t.Errorf("NetcoreMediaID(%q) = %q, %v", *r.Media, id, ok)
	}
	if r := get("ik-0"); r.Type != "unknown" {
		t.Errorf("unknown wire type stored as %q, want unknown", r.Type)
	}
	c := e.conversation(p)
	if c.Channel != event.ChannelNetcore {
		t.Errorf("channel = %q, want netcore: a late, older Interakt message must not move it", c.Channel)
	}
	if c.Unread != 3 || c.LastAt == nil || !c.LastAt.Equal(t0.Add(2*time.Minute)) {
		t.Errorf("unread %d last %v, want 3 and %v", c.Unread, c.LastAt, t0.Add(2*time.Minute))
	}
	if c.Name == nil || *c.Name != "Asha" {
		t.Errorf("customer_name = %v, want the customer's name filled in", c.Name)
	}
}

// Stopping the ingestor with a context returns promptly and leaves nothing unacknowledged.
func TestGracefulStop(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	r := e.startIngestor(fastConfig())
	for i := 0; i < 20; i++ {
		e.publish(inbound(event.ChannelInterakt, fmt.Sprintf("s-%d", i), phone(i), t0), "")
	}
	e.drained(queue.StreamInbound, queue.ConsumerIngestor, 20*time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- r.stop() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run returned %v after a clean stop", err)
		}
	case <-ctx.Done():
		t.Fatal("ingestor did not stop within 5s")
	}
}
