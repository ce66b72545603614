package agentapi

import (
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/chatwire/chatwire/pkg/event"
	"github.com/chatwire/chatwire/pkg/notify"
	"github.com/chatwire/chatwire/pkg/queue"
)

type convPage = page[event.ConversationData]
type msgPage = page[event.MessageData]

func TestAuthRefused(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	id := e.conv("support", "open", nil, 0)
	other, err := notify.MintHS256([]byte("another-secret-another-secret-0123456789"), "x", "", nil, "agent", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	for name, c := range map[string]struct {
		header string
		want   string
	}{
		"no header":      {"", "no token"},
		"basic auth":     {"Basic YWdlbnQ6cHc=", "Bearer <token>"},
		"empty bearer":   {"Bearer ", "Bearer <token>"},
		"garbage":        {"Bearer not-a-jwt", "token malformed"},
		"other secret":   {"Bearer " + other, "signature invalid"},
		"token in query": {"", "no token"},
	} {
		for _, p := range []struct{ method, path string }{
			{"GET", "/api/conversations"},
			{"GET", "/api/conversations/" + id},
			{"GET", "/api/conversations/" + id + "/messages"},
			{"POST", "/api/conversations/" + id + "/replies"},
			{"POST", "/api/conversations/" + id + "/read"},
			{"PATCH", "/api/conversations/" + id},
			{"GET", "/api/nope"},
		} {
			path := p.path
			if name == "token in query" {
				path += "?token=" + url.QueryEscape(token(t, "a1", "admin"))
			}
			req, _ := http.NewRequest(p.method, e.url+path, strings.NewReader(`{"text":"hi","status":"resolved"}`))
			if c.header != "" {
				req.Header.Set("Authorization", c.header)
			}
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			r := resp{code: res.StatusCode, header: res.Header}
			r.body = readAll(res)
			if r.code != http.StatusUnauthorized || !strings.Contains(r.errMsg(), c.want) {
				t.Errorf("%s %s %s: %d %s, want 401 mentioning %q", name, p.method, p.path, r.code, r.body, c.want)
			}
			if !strings.HasPrefix(r.header.Get("WWW-Authenticate"), "Bearer") {
				t.Errorf("%s: no WWW-Authenticate header", name)
			}
		}
	}
	// Nothing was changed or queued by the refused requests.
	if n := e.streamMsgs(queue.StreamReplies); n != 0 {
		t.Errorf("REPLIES holds %d commands after refused requests", n)
	}
	var status string
	if err := e.db.Get(&status, `SELECT status FROM conversations WHERE id = $1`, id); err != nil || status != "open" {
		t.Errorf("conversation status %q (%v), want open", status, err)
	}
}

func TestTeamVisibility(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	now := time.Now().UTC().Truncate(time.Microsecond)
	support := e.conv("support", "open", ptr(now.Add(-time.Minute)), 1)
	supportCased := e.conv(" Support", "open", ptr(now.Add(-2*time.Minute)), 0) // legacy spelling
	sales := e.conv("sales", "open", ptr(now.Add(-3*time.Minute)), 2)
	unassigned := e.conv("", "open", ptr(now.Add(-4*time.Minute)), 1)
	e.msg(sales, "inbound", now.Add(-3*time.Minute), "sales question")

	listed := func(tok string) []string {
		r := e.do("GET", "/api/conversations", tok, nil)
		expect(t, r, 200, "")
		var ids []string
		for _, c := range decode[convPage](t, r).Items {
			ids = append(ids, c.ID)
		}
		return ids
	}
	supportTok := token(t, "s1", "agent", "support")
	if got, want := listed(supportTok), []string{support, supportCased}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("support agent lists %v, want %v", got, want)
	}
	if got, want := listed(token(t, "g1", "agent", "general")), []string{unassigned}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("general agent lists %v, want %v (unassigned conversations)", got, want)
	}
	if got, want := listed(token(t, "m1", "agent", "SALES", "support")), []string{support, supportCased, sales}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("sales+support agent lists %v, want %v", got, want)
	}
	if got := listed(token(t, "n1", "agent")); len(got) != 0 {
		t.Errorf("agent without teams lists %v, want nothing", got)
	}
	if got, want := listed(token(t, "a1", "admin")), []string{support, supportCased, sales, unassigned}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("admin lists %v, want %v", got, want)
	}

	// Team B's conversation is invisible to team A's agent on every endpoint: 404, nothing changed.
	for _, p := range []struct {
		method, path string
		body         any
	}{
		{"GET", "/api/conversations/" + sales, nil},
		{"GET", "/api/conversations/" + sales + "/messages", nil},
		{"POST", "/api/conversations/" + sales + "/replies", map[string]string{"text": "hi", "command_id": "vis-1"}},
		{"POST", "/api/conversations/" + sales + "/read", nil},
		{"PATCH", "/api/conversations/" + sales, map[string]string{"status": "resolved"}},
		{"GET", "/api/conversations/" + unassigned, nil},
		{"GET", "/api/conversations/00000000-0000-0000-0000-000000000001", nil}, // does not exist: same answer
	} {
		expect(t, e.do(p.method, p.path, supportTok, p.body), 404, "conversation not found")
	}
	var unread int
	var status string
	if err := e.db.QueryRow(`SELECT unread_count, status FROM conversations WHERE id = $1`, sales).Scan(&unread, &status); err != nil {
		t.Fatal(err)
	}
	if unread != 2 || status != "open" {
		t.Errorf("sales conversation after refused calls: unread %d status %s, want 2 open", unread, status)
	}
	if n := e.streamMsgs(queue.StreamReplies); n != 0 {
		t.Errorf("REPLIES holds %d commands, want 0", n)
	}
	if evs := e.events(sales); len(evs) != 0 {
		t.Errorf("events for the invisible conversation: %+v", evs)
	}

	// The owning team reads it.
	salesTok := token(t, "b1", "agent", "sales")
	c := decode[event.ConversationData](t, e.do("GET", "/api/conversations/"+sales, salesTok, nil))
	if c.ID != sales || c.AssignedTeam != "sales" || c.UnreadCount != 2 || c.Channel != "interakt" || c.LastMessageAt == nil {
		t.Errorf("conversation = %+v", c)
	}
	ms := decode[msgPage](t, e.do("GET", "/api/conversations/"+sales+"/messages", salesTok, nil))
	if len(ms.Items) != 1 || ms.Items[0].Content != "sales question" || ms.Items[0].Direction != "inbound" || ms.NextCursor != "" {
		t.Errorf("messages = %+v", ms)
	}
}

func TestConversationPagination(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	base := time.Date(2026, 2, 23, 10, 0, 0, 0, time.UTC)
	type row struct {
		id   string
		last *time.Time
	}
	var all []row
	for i := 0; i < 23; i++ {
		var last *time.Time
		switch {
		case i%7 == 3:
			// no messages yet: listed after every conversation with activity
		case i%3 == 0:
			last = ptr(base.Add(time.Minute)) // ties: ordered by id
		default:
			last = ptr(base.Add(time.Duration(i) * time.Second))
		}
		status := "open"
		if i%5 == 4 {
			status = "resolved"
		}
		all = append(all, row{e.conv("support", status, last, i), last})
	}
	// Expected order: last_message_at desc, NULLs last, then id desc.
	sort.Slice(all, func(i, j int) bool {
		a, b := all[i], all[j]
		if (a.last == nil) != (b.last == nil) {
			return b.last == nil
		}
		if a.last != nil && !a.last.Equal(*b.last) {
			return a.last.After(*b.last)
		}
		return a.id > b.id
	})
	want := make([]string, len(all))
	for i, r := range all {
		want[i] = r.id
	}

	tok := token(t, "s1", "agent", "support")
	walk := func(query string, limit int) []string {
		var got []string
		cursor := ""
		for pages := 0; ; pages++ {
			if pages > 30 {
				t.Fatal("pagination does not end")
			}
			q := fmt.Sprintf("/api/conversations?limit=%d%s", limit, query)
			if cursor != "" {
				q += "&before=" + url.QueryEscape(cursor)
			}
			r := e.do("GET", q, tok, nil)
			expect(t, r, 200, "")
			p := decode[convPage](t, r)
			if len(p.Items) > limit {
				t.Fatalf("page of %d items, limit %d", len(p.Items), limit)
			}
			for _, c := range p.Items {
				got = append(got, c.ID)
			}
			if p.NextCursor == "" {
				return got
			}
			if len(p.Items) != limit {
				t.Fatalf("short page of %d with a next cursor", len(p.Items))
			}
			cursor = p.NextCursor
		}
	}
	for _, limit := range []int{1, 4, 23, 50} {
		if got := walk("", limit); strings.Join(got, ",") != strings.Join(want, ",") {
			t.Errorf("limit %d: order\n got %v\nwant %v", limit, got, want)
		}
	}
	// The status filter paginates the same way.
	var resolved []string
	if err := e.db.Select(&resolved, `SELECT id FROM conversations WHERE status = 'resolved'`); err != nil {
		t.Fatal(err)
	}
	var wantResolved []string
	for _, id := range want {
		for _, r := range resolved {
			if r == id {
				wantResolved = append(wantResolved, id)
			}
		}
	}
	if got := walk("&status=resolved", 2); strings.Join(got, ",") != strings.Join(wantResolved, ",") {
		t.Errorf("resolved: got %v, want %v", got, wantResolved)
	}
	if got := walk("&status=archived", 10); len(got) != 0 {
		t.Errorf("archived: got %v, want none", got)
	}

	// Bad parameters name themselves.
	for q, field := range map[string]string{
		"limit=0":     "limit",
		"limit=201":   "limit",
		"limit=abc":   "limit",
		"status=nope": "status",
		"before=xyz":  "before",
		"before=" + (cursor{kind: "m", at: base, id: all[0].id}).String(): "before", // a message cursor
	} {
		expect(t, e.do("GET", "/api/conversations?"+q, tok, nil), 400, field)
	}
}

func TestMessagePagination(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	conv := e.conv("support", "open", nil, 0)
	otherConv := e.conv("support", "open", nil, 0)
	base := time.Date(2026, 2, 23, 10, 0, 0, 0, time.UTC)
	type row struct {
		id string
		at time.Time
	}
	var all []row
	for i := 0; i < 23; i++ {
		at := base.Add(time.Duration(i) * time.Second)
		if i%4 == 0 {
			at = base.Add(time.Hour) // same provider time: ordered by id
		}
		dir := "inbound"
		if i%3 == 0 {
			dir = "outbound"
		}
		// Inserted out of order: history sorts by provider time, not arrival.
		all = append(all, row{e.msg(conv, dir, at, fmt.Sprintf("m%d", i)), at})
	}
	e.msg(otherConv, "inbound", base, "another conversation")
	sort.Slice(all, func(i, j int) bool {
		if !all[i].at.Equal(all[j].at) {
			return all[i].at.After(all[j].at)
		}
		return all[i].id > all[j].id
	})
	tok := token(t, "s1", "agent", "support")
	for _, limit := range []int{1, 5, 23, 200} {
		var got []string
		cursor := ""
		for pages := 0; pages < 30; pages++ {
			q := fmt.Sprintf("/api/conversations/%s/messages?limit=%d", conv, limit)
			if cursor != "" {
				q += "&before=" + cursor
			}
			r := e.do("GET", q, tok, nil)
			expect(t, r, 200, "")
			p := decode[msgPage](t, r)
			for _, m := range p.Items {
				if m.ConversationID != conv || m.Channel != "interakt" || m.MessageType != "text" || m.SenderType == "" {
					t.Fatalf("message %+v", m)
				}
				got = append(got, m.ID)
			}
			if cursor = p.NextCursor; cursor == "" {
				break
			}
		}
		if len(got) != len(all) {
			t.Fatalf("limit %d: %d messages, want %d", limit, len(got), len(all))
		}
		for i := range all {
			if got[i] != all[i].id {
				t.Fatalf("limit %d: position %d is %s, want %s", limit, i, got[i], all[i].id)
			}
		}
	}
	expect(t, e.do("GET", "/api/conversations/"+conv+"/messages?before=bm90LWEtY3Vyc29y", tok, nil), 400, "before")
	expect(t, e.do("GET", "/api/conversations/not-a-uuid/messages", tok, nil), 400, "id")
}

func TestReplyPublishesOnce(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	conv := e.conv("support", "open", nil, 0)
	other := e.conv("support", "open", nil, 0)
	tok := token(t, "agent-7", "agent", "support")
	path := "/api/conversations/" + conv + "/replies"

	body := map[string]any{"command_id": "crm-4711", "text": "Your order ships today."}
	r := e.do("POST", path, tok, body)
	expect(t, r, 202, "")
	if got := decode[replyAccepted](t, r); got.CommandID != "crm-4711" {
		t.Fatalf("answer %s", r.body)
	}
	if n := e.streamMsgs(queue.StreamReplies); n != 1 {
		t.Fatalf("REPLIES holds %d commands, want 1", n)
	}
	s, err := e.js.Stream(ctxT(t), queue.StreamReplies)
	if err != nil {
		t.Fatal(err)
	}
	m, err := s.GetMsg(ctxT(t), 1)
	if err != nil {
		t.Fatal(err)
	}
	cmd, err := event.Decode[event.ReplyCommand](m.Data)
	if err != nil {
		t.Fatal(err)
	}
	if m.Subject != queue.SubjectReplies || m.Header.Get(jetstream.MsgIDHeader) != "crm-4711" ||
		cmd.CommandID != "crm-4711" || cmd.ConversationID != conv || cmd.Text != "Your order ships today." ||
		cmd.AgentID != "agent-7" || cmd.SenderName != "Agent agent-7" || cmd.Media != nil {
		t.Fatalf("published %s %v %+v", m.Subject, m.Header, cmd)
	}

	// The same command again: the same 202, and nothing more in REPLIES.
	r = e.do("POST", path, tok, body)
	expect(t, r, 202, "")
	if got := decode[replyAccepted](t, r); got.CommandID != "crm-4711" {
		t.Fatalf("repeat answered %s", r.body)
	}
	if n := e.streamMsgs(queue.StreamReplies); n != 1 {
		t.Fatalf("after a repeat REPLIES holds %d commands, want 1", n)
	}
	// The same id for another reply would silently never be sent: 409.
	expect(t, e.do("POST", path, tok, map[string]any{"command_id": "crm-4711", "text": "something else"}), 409, "command_id")
	expect(t, e.do("POST", "/api/conversations/"+other+"/replies", tok, body), 409, "another conversation")

	// Once the sender has stored the command (and consumed it from the work queue), reusing the
	// id in another conversation is still refused.
	if _, err := e.db.Exec(`INSERT INTO chat_messages (conversation_id, direction, message_type, content, sender_type, command_id)
		VALUES ($1, 'outbound', 'text', 'done', 'agent', 'crm-stored')`, conv); err != nil {
		t.Fatal(err)
	}
	expect(t, e.do("POST", "/api/conversations/"+other+"/replies", tok, map[string]any{"command_id": "crm-stored", "text": "x"}), 409, "command_id")

	// Without command_id the API picks one (a ULID) and returns it; media goes through.
	r = e.do("POST", path, tok, map[string]any{"media": map[string]string{
		"url": "https://cdn.example.com/invoice.pdf", "mime_type": "application/pdf", "filename": "invoice.pdf", "caption": "Your invoice"}})
	expect(t, r, 202, "")
	gen := decode[replyAccepted](t, r).CommandID
	if len(gen) != 26 {
		t.Fatalf("generated command_id %q, want a ULID", gen)
	}
	m, err = s.GetMsg(ctxT(t), 2)
	if err != nil {
		t.Fatal(err)
	}
	cmd, err = event.Decode[event.ReplyCommand](m.Data)
	if err != nil || cmd.CommandID != gen || m.Header.Get(jetstream.MsgIDHeader) != gen || cmd.Media == nil ||
		cmd.Media.URL != "https://cdn.example.com/invoice.pdf" || cmd.Media.Filename != "invoice.pdf" || cmd.Media.Caption != "Your invoice" {
		t.Fatalf("published %+v %+v (%v)", cmd, cmd.Media, err)
	}
	if n := e.streamMsgs(queue.StreamReplies); n != 2 {
		t.Fatalf("REPLIES holds %d commands, want 2", n)
	}

	// Validation: 400 naming the field, nothing published.
	for name, c := range map[string]struct {
		body  any
		field string
	}{
		"empty body":      {"", "body"},
		"not json":        {"{text:", "body"},
		"array":           {"[]", "body"},
		"no text":         {map[string]any{}, "text"},
		"blank text":      {map[string]any{"text": "   "}, "text"},
		"text too long":   {map[string]any{"text": strings.Repeat("é", 4097)}, "text"},
		"text not string": {`{"text": 5}`, "text"},
		"NUL in text":     {map[string]any{"text": "a\x00b"}, "text"},
		"unknown field":   {map[string]any{"text": "hi", "txt": "hi"}, "txt"},
		"media no url":    {map[string]any{"media": map[string]string{"caption": "c"}}, "media.url"},
		"media bad url":   {map[string]any{"media": map[string]string{"url": "file:///etc/passwd"}}, "media.url"},
		"media bad mime":  {map[string]any{"media": map[string]string{"url": "https://x.example/a", "mime_type": "pdf"}}, "media.mime_type"},
		"long caption":    {map[string]any{"media": map[string]string{"url": "https://x.example/a", "caption": strings.Repeat("a", 1025)}}, "media.caption"},
		"text as caption": {map[string]any{"text": strings.Repeat("a", 1025), "media": map[string]string{"url": "https://x.example/a"}}, "text"},
		"bad command_id":  {map[string]any{"text": "hi", "command_id": "a b\r\nX: y"}, "command_id"},
		"long command_id": {map[string]any{"text": "hi", "command_id": strings.Repeat("a", 129)}, "command_id"},
		"trailing data":   {`{"text":"hi"} {"text":"again"}`, "body"},
		"too large":       {`{"text":"` + strings.Repeat("a", 70000) + `"}`, "body"},
	} {
		r := e.do("POST", path, tok, c.body)
		if r.code != 400 || !strings.Contains(r.errMsg(), c.field) {
			t.Errorf("%s: %d %q, want 400 naming %s", name, r.code, r.errMsg(), c.field)
		}
	}
	expect(t, e.do("POST", "/api/conversations/nope/replies", tok, body), 400, "id")
	if n := e.streamMsgs(queue.StreamReplies); n != 2 {
		t.Fatalf("after refused replies REPLIES holds %d commands, want 2", n)
	}
}

// TestReplyJetStreamDown: without a PubAck the agent gets 503 and may retry with the same id.
func TestReplyJetStreamDown(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *Config) { c.Timeout = time.Second })
	conv := e.conv("support", "open", nil, 0)
	tok := token(t, "s1", "agent", "support")
	e.nats.Stop()
	r := e.do("POST", "/api/conversations/"+conv+"/replies", tok, map[string]any{"command_id": "down-1", "text": "hi"})
	expect(t, r, 503, "down-1")

	// The same PATCH answers 503 too: the change is saved, its event is not published yet …
	r = e.do("PATCH", "/api/conversations/"+conv, tok, map[string]any{"status": "resolved"})
	expect(t, r, 503, "retry")
	e.nats.Restart()
	// … and the retry publishes it.
	waitConnected(t, e)
	r = e.do("POST", "/api/conversations/"+conv+"/replies", tok, map[string]any{"command_id": "down-1", "text": "hi"})
	expect(t, r, 202, "")
	r = e.do("PATCH", "/api/conversations/"+conv, tok, map[string]any{"status": "resolved"})
	expect(t, r, 200, "")
	if evs := e.events(conv); len(evs) != 1 || evs[0].Event != event.EventConversationUpdated {
		t.Fatalf("events after the retried PATCH: %+v", evs)
	}
}

func waitConnected(t *testing.T, e *env) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if _, err := e.js.AccountInfo(ctxT(t)); err == nil {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatal("JetStream did not come back")
}

func TestMarkRead(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	now := time.Now().UTC()
	conv := e.conv("support", "open", ptr(now), 3)
	for i := 0; i < 3; i++ {
		e.msg(conv, "inbound", now.Add(time.Duration(i)*time.Second), "question")
	}
	e.msg(conv, "outbound", now, "answer")
	tok := token(t, "s1", "agent", "support")

	r := e.do("POST", "/api/conversations/"+conv+"/read", tok, nil)
	expect(t, r, 200, "")
	c := decode[event.ConversationData](t, r)
	if c.ID != conv || c.UnreadCount != 0 {
		t.Fatalf("answer %+v", c)
	}
	var unread, unreadMsgs int
	if err := e.db.QueryRow(`SELECT unread_count, (SELECT count(*) FROM chat_messages WHERE conversation_id = $1 AND direction = 'inbound' AND NOT is_read)
		FROM conversations WHERE id = $1`, conv).Scan(&unread, &unreadMsgs); err != nil {
		t.Fatal(err)
	}
	if unread != 0 || unreadMsgs != 0 {
		t.Fatalf("after read: unread_count %d, unread inbound messages %d", unread, unreadMsgs)
	}
	var outboundRead bool
	if err := e.db.Get(&outboundRead, `SELECT is_read FROM chat_messages WHERE conversation_id = $1 AND direction = 'outbound'`, conv); err != nil || outboundRead {
		t.Errorf("outbound message is_read = %v (%v), want untouched", outboundRead, err)
	}
	evs := e.events(conv)
	if len(evs) != 1 {
		t.Fatalf("events: %+v, want one conversation_updated", evs)
	}
	ev := evs[0]
	wantID := fmt.Sprintf("conv:%s:read:%d", conv, c.UpdatedAt.UnixNano())
	if ev.Event != event.EventConversationUpdated || ev.ConversationID != conv || ev.Team != "support" || ev.ID != wantID {
		t.Fatalf("event %+v, want conversation_updated %s team support", ev, wantID)
	}
	data := decodeRaw[event.ConversationData](t, ev.Data)
	if data.UnreadCount != 0 || data.ID != conv || data.Status != "open" {
		t.Fatalf("event data %+v", data)
	}

	// Reading again changes nothing and emits nothing new (same event id, dropped by JetStream).
	r = e.do("POST", "/api/conversations/"+conv+"/read", tok, nil)
	expect(t, r, 200, "")
	if again := decode[event.ConversationData](t, r); !again.UpdatedAt.Equal(c.UpdatedAt) {
		t.Errorf("second read moved updated_at %v → %v", c.UpdatedAt, again.UpdatedAt)
	}
	if evs := e.events(conv); len(evs) != 1 {
		t.Fatalf("after a second read: %d events, want 1", len(evs))
	}
	// A new inbound message makes it unread again; the next read is a new event.
	if _, err := e.db.Exec(`UPDATE conversations SET unread_count = unread_count + 1, updated_at = now() WHERE id = $1`, conv); err != nil {
		t.Fatal(err)
	}
	e.msg(conv, "inbound", now.Add(time.Minute), "again")
	expect(t, e.do("POST", "/api/conversations/"+conv+"/read", tok, nil), 200, "")
	if evs := e.events(conv); len(evs) != 2 || decodeRaw[event.ConversationData](t, evs[1].Data).UnreadCount != 0 {
		t.Fatalf("after the third read: %+v", evs)
	}

	// An unassigned conversation's event carries team "" (delivered to general).
	un := e.conv("", "open", ptr(now), 1)
	expect(t, e.do("POST", "/api/conversations/"+un+"/read", token(t, "g1", "agent", "general"), nil), 200, "")
	if evs := e.events(un); len(evs) != 1 || evs[0].Team != "" {
		t.Fatalf("unassigned read events %+v", evs)
	}
}

func TestPatchConversation(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	conv := e.conv("support", "open", nil, 0)
	tok := token(t, "s1", "agent", "support")
	path := "/api/conversations/" + conv

	r := e.do("PATCH", path, tok, map[string]any{"status": "resolved"})
	expect(t, r, 200, "")
	c := decode[event.ConversationData](t, r)
	if c.Status != "resolved" || c.AssignedTeam != "support" {
		t.Fatalf("answer %+v", c)
	}
	var status string
	var updated time.Time
	if err := e.db.QueryRow(`SELECT status, updated_at FROM conversations WHERE id = $1`, conv).Scan(&status, &updated); err != nil {
		t.Fatal(err)
	}
	if status != "resolved" || !updated.Equal(c.UpdatedAt) {
		t.Fatalf("row: %s %v, answer %v", status, updated, c.UpdatedAt)
	}
	evs := e.events(conv)
	if len(evs) != 1 || evs[0].Event != event.EventConversationUpdated || evs[0].Team != "support" ||
		decodeRaw[event.ConversationData](t, evs[0].Data).Status != "resolved" {
		t.Fatalf("events %+v", evs)
	}
	// The same PATCH again: no change, no new event.
	expect(t, e.do("PATCH", path, tok, map[string]any{"status": "resolved"}), 200, "")
	if evs := e.events(conv); len(evs) != 1 {
		t.Fatalf("after a no-op PATCH: %d events", len(evs))
	}

	// Validation: 400 naming the field, nothing changed.
	for name, c := range map[string]struct {
		body  any
		field string
	}{
		"unknown status":    {map[string]any{"status": "closed"}, "status"},
		"null status":       {`{"status": null}`, "status"},
		"status not string": {`{"status": 5}`, "status"},
		"unknown team":      {map[string]any{"assigned_team": "marketing"}, "assigned_team"},
		"team not string":   {`{"assigned_team": ["sales"]}`, "assigned_team"},
		"agent control":     {map[string]any{"assigned_agent": "a\nb"}, "assigned_agent"},
		"agent too long":    {map[string]any{"assigned_agent": strings.Repeat("a", 201)}, "assigned_agent"},
		"nothing":           {map[string]any{}, "nothing to change"},
		"unknown field":     {map[string]any{"state": "open"}, "state"},
		"empty":             {"", "body"},
	} {
		r := e.do("PATCH", path, tok, c.body)
		if r.code != 400 || !strings.Contains(r.errMsg(), c.field) {
			t.Errorf("%s: %d %q, want 400 naming %s", name, r.code, r.errMsg(), c.field)
		}
	}
	expect(t, e.do("PATCH", "/api/conversations/123", tok, map[string]any{"status": "open"}), 400, "id")
	if evs := e.events(conv); len(evs) != 1 {
		t.Fatalf("after refused PATCHes: %d events", len(evs))
	}

	// Reassign: the event carries the new team, and the conversation leaves the old team's view.
	r = e.do("PATCH", path, tok, map[string]any{"status": "Open", "assigned_team": "Sales", "assigned_agent": "agent-9"})
	expect(t, r, 200, "")
	c = decode[event.ConversationData](t, r)
	if c.Status != "open" || c.AssignedTeam != "sales" || c.AssignedAgent != "agent-9" {
		t.Fatalf("answer %+v", c)
	}
	evs = e.events(conv)
	if len(evs) != 2 || evs[1].Team != "sales" || evs[1].ID != fmt.Sprintf("conv:%s:update:%d", conv, c.UpdatedAt.UnixNano()) {
		t.Fatalf("events %+v", evs)
	}
	expect(t, e.do("GET", path, tok, nil), 404, "")
	salesTok := token(t, "b1", "agent", "sales")
	expect(t, e.do("GET", path, salesTok, nil), 200, "")

	// Unassign: back to triage (team general), assigned_agent cleared with null.
	r = e.do("PATCH", path, salesTok, `{"assigned_team": "", "assigned_agent": null}`)
	expect(t, r, 200, "")
	c = decode[event.ConversationData](t, r)
	if c.AssignedTeam != "" || c.AssignedAgent != "" {
		t.Fatalf("answer %+v", c)
	}
	var team, agent *string
	if err := e.db.QueryRow(`SELECT assigned_team, assigned_agent FROM conversations WHERE id = $1`, conv).Scan(&team, &agent); err != nil || team != nil || agent != nil {
		t.Fatalf("row team %v agent %v (%v), want NULLs", team, agent, err)
	}
	if evs := e.events(conv); len(evs) != 3 || evs[2].Team != "" {
		t.Fatalf("events %+v", evs)
	}
	expect(t, e.do("GET", path, token(t, "g1", "agent", "general"), nil), 200, "")
}

func TestUnavailableWithoutDatabase(t *testing.T) {
	t.Parallel()
	e := echo.New()
	MountUnavailable(e, "DATABASE_URL is not configured")
	for _, p := range []string{"/api", "/api/conversations", "/api/conversations/x/replies"} {
		rec := serve(e, "GET", p, nil)
		if rec.Code != 503 || !strings.Contains(rec.Body.String(), `"error":"DATABASE_URL is not configured"`) ||
			!strings.HasPrefix(rec.Header().Get("Content-Type"), "application/json") {
			t.Errorf("%s: %d %s", p, rec.Code, rec.Body)
		}
	}
}

func TestCORSPreflight(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	conv := e.conv("support", "open", nil, 0)
	pre := func(origin string) *http.Response {
		req, _ := http.NewRequest("OPTIONS", e.url+"/api/conversations/"+conv+"/replies", nil)
		req.Header.Set("Origin", origin)
		req.Header.Set("Access-Control-Request-Method", "POST")
		req.Header.Set("Access-Control-Request-Headers", "authorization, content-type")
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		readAll(res)
		return res
	}
	res := pre("https://agents.example.com")
	if res.StatusCode != 204 || res.Header.Get("Access-Control-Allow-Origin") != "https://agents.example.com" ||
		!strings.Contains(res.Header.Get("Access-Control-Allow-Headers"), "Authorization") {
		t.Fatalf("allowed preflight: %d %v", res.StatusCode, res.Header)
	}
	if res := pre("https://evil.example.net"); res.StatusCode != 403 || res.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Fatalf("foreign preflight: %d %v", res.StatusCode, res.Header)
	}
	req, _ := http.NewRequest("GET", e.url+"/api/conversations", nil)
	req.Header.Set("Origin", "https://agents.example.com")
	req.Header.Set("Authorization", "Bearer "+token(t, "s1", "agent", "support"))
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	readAll(res)
	if res.StatusCode != 200 || res.Header.Get("Access-Control-Allow-Origin") != "https://agents.example.com" {
		t.Fatalf("GET with origin: %d %v", res.StatusCode, res.Header)
	}
}
