package agentapi

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/chatwire/chatwire/pkg/app"
	"github.com/chatwire/chatwire/pkg/event"
	"github.com/chatwire/chatwire/pkg/notify"
	"github.com/chatwire/chatwire/pkg/queue"
	"github.com/chatwire/chatwire/pkg/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

const secret = "0123456789abcdef0123456789abcdef-agentapi"

type env struct {
	t    *testing.T
	db   *sqlx.DB
	js   jetstream.JetStream
	nats *testenv.NATSServer
	url  string
	n    int // phone numbers handed out
}

func newEnv(t *testing.T, mutate ...func(*Config)) *env {
	t.Helper()
	ns := testenv.StartNATS(t)
	_, js := ns.JetStream(t)
	d := testenv.DB(t)
	v, err := notify.NewHS256Verifier([]byte(secret))
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{Verifier: v, AllowedOrigins: []string{"https://agents.example.com"}}
	for _, m := range mutate {
		m(&cfg)
	}
	api, err := New(d, js, cfg, testenv.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	e := app.NewEcho(testenv.Logger(t))
	api.Mount(e)
	srv := httptest.NewServer(e)
	t.Cleanup(srv.Close)
	return &env{t: t, db: d, js: js, nats: ns, url: srv.URL}
}

func token(t *testing.T, sub, role string, teams ...string) string {
	t.Helper()
	tok, err := notify.MintHS256([]byte(secret), sub, "Agent "+sub, teams, role, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

type resp struct {
	code   int
	body   []byte
	header http.Header
}

func (r resp) errMsg() string {
	var e struct {
		Error string `json:"error"`
	}
	_ = json.Unmarshal(r.body, &e)
	return e.Error
}

func (e *env) do(method, path, tok string, body any) resp {
	e.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	default:
		raw, err := json.Marshal(b)
		if err != nil {
			e.t.Fatal(err)
		}
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequest(method, e.url+path, rd)
	if err != nil {
		e.t.Fatal(err)
	}
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	if ct := res.Header.Get("Content-Type"); res.StatusCode != http.StatusNoContent && !strings.HasPrefix(ct, "application/json") {
		e.t.Errorf("%s %s: content type %q, want JSON (body %s)", method, path, ct, raw)
	}
	return resp{code: res.StatusCode, body: raw, header: res.Header}
}

// expect fails the test unless r has the status code and, when contains is set, an error
// message containing it.
func expect(t *testing.T, r resp, code int, contains string) {
	t.Helper()
	if r.code != code {
		t.Fatalf("status %d, want %d; body %s", r.code, code, r.body)
	}
	if contains != "" && !strings.Contains(r.errMsg(), contains) {
		t.Fatalf("error %q does not mention %q", r.errMsg(), contains)
	}
}

func decode[T any](t *testing.T, r resp) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(r.body, &v); err != nil {
		t.Fatalf("decoding %s: %v", r.body, err)
	}
	return v
}

// conv inserts a conversation; team "" leaves it unassigned, last nil leaves last_message_at NULL.
func (e *env) conv(team, status string, last *time.Time, unread int) string {
	e.t.Helper()
	e.n++
	var id string
	var t any
	if team != "" {
		t = team
	}
	err := e.db.Get(&id, `INSERT INTO conversations (phone_number, customer_name, status, assigned_team, last_message_at, unread_count, channel)
		VALUES ($1, 'Customer', $2, $3, $4, $5, 'interakt') RETURNING id`,
		fmt.Sprintf("9198765%05d", e.n), status, t, last, unread)
	if err != nil {
		e.t.Fatalf("inserting conversation: %v", err)
	}
	return id
}

func (e *env) msg(conv, direction string, at time.Time, content string) string {
	e.t.Helper()
	sender := "customer"
	if direction == "outbound" {
		sender = "agent"
	}
	var id string
	err := e.db.Get(&id, `INSERT INTO chat_messages (conversation_id, direction, message_type, content, sender_type, channel, created_at)
		VALUES ($1, $2, 'text', $3, $4, 'interakt', $5) RETURNING id`, conv, direction, content, sender, at)
	if err != nil {
		e.t.Fatalf("inserting message: %v", err)
	}
	return id
}

func ptr[T any](v T) *T { return &v }

func (e *env) streamMsgs(stream string) uint64 {
	e.t.Helper()
	return testenv.StreamInfo(e.t, e.js, stream).State.Msgs
}

// events returns every agent event of one conversation in EVENTS, in order.
func (e *env) events(conv string) []event.AgentEvent {
	e.t.Helper()
	ctx := testenv.Context(e.t, 5*time.Second)
	c, err := e.js.OrderedConsumer(ctx, queue.StreamEvents, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{queue.EventSubject(conv)},
	})
	if err != nil {
		e.t.Fatal(err)
	}
	info, err := c.Info(ctx)
	if err != nil {
		e.t.Fatal(err)
	}
	var out []event.AgentEvent
	for n := info.NumPending; n > 0; n-- {
		m, err := c.Next(jetstream.FetchMaxWait(2 * time.Second))
		if err != nil {
			e.t.Fatalf("reading events: %v", err)
		}
		ev, err := event.Decode[event.AgentEvent](m.Data())
		if err != nil {
			e.t.Fatalf("decoding event: %v", err)
		}
		if m.Headers().Get(jetstream.MsgIDHeader) != ev.ID {
			e.t.Errorf("event %s published with Nats-Msg-Id %q", ev.ID, m.Headers().Get(jetstream.MsgIDHeader))
		}
		out = append(out, ev)
	}
	return out
}

func ctxT(t *testing.T) context.Context { return testenv.Context(t, 10*time.Second) }

func readAll(res *http.Response) []byte {
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return b
}

func decodeRaw[T any](t *testing.T, raw []byte) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(raw, &v); err != nil {
		t.Fatalf("decoding %s: %v", raw, err)
	}
	return v
}

func serve(h http.Handler, method, path string, body io.Reader) *httptest.ResponseRecorder {
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(method, path, body))
	return rec
}
