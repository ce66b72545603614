package store_test

import (
	"database/sql"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/chatwire/chatwire/pkg/store"
	"github.com/chatwire/chatwire/pkg/testenv"
)

func TestColumnsOf(t *testing.T) {
	t.Parallel()
	got := store.ConversationColumnsOf("c")
	want := "c.id, c.phone_number, c.customer_name, c.status, c.assigned_team, c.assigned_agent, c.channel, " +
		"c.last_message_at, c.unread_count, c.created_at, c.updated_at"
	if got != want {
		t.Errorf("ConversationColumnsOf(c) = %q, want %q", got, want)
	}
	m := store.MessageColumnsOf("m")
	if !strings.HasPrefix(m, "m.id, m.conversation_id, ") || !strings.HasSuffix(m, ", m.created_at") ||
		strings.ContainsAny(m, "\n\t") || strings.Count(m, "m.") != strings.Count(store.MessageColumns, ",")+1 {
		t.Errorf("MessageColumnsOf(m) = %q", m)
	}
}

// TestRowsScanAndData reads rows the way the ingestor, sender and agent API do — with a session
// time zone other than UTC, to show Data normalises — and checks what agents receive: NULL columns
// omitted, times in UTC, and a caller's struct that embeds MessageRow next to its own columns.
func TestRowsScanAndData(t *testing.T) {
	t.Parallel()
	ctx := testenv.Context(t, time.Minute)
	d := testenv.DB(t)
	conn, err := d.Connx(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, `SET TIME ZONE 'Asia/Kolkata'`); err != nil {
		t.Fatal(err)
	}
	var convID string
	if err := conn.GetContext(ctx, &convID, `INSERT INTO conversations (phone_number, channel, assigned_team)
		VALUES ('919800000001', 'interakt', 'billing') RETURNING id`); err != nil {
		t.Fatal(err)
	}
	var bareID, fullID string
	if err := conn.GetContext(ctx, &bareID, `INSERT INTO chat_messages (conversation_id, direction, message_type, sender_type, created_at)
		VALUES ($1, 'inbound', 'text', 'customer', '2024-05-01 10:00:00+00') RETURNING id`, convID); err != nil {
		t.Fatal(err)
	}
	if err := conn.GetContext(ctx, &fullID, `INSERT INTO chat_messages (conversation_id, direction, message_type, content,
		media_url, channel, external_message_id, sender_type, sender_name, agent_id, status, status_at, error_code,
		error_text, summary, suggested_team, command_id, created_at)
		VALUES ($1, 'outbound', 'image', 'hi', 'https://x/y.png', 'interakt', 'ik-1', 'agent', 'Ravi', 'a-7', 'failed',
		'2024-05-01 10:00:05+00', '8007', 'window closed', 'sum', 'sales', 'cmd-1', '2024-05-01 10:00:01+00')
		RETURNING id`, convID); err != nil {
		t.Fatal(err)
	}

	var bare store.MessageRow
	if err := conn.GetContext(ctx, &bare, `SELECT `+store.MessageColumns+` FROM chat_messages WHERE id = $1`, bareID); err != nil {
		t.Fatalf("scanning MessageColumns: %v", err)
	}
	if _, off := bare.CreatedAt.Zone(); off == 0 {
		t.Fatal("the session time zone did not apply: the UTC check below proves nothing")
	}
	b, _ := json.Marshal(bare.Data())
	wantBare := `{"id":"` + bareID + `","conversation_id":"` + convID + `","direction":"inbound","message_type":"text",` +
		`"content":"","channel":"","sender_type":"customer","created_at":"2024-05-01T10:00:00Z"}`
	if string(b) != wantBare {
		t.Errorf("bare message:\n got %s\nwant %s", b, wantBare)
	}

	// A caller's row: MessageRow embedded, its own columns next to it, the join qualified.
	var full struct {
		store.MessageRow
		CommandID sql.NullString `db:"command_id"`
		Phone     string         `db:"phone_number"`
		Team      string         `db:"team"`
	}
	err = conn.GetContext(ctx, &full, `SELECT `+store.MessageColumnsOf("m")+`, m.command_id, c.phone_number,
		c.assigned_team AS team FROM chat_messages m JOIN conversations c ON c.id = m.conversation_id WHERE m.id = $1`, fullID)
	if err != nil {
		t.Fatalf("scanning an embedding struct: %v", err)
	}
	if full.CommandID.String != "cmd-1" || full.Phone != "919800000001" || full.Team != "billing" || full.ID != fullID {
		t.Errorf("embedding struct: %+v", full)
	}
	md := full.Data()
	if md.StatusAt == nil || md.StatusAt.Location() != time.UTC || !md.StatusAt.Equal(time.Date(2024, 5, 1, 10, 0, 5, 0, time.UTC)) {
		t.Errorf("status_at = %v, want 10:00:05 UTC", md.StatusAt)
	}
	b, _ = json.Marshal(md)
	wantFull := `{"id":"` + fullID + `","conversation_id":"` + convID + `","direction":"outbound","message_type":"image",` +
		`"content":"hi","media_url":"https://x/y.png","channel":"interakt","external_message_id":"ik-1",` +
		`"sender_type":"agent","sender_name":"Ravi","agent_id":"a-7","status":"failed",` +
		`"status_at":"2024-05-01T10:00:05Z","error_code":"8007","error_text":"window closed","summary":"sum",` +
		`"suggested_team":"sales","created_at":"2024-05-01T10:00:01Z"}`
	if string(b) != wantFull {
		t.Errorf("full message:\n got %s\nwant %s", b, wantFull)
	}

	var conv store.ConversationRow
	if err := conn.GetContext(ctx, &conv, `SELECT `+store.ConversationColumns+` FROM conversations WHERE id = $1`, convID); err != nil {
		t.Fatalf("scanning ConversationColumns: %v", err)
	}
	cd := conv.Data()
	if cd.LastMessageAt != nil || cd.CustomerName != "" || cd.AssignedTeam != "billing" || cd.Status != "open" ||
		cd.CreatedAt.Location() != time.UTC || cd.UpdatedAt.Location() != time.UTC {
		t.Errorf("conversation data: %+v", cd)
	}
	if _, err := conn.ExecContext(ctx, `UPDATE conversations SET last_message_at = '2024-05-01 10:00:01+00', customer_name = 'Asha' WHERE id = $1`, convID); err != nil {
		t.Fatal(err)
	}
	if err := conn.GetContext(ctx, &conv, `UPDATE conversations c SET unread_count = 2 WHERE c.id = $1 RETURNING `+store.ConversationColumnsOf("c"), convID); err != nil {
		t.Fatalf("scanning qualified ConversationColumns: %v", err)
	}
	b, _ = json.Marshal(conv.Data())
	if !strings.Contains(string(b), `"customer_name":"Asha"`) || !strings.Contains(string(b), `"last_message_at":"2024-05-01T10:00:01Z"`) ||
		!strings.Contains(string(b), `"unread_count":2`) || strings.Contains(string(b), "assigned_agent") {
		t.Errorf("conversation JSON: %s", b)
	}
}
