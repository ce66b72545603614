package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/jmoiron/sqlx"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/chatwire/chatwire/pkg/event"
	"github.com/chatwire/chatwire/pkg/gateway"
	"github.com/chatwire/chatwire/pkg/notify"
	"github.com/chatwire/chatwire/pkg/provider/interakt"
	"github.com/chatwire/chatwire/pkg/queue"
	"github.com/chatwire/chatwire/pkg/testenv"
)

const (
	webhookSecret = "e2e-webhook-secret"
	interaktKey   = "e2e-interakt-key"
)

// startProcess runs a chatwire binary until the test ends, then stops it with SIGTERM and
// checks that it exits cleanly.
func startProcess(t *testing.T, name string, env map[string]string) string {
	t.Helper()
	addr := testenv.FreeAddr(t)
	cmd := exec.Command(filepath.Join(binaries(t), name))
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HTTP_ADDR=" + addr, "LOG_FORMAT=json", "LOG_LEVEL=debug"}
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	out := &testenv.Buffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", name, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case err := <-exited:
			if err != nil {
				t.Errorf("%s did not exit cleanly on SIGTERM: %v", name, err)
			}
		case <-time.After(20 * time.Second):
			_ = cmd.Process.Kill()
			t.Errorf("%s still running 20s after SIGTERM", name)
		}
		if t.Failed() {
			t.Logf("--- %s output ---\n%s", name, out.String())
		}
	})
	testenv.WaitReady(t, addr, 30*time.Second, func() string { return name + " output:\n" + out.String() })
	return addr
}

type wsClient struct {
	t      *testing.T
	conn   *websocket.Conn
	frames chan map[string]any
}

func dialWS(t *testing.T, ctx context.Context, addr, token string) *wsClient {
	t.Helper()
	conn, resp, err := websocket.Dial(ctx, "ws://"+addr+"/ws", &websocket.DialOptions{
		HTTPHeader: http.Header{"Authorization": []string{"Bearer " + token}},
	})
	if err != nil {
		t.Fatalf("dial /ws: %v (response %v)", err, resp)
	}
	t.Cleanup(func() { conn.CloseNow() })
	c := &wsClient{t: t, conn: conn, frames: make(chan map[string]any, 256)}
	go func() {
		defer close(c.frames)
		for {
			_, data, err := conn.Read(ctx)
			if err != nil {
				return
			}
			var f map[string]any
			if json.Unmarshal(data, &f) == nil {
				c.frames <- f
			}
		}
	}()
	return c
}

// next returns the first frame for which match is true, skipping others.
func (c *wsClient) next(d time.Duration, what string, match func(map[string]any) bool) map[string]any {
	c.t.Helper()
	timeout := time.After(d)
	for {
		select {
		case f, ok := <-c.frames:
			if !ok {
				c.t.Fatalf("socket closed while waiting for %s", what)
			}
			if match(f) {
				return f
			}
		case <-timeout:
			c.t.Fatalf("no %s within %v", what, d)
		}
	}
}

func isEvent(name string) func(map[string]any) bool {
	return func(f map[string]any) bool { return f["event"] == name }
}

func postWebhook(t *testing.T, addr, body string) int {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, "http://"+addr+"/webhooks/interakt", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(gateway.InteraktSignatureHeader, gateway.SignInterakt(webhookSecret, []byte(body)))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("posting webhook: %v", err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// TestSystemEndToEnd runs the four real binaries against real PostgreSQL and NATS and follows a
// customer message from the provider's webhook to the agent's socket, classification, the agent's
// reply through the provider, and the provider's delivery receipt back to the agent.
func TestSystemEndToEnd(t *testing.T) {
	ns := testenv.StartNATS(t)
	_, js := ns.JetStream(t)
	dbURL := testenv.DatabaseURL(t)
	db := testenv.Open(t, dbURL)
	fake := interakt.NewFake(interaktKey)
	t.Cleanup(fake.Close)
	jwtSecret := strings.Repeat("e2e-secret-", 4)

	env := map[string]string{
		"NATS_URL": ns.URL, "DATABASE_URL": dbURL, "JWT_SECRET": jwtSecret,
		"INTERAKT_WEBHOOK_SECRET": webhookSecret,
		"INTERAKT_API_URL":        fake.URL, "INTERAKT_API_KEY": interaktKey,
	}
	gw := startProcess(t, "gateway", env)
	startProcess(t, "ingestor", env)
	startProcess(t, "sender", env)
	nt := startProcess(t, "notifier", env)

	ctx := testenv.Context(t, 2*time.Minute)
	adminTok, err := notify.MintHS256([]byte(jwtSecret), "admin-1", "Admin", nil, notify.RoleAdmin, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	dispatchTok, _ := notify.MintHS256([]byte(jwtSecret), "agent-7", "Ravi", []string{"dispatch"}, notify.RoleAgent, time.Hour)
	salesTok, _ := notify.MintHS256([]byte(jwtSecret), "agent-9", "Meera", []string{"sales"}, notify.RoleAgent, time.Hour)
	admin := dialWS(t, ctx, nt, adminTok)
	dispatch := dialWS(t, ctx, nt, dispatchTok)
	sales := dialWS(t, ctx, nt, salesTok)
	for _, c := range []*wsClient{admin, dispatch, sales} {
		c.next(10*time.Second, "hello", isEvent(event.EventHello))
	}

	// 1. A customer writes through Interakt.
	inbound := `{"version":"1.0","timestamp":"2026-02-23T10:15:02.123Z","type":"message_received",
	  "data":{"customer":{"id":"c1","channel_phone_number":"919876543210","phone_number":"9876543210",
	  "country_code":"+91","traits":{"name":"Asha"}},"message":{"id":"e2e-inbound-1",
	  "chat_message_type":"CustomerMessage","received_at_utc":"2026-02-23T10:15:01.000000",
	  "message_content_type":"Text","message":"Where is my order? It was supposed to be delivered yesterday.","media_url":null}}}`
	if code := postWebhook(t, gw, inbound); code != http.StatusOK {
		t.Fatalf("webhook answered %d, want 200", code)
	}
	nm := admin.next(20*time.Second, "new_message", isEvent(event.EventNewMessage))
	convID, _ := nm["conversation_id"].(string)
	data, _ := nm["data"].(map[string]any)
	if convID == "" || data["content"] != "Where is my order? It was supposed to be delivered yesterday." || data["direction"] != "inbound" {
		t.Fatalf("new_message frame: %v", nm)
	}
	if seq, _ := nm["seq"].(float64); seq <= 0 {
		t.Errorf("new_message without a positive seq: %v", nm)
	}

	// 2. Classified off the ingest path: routed to dispatch, and the dispatch agent hears of it.
	upd := dispatch.next(30*time.Second, "conversation_updated for dispatch", func(f map[string]any) bool {
		return f["event"] == event.EventConversationUpdated && f["team"] == "dispatch"
	})
	if upd["conversation_id"] != convID {
		t.Fatalf("conversation_updated for %v, want %s", upd["conversation_id"], convID)
	}
	var row struct {
		Summary, SuggestedTeam, AssignedTeam string
		Unread                               int
	}
	if err := db.QueryRow(`SELECT coalesce(m.summary,''), coalesce(m.suggested_team,''), coalesce(c.assigned_team,''), c.unread_count
		FROM chat_messages m JOIN conversations c ON c.id = m.conversation_id WHERE m.external_message_id = 'e2e-inbound-1'`).
		Scan(&row.Summary, &row.SuggestedTeam, &row.AssignedTeam, &row.Unread); err != nil {
		t.Fatal(err)
	}
	if row.SuggestedTeam != "dispatch" || row.AssignedTeam != "dispatch" || row.Summary == "" || row.Unread != 1 {
		t.Errorf("after classification: %+v", row)
	}

	// 3. The provider retries the same webhook: still one row, one conversation.
	if code := postWebhook(t, gw, inbound); code != http.StatusOK {
		t.Fatalf("repeated webhook answered %d", code)
	}

	// 4. The agent replies (a ReplyCommand on replies.send, as other services publish it).
	cmd := event.ReplyCommand{CommandID: "e2e-cmd-1", ConversationID: convID, Text: "It ships today.", AgentID: "agent-7", SenderName: "Ravi"}
	b, _ := event.Encode(&cmd)
	if _, err := js.Publish(ctx, queue.SubjectReplies, b, jetstream.WithMsgID(cmd.CommandID)); err != nil {
		t.Fatal(err)
	}
	sent := dispatch.next(30*time.Second, "message_status sent", func(f map[string]any) bool {
		d, _ := f["data"].(map[string]any)
		return f["event"] == event.EventMessageStatus && d["status"] == event.StatusSent
	})
	outID := sent["data"].(map[string]any)["id"].(string)
	reqs := fake.Requests()
	if len(reqs) != 1 {
		t.Fatalf("provider called %d times, want 1", len(reqs))
	}
	if reqs[0].Body.FullPhoneNumber != "919876543210" || reqs[0].Body.CallbackData != outID {
		t.Errorf("provider request: phone %q callbackData %q (row %s)", reqs[0].Body.FullPhoneNumber, reqs[0].Body.CallbackData, outID)
	}

	// 5. Interakt reports delivery; the agent sees it, and the row moves forward.
	delivered := fmt.Sprintf(`{"version":"1.0","timestamp":"2026-02-23T13:00:03.000Z","type":"message_api_delivered",
	  "data":{"customer":{"id":"c1","channel_phone_number":"919876543210","phone_number":"9876543210","country_code":"+91"},
	  "message":{"id":%q,"chat_message_type":"PublicApiMessage","message_status":"Delivered",
	  "received_at_utc":"2026-02-23T13:00:00.000000","delivered_at_utc":"2026-02-23T13:00:02.000000",
	  "meta_data":{"source":"PublicAPI","source_data":{"callback_data":%q}}}}}`, reqs[0].ID, outID)
	if code := postWebhook(t, gw, delivered); code != http.StatusOK {
		t.Fatalf("status webhook answered %d", code)
	}
	dispatch.next(30*time.Second, "message_status delivered", func(f map[string]any) bool {
		d, _ := f["data"].(map[string]any)
		return f["event"] == event.EventMessageStatus && d["status"] == event.StatusDelivered && d["id"] == outID
	})

	assertCount(t, db, 2, `SELECT count(*) FROM chat_messages WHERE conversation_id = $1`, convID)
	assertCount(t, db, 1, `SELECT count(*) FROM conversations`)
	assertCount(t, db, 1, `SELECT count(*) FROM chat_messages WHERE id = $1 AND status = 'delivered' AND direction = 'outbound' AND command_id = 'e2e-cmd-1'`, outID)

	// The sales agent saw none of it.
	for {
		select {
		case f := <-sales.frames:
			if f["conversation_id"] == convID {
				t.Errorf("sales agent received an event of a dispatch conversation: %v", f)
			}
			continue
		default:
		}
		break
	}
}

func assertCount(t *testing.T, db *sqlx.DB, want int, q string, args ...any) {
	t.Helper()
	var n int
	if err := db.Get(&n, q, args...); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	if n != want {
		t.Errorf("%s = %d, want %d", q, n, want)
	}
}
