package reply

import (
	"encoding/json"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chatwire/chatwire/pkg/event"
	"github.com/chatwire/chatwire/pkg/provider/interakt"
	"github.com/chatwire/chatwire/pkg/provider/netcore"
	"github.com/chatwire/chatwire/pkg/testenv"
)

func TestReplySentThroughConversationChannel(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 0)
	e.start(e.config(), nil)
	ik := e.conversation(event.ChannelInterakt, "support")
	nc := e.conversation(event.ChannelNetcore, "")
	c1, c2 := e.command(ik, "Your order ships today."), e.command(nc, "Refund issued.")
	e.publish(c1, c1.CommandID)
	e.publish(c2, c2.CommandID)

	r1 := e.waitStatus(c1.CommandID, event.StatusSent)
	r2 := e.waitStatus(c2.CommandID, event.StatusSent)
	if r1.Direction != "outbound" || r1.SenderType != "agent" || r1.AgentID.String != "agent-7" ||
		r1.SenderName.String != "Ravi" || r1.Channel.String != "interakt" || r1.Content.String != "Your order ships today." {
		t.Fatalf("interakt row %+v", r1)
	}
	ikReq := e.interakt.Requests()
	if len(ikReq) != 1 || ikReq[0].Body.CallbackData != r1.ID || r1.ExternalMessageID.String != ikReq[0].ID || r1.LegacyID.String != ikReq[0].ID {
		t.Fatalf("interakt: callbackData/external id mismatch: row %+v, requests %+v", r1, ikReq)
	}
	ncReq := e.netcore.Requests()
	if len(ncReq) != 1 || ncReq[0].Body.Message[0].XAPIHeader != r2.ID || r2.ExternalMessageID.String != ncReq[0].ID {
		t.Fatalf("netcore: x-apiheader/ncmessage_id mismatch: row %+v", r2)
	}
	if r2.LegacyID.Valid {
		t.Fatalf("netcore row filled interakt_message_id")
	}

	e.drained()
	evs := e.events(ik)
	if countEvents(evs, event.EventNewMessage) != 1 || strings.Join(statusEvents(t, evs), ",") != "sent" {
		t.Fatalf("events %+v", evs)
	}
	for _, ev := range evs {
		if ev.Team != "support" || ev.ConversationID != ik {
			t.Fatalf("event %+v: want team support on conversation %s", ev, ik)
		}
	}
	if d := eventData(t, evs[0]); evs[0].Event != event.EventNewMessage || d.Status != event.StatusPending || d.ID != r1.ID {
		t.Fatalf("first event %+v %+v, want new_message pending", evs[0], d)
	}
}

func TestSameCommandThreeTimesSendsOnce(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 0)
	e.start(e.config(), nil)
	conv := e.conversation(event.ChannelInterakt, "sales")
	cmd := e.command(conv, "Hello again")
	// Once as documented (Nats-Msg-Id = command_id) and twice without, so the stream really holds
	// three copies and the sender's own idempotency is what stops the duplicates.
	e.publish(cmd, cmd.CommandID)
	e.publish(cmd, "")
	e.publish(cmd, "")

	r := e.waitStatus(cmd.CommandID, event.StatusSent)
	e.drained()
	if n := e.interakt.Calls(); n != 1 {
		t.Fatalf("provider called %d times, want 1", n)
	}
	if rows := e.rows(conv); len(rows) != 1 {
		t.Fatalf("%d rows, want 1", len(rows))
	}
	evs := e.events(conv)
	if countEvents(evs, event.EventNewMessage) != 1 || strings.Join(statusEvents(t, evs), ",") != "sent" {
		t.Fatalf("events: %d new_message, statuses %v", countEvents(evs, event.EventNewMessage), statusEvents(t, evs))
	}
	if r.ExternalMessageID.String == "" {
		t.Fatal("no external id")
	}
	dups := 0
	for len(e.outcomes) > 0 {
		if o := <-e.outcomes; o.Result == ResultDuplicate {
			dups++
		}
	}
	if dups != 2 {
		t.Fatalf("%d deliveries settled as duplicates, want 2 (the stream held three copies)", dups)
	}
}

func TestUnavailableTwiceThenSentOnce(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 0)
	e.interakt.Enqueue(interakt.FakeUnavailable, interakt.FakeUnavailable)
	e.start(e.config(), nil)
	conv := e.conversation(event.ChannelInterakt, "")
	cmd := e.command(conv, "retry me")
	e.publish(cmd, cmd.CommandID)

	r := e.waitStatus(cmd.CommandID, event.StatusSent)
	e.drained()
	if n := e.interakt.Calls(); n != 3 {
		t.Fatalf("provider called %d times, want 3 (503, 503, 200)", n)
	}
	if n := e.interakt.AcceptedFor(r.ID); n != 1 {
		t.Fatalf("accepted %d times, want 1", n)
	}
	var p struct{ Send sendState }
	_ = json.Unmarshal(r.Payload, &p)
	if p.Send.Attempts != 3 || p.Send.Outcome != outcomeAccepted {
		t.Fatalf("bookkeeping %+v", p.Send)
	}
	if got := strings.Join(statusEvents(t, e.events(conv)), ","); got != "sent" {
		t.Fatalf("status events %q, want sent", got)
	}
}

func TestRateLimitedHonoursRetryAfter(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 0)
	e.netcore.Enqueue(netcore.FakeRateLimited) // Retry-After: 1
	e.start(e.config(), nil)
	conv := e.conversation(event.ChannelNetcore, "")
	cmd := e.command(conv, "slow down")
	e.publish(cmd, cmd.CommandID)
	e.waitStatus(cmd.CommandID, event.StatusSent)
	reqs := e.netcore.Requests()
	if len(reqs) != 2 {
		t.Fatalf("%d requests, want 2", len(reqs))
	}
	if gap := reqs[1].At.Sub(reqs[0].At); gap < 900*time.Millisecond {
		t.Fatalf("retried after %v, Retry-After said 1s", gap)
	}
}

func TestOutsideWindowFailsWithoutRetry(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 0)
	e.netcore.Enqueue(netcore.FakeOutsideWindow)
	e.start(e.config(), nil)
	conv := e.conversation(event.ChannelNetcore, "support")
	cmd := e.command(conv, "too late")
	e.publish(cmd, cmd.CommandID)

	r := e.waitStatus(cmd.CommandID, event.StatusFailed)
	if r.ErrorCode.String != "8007" || !strings.Contains(r.ErrorText.String, "24 hours") {
		t.Fatalf("failed with %q %q, want 8007 and Netcore's reason", r.ErrorCode.String, r.ErrorText.String)
	}
	e.drained()
	time.Sleep(300 * time.Millisecond) // longer than the test backoff: a retry would have happened
	if n := e.netcore.Calls(); n != 1 {
		t.Fatalf("provider called %d times, want 1 (no retry)", n)
	}
	evs := e.events(conv)
	if got := strings.Join(statusEvents(t, evs), ","); got != "failed" {
		t.Fatalf("status events %q", got)
	}
	if d := eventData(t, evs[len(evs)-1]); d.ErrorCode != "8007" {
		t.Fatalf("event carries %+v", d)
	}
}

func TestWindowErrorInteraktFails(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 0)
	e.interakt.Enqueue(interakt.FakeWindowClosed)
	e.start(e.config(), nil)
	conv := e.conversation(event.ChannelInterakt, "")
	cmd := e.command(conv, "too late")
	e.publish(cmd, cmd.CommandID)
	r := e.waitStatus(cmd.CommandID, event.StatusFailed)
	if r.ErrorCode.String != interakt.CodeWindowClosed || e.interakt.Calls() != 1 {
		t.Fatalf("row %+v, calls %d", r, e.interakt.Calls())
	}
}

func TestMissingCredentialsFailsThatChannelOnly(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 0)
	cfg := e.config()
	delete(cfg.Senders, event.ChannelNetcore)
	e.start(cfg, nil)
	nc := e.conversation(event.ChannelNetcore, "finance")
	ik := e.conversation(event.ChannelInterakt, "finance")
	c1, c2 := e.command(nc, "via netcore"), e.command(ik, "via interakt")
	e.publish(c1, c1.CommandID)
	e.publish(c2, c2.CommandID)

	r := e.waitStatus(c1.CommandID, event.StatusFailed)
	if r.ErrorText.String != "channel netcore is not configured" || r.ErrorCode.String != "channel_not_configured" {
		t.Fatalf("reason %q %q", r.ErrorCode.String, r.ErrorText.String)
	}
	e.waitStatus(c2.CommandID, event.StatusSent)
	e.drained()
	if e.netcore.Calls() != 0 || e.interakt.Calls() != 1 {
		t.Fatalf("calls netcore %d interakt %d", e.netcore.Calls(), e.interakt.Calls())
	}
	evs := e.events(nc)
	if got := strings.Join(statusEvents(t, evs), ","); got != "failed" {
		t.Fatalf("agent not told: status events %q", got)
	}
	if d := eventData(t, evs[len(evs)-1]); d.ErrorText != "channel netcore is not configured" {
		t.Fatalf("event %+v", d)
	}
}

// The sender dies after Interakt accepted the message and before the row says so. Interakt's
// delivery webhook carries callbackData = our row id, so the ingestor moves the row to sent; the
// restarted sender, finding the attempt in doubt, waits for that receipt and sends nothing.
func TestCrashAfterProviderAcceptedNoSecondSend(t *testing.T) {
	t.Parallel()
	e := newEnv(t, time.Second)
	cfg := e.config()
	cfg.ReconcileWait = 4 * time.Second
	var crashed atomic.Bool
	stop := e.start(cfg, func(string) bool { return crashed.CompareAndSwap(false, true) })
	conv := e.conversation(event.ChannelInterakt, "")
	cmd := e.command(conv, "crash test")
	e.publish(cmd, cmd.CommandID)

	testenv.Eventually(t, 10*time.Second, func() bool { return crashed.Load() }, "never reached the provider")
	stop() // the process is gone; its connection with it
	r, _ := e.rowFor(cmd.CommandID)
	if r.Status.String != event.StatusPending {
		t.Fatalf("row %q after the crash, want pending", r.Status.String)
	}

	e.start(cfg, nil) // restart
	// The restarted sender sees the command again after AckWait and waits for a receipt.
	testenv.Eventually(t, 10*time.Second, func() bool {
		for {
			select {
			case o := <-e.outcomes:
				if o.Result == ResultReconcile {
					return true
				}
			default:
				return false
			}
		}
	}, "restarted sender never saw the command in doubt")
	// Interakt's message_api_sent webhook arrives; the ingestor matches callbackData = row id.
	accepted := e.interakt.Requests()[0]
	if _, err := e.db.Exec(`UPDATE chat_messages SET status = 'sent', status_at = now(), external_message_id = $2
		WHERE id = $1 AND status = 'pending'`, accepted.Body.CallbackData, accepted.ID); err != nil {
		t.Fatal(err)
	}
	e.drained()
	if n := e.interakt.Calls(); n != 1 {
		t.Fatalf("provider called %d times, want 1", n)
	}
	if got := strings.Join(statusEvents(t, e.events(conv)), ","); got != "sent" {
		t.Fatalf("status events %q, want the sent status re-emitted once", got)
	}
}

// The remaining at-least-once window, documented in docs/replies.md: if the provider accepted the
// message but no receipt reaches the row within ReconcileWait, the restarted sender sends again.
func TestCrashWithoutReceiptSendsAgainAfterReconcileWait(t *testing.T) {
	t.Parallel()
	e := newEnv(t, time.Second)
	cfg := e.config()
	cfg.ReconcileWait = 1500 * time.Millisecond
	var crashed atomic.Bool
	stop := e.start(cfg, func(string) bool { return crashed.CompareAndSwap(false, true) })
	conv := e.conversation(event.ChannelInterakt, "")
	cmd := e.command(conv, "crash test")
	e.publish(cmd, cmd.CommandID)
	testenv.Eventually(t, 10*time.Second, func() bool { return crashed.Load() }, "never reached the provider")
	stop()

	e.start(cfg, nil)
	r := e.waitStatus(cmd.CommandID, event.StatusSent)
	if n := e.interakt.AcceptedFor(r.ID); n != 2 {
		t.Fatalf("accepted %d times; this test documents the window where it is 2", n)
	}
	if rows := e.rows(conv); len(rows) != 1 {
		t.Fatalf("%d rows, want 1", len(rows))
	}
}

// A response lost after Netcore took the message (504 from a proxy) is in doubt, like a crash: the
// delivery receipt with x-apiheader settles it and nothing is sent twice.
func TestAmbiguousFailureWaitsForReceipt(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 0)
	e.netcore.Enqueue(netcore.FakeReply{Status: http.StatusGatewayTimeout, Body: `{}`, AcceptThenFail: true})
	cfg := e.config()
	cfg.ReconcileWait = 2 * time.Second
	e.start(cfg, nil)
	conv := e.conversation(event.ChannelNetcore, "")
	cmd := e.command(conv, "lost answer")
	e.publish(cmd, cmd.CommandID)
	testenv.Eventually(t, 10*time.Second, func() bool { return e.netcore.Calls() == 1 }, "no call")
	time.Sleep(200 * time.Millisecond)
	req := e.netcore.Requests()[0]
	if _, err := e.db.Exec(`UPDATE chat_messages SET status = 'delivered', status_at = now(), external_message_id = $2
		WHERE id = $1`, req.Body.Message[0].XAPIHeader, req.ID); err != nil {
		t.Fatal(err)
	}
	e.drained()
	if n := e.netcore.Calls(); n != 1 {
		t.Fatalf("provider called %d times, want 1", n)
	}
	if r, _ := e.rowFor(cmd.CommandID); r.Status.String != event.StatusDelivered {
		t.Fatalf("status %q: the receipt's delivered must stand", r.Status.String)
	}
}

func TestRetryDeadlineFailsTheReply(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 0)
	for i := 0; i < 100; i++ {
		e.interakt.Enqueue(interakt.FakeUnavailable)
	}
	cfg := e.config()
	cfg.RetryDeadline = time.Second
	e.start(cfg, nil)
	conv := e.conversation(event.ChannelInterakt, "")
	cmd := e.command(conv, "never")
	e.publish(cmd, cmd.CommandID)
	r := e.waitStatus(cmd.CommandID, event.StatusFailed)
	if r.ErrorCode.String != "http_503" || !strings.Contains(r.ErrorText.String, "gave up after") {
		t.Fatalf("failed with %q %q", r.ErrorCode.String, r.ErrorText.String)
	}
	e.drained()
	if n := e.interakt.AcceptedFor(r.ID); n != 0 {
		t.Fatal("accepted")
	}
}

func TestUnknownConversationAndBadCommandsAreDeadLettered(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 0)
	e.start(e.config(), nil)
	e.publish(e.command("7b7e3f0e-5d6a-4c1e-9a53-0d9f3c1b2a11", "nobody"), "")
	e.publishRaw([]byte(`{"v":1,"command_id":"x","conversation_id":"7b7e3f0e-5d6a-4c1e-9a53-0d9f3c1b2a11"}`), "")
	e.publishRaw([]byte(`not json`), "")
	e.publish(e.command("not-a-uuid", "bad id"), "")
	e.drained()
	got := e.dlq()
	if len(got) != 4 {
		t.Fatalf("dead letters %q, want 4", got)
	}
	want := []string{"not found", "needs text or media.url", "invalid reply command", "is not a uuid"}
	for _, w := range want {
		found := false
		for _, g := range got {
			found = found || strings.Contains(g, w)
		}
		if !found {
			t.Errorf("no dead letter saying %q in %q", w, got)
		}
	}
	if e.interakt.Calls()+e.netcore.Calls() != 0 {
		t.Fatal("provider called")
	}
}

func TestMediaReplies(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 0)
	e.start(e.config(), nil)
	nc := e.conversation(event.ChannelNetcore, "")
	ik := e.conversation(event.ChannelInterakt, "")
	c1 := e.command(nc, "")
	c1.Media = &event.Media{URL: "https://cdn.example/label.png", MimeType: "image/png", Caption: "your label"}
	c2 := e.command(ik, "")
	c2.Media = &event.Media{URL: "https://cdn.example/invoice.pdf", MimeType: "application/pdf", Filename: "invoice.pdf"}
	e.publish(c1, c1.CommandID)
	e.publish(c2, c2.CommandID)
	r1 := e.waitStatus(c1.CommandID, event.StatusSent)
	r2 := e.waitStatus(c2.CommandID, event.StatusSent)
	if r1.MessageType != event.TypeImage || r1.MediaURL.String != c1.Media.URL || r1.Content.String != "your label" {
		t.Fatalf("image row %+v", r1)
	}
	if r2.MessageType != event.TypeDocument || r2.MediaURL.String != c2.Media.URL {
		t.Fatalf("document row %+v", r2)
	}
	a := e.netcore.Requests()[0].Body.Message[0]
	if a.MessageType != netcore.SendTypeMedia || a.TypeMedia[0].Attachment.AttachmentURL != c1.Media.URL {
		t.Fatalf("netcore body %+v", a)
	}
	b := e.interakt.Requests()[0].Body
	if b.Type != interakt.SendTypeDocument || b.Data.MediaURL != c2.Media.URL || b.Data.FileName != "invoice.pdf" {
		t.Fatalf("interakt body %+v", b)
	}
}

func TestRateLimitPerProvider(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 0)
	cfg := e.config()
	cfg.RatePerMin = map[string]int{event.ChannelInterakt: 600} // 10/s, burst 1
	e.start(cfg, nil)
	conv := e.conversation(event.ChannelInterakt, "")
	for i := 0; i < 12; i++ {
		c := e.command(conv, "burst")
		e.publish(c, c.CommandID)
	}
	e.drained()
	reqs := e.interakt.Requests()
	if len(reqs) != 12 {
		t.Fatalf("%d requests", len(reqs))
	}
	if span := reqs[len(reqs)-1].At.Sub(reqs[0].At); span < 1000*time.Millisecond {
		t.Fatalf("12 sends at 10/s took %v, want ≥ 1.1s", span)
	}
}

func TestBackoffGrowsAndHonoursRetryAfter(t *testing.T) {
	w := New(nil, nil, testenv.Discard(), Config{RetryBase: 100 * time.Millisecond, RetryMax: time.Second})
	for attempt, hi := range map[int]time.Duration{1: 100 * time.Millisecond, 2: 200 * time.Millisecond, 3: 400 * time.Millisecond, 10: time.Second} {
		for i := 0; i < 50; i++ {
			d := w.backoff(attempt, 0)
			if d < hi/2 || d > hi {
				t.Fatalf("attempt %d: %v outside [%v, %v]", attempt, d, hi/2, hi)
			}
		}
	}
	if d := w.backoff(1, 5*time.Second); d != 5*time.Second {
		t.Fatalf("Retry-After ignored: %v", d)
	}
}
