package reply

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/chatwire/chatwire/pkg/event"
	"github.com/chatwire/chatwire/pkg/provider/interakt"
	"github.com/chatwire/chatwire/pkg/provider/netcore"
	"github.com/chatwire/chatwire/pkg/queue"
	pgstore "github.com/chatwire/chatwire/pkg/store"
	"github.com/chatwire/chatwire/pkg/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// env is one test's infrastructure: a fresh database, an embedded JetStream, and both provider
// fakes.
type env struct {
	t        testing.TB
	db       *sqlx.DB
	ns       *testenv.NATSServer
	js       jetstream.JetStream
	interakt *interakt.FakeServer
	netcore  *netcore.FakeServer
	outcomes chan Outcome
	seq      atomic.Int64
	log      *slog.Logger
}

func newEnv(t testing.TB, ackWait time.Duration) *env {
	t.Helper()
	e := &env{t: t, db: testenv.DB(t), ns: testenv.StartNATS(t), outcomes: make(chan Outcome, 10000),
		log: testenv.Logger(t)}
	_, e.js = e.ns.JetStream(t)
	if ackWait > 0 {
		topo := queue.DefaultTopology()
		topo.AckWait = ackWait
		if err := topo.Ensure(testenv.Context(t, 10*time.Second), e.js); err != nil {
			t.Fatal(err)
		}
	}
	e.interakt = interakt.NewFake("aWs6a2V5")
	e.netcore = netcore.NewFake("nc-secret")
	t.Cleanup(e.interakt.Close)
	t.Cleanup(e.netcore.Close)
	return e
}

// config is a fast test configuration with both channels configured.
func (e *env) config() Config {
	return Config{
		Senders: map[string]Sender{
			event.ChannelInterakt: interakt.NewSender(e.interakt.URL, e.interakt.APIKey, e.interakt.Client()),
			event.ChannelNetcore:  netcore.NewSender(e.netcore.URL, e.netcore.APIKey, e.netcore.Client()),
		},
		Concurrency:   8,
		SendTimeout:   2 * time.Second,
		RetryDeadline: 30 * time.Second,
		RetryBase:     50 * time.Millisecond,
		RetryMax:      200 * time.Millisecond,
		ReconcileWait: 500 * time.Millisecond,
		Observe: func(o Outcome) {
			select {
			case e.outcomes <- o:
			default:
			}
		},
	}
}

// start runs a worker on its own NATS connection until the returned stop is called (or the test
// ends). Closing that connection on stop is what a crashed process leaves: unacked commands come
// back after AckWait.
func (e *env) start(cfg Config, crash func(string) bool) (stop func()) {
	e.t.Helper()
	nc, err := nats.Connect(e.ns.URL)
	if err != nil {
		e.t.Fatal(err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		e.t.Fatal(err)
	}
	w := New(e.db, js, e.log, cfg)
	w.crashAfterSend = crash
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				e.t.Errorf("worker: %v", err)
			}
			nc.Close()
		})
	}
	e.t.Cleanup(stop)
	return stop
}

func (e *env) conversation(channel, team string) string {
	e.t.Helper()
	var id string
	phone := fmt.Sprintf("9198%08d", e.seq.Add(1))
	err := e.db.Get(&id, `INSERT INTO conversations (phone_number, customer_name, channel, assigned_team)
		VALUES ($1, 'Asha', $2, nullif($3, '')) RETURNING id`, phone, channel, team)
	if err != nil {
		e.t.Fatal(err)
	}
	return id
}

func (e *env) command(convID, text string) event.ReplyCommand {
	return event.ReplyCommand{CommandID: fmt.Sprintf("cmd-%d", e.seq.Add(1)), ConversationID: convID, Text: text,
		AgentID: "agent-7", SenderName: "Ravi"}
}

// publish publishes a command; msgID "" publishes without Nats-Msg-Id, so JetStream does not
// drop a repeat and the sender's own idempotency is what is tested.
func (e *env) publish(cmd event.ReplyCommand, msgID string) {
	e.t.Helper()
	data, err := event.Encode(&cmd)
	if err != nil {
		e.t.Fatal(err)
	}
	e.publishRaw(data, msgID)
}

func (e *env) publishRaw(data []byte, msgID string) {
	e.t.Helper()
	var opts []jetstream.PublishOpt
	if msgID != "" {
		opts = append(opts, jetstream.WithMsgID(msgID))
	}
	if _, err := e.js.Publish(testenv.Context(e.t, 5*time.Second), queue.SubjectReplies, data, opts...); err != nil {
		e.t.Fatal(err)
	}
}

// dbRow is a chat_messages row as the sender wrote it, with the legacy id and the bookkeeping.
type dbRow struct {
	pgstore.MessageRow
	LegacyID sql.NullString `db:"interakt_message_id"`
	Payload  []byte         `db:"provider_payload"`
}

const dbRowSQL = `SELECT ` + pgstore.MessageColumns + `, interakt_message_id, provider_payload FROM chat_messages`

// rows returns the conversation's messages.
func (e *env) rows(convID string) []dbRow {
	e.t.Helper()
	var out []dbRow
	err := e.db.Select(&out, dbRowSQL+` WHERE conversation_id = $1 ORDER BY created_at`, convID)
	if err != nil {
		e.t.Fatal(err)
	}
	return out
}

func (e *env) rowFor(commandID string) (dbRow, bool) {
	e.t.Helper()
	var r dbRow
	err := e.db.Get(&r, dbRowSQL+` WHERE command_id = $1`, commandID)
	if errors.Is(err, sql.ErrNoRows) {
		return r, false
	}
	if err != nil {
		e.t.Fatal(err)
	}
	return r, true
}

// waitStatus waits until the command's row has the status.
func (e *env) waitStatus(commandID, status string) dbRow {
	e.t.Helper()
	var r dbRow
	testenv.Eventually(e.t, 15*time.Second, func() bool {
		var ok bool
		r, ok = e.rowFor(commandID)
		return ok && r.Status.String == status
	}, "row of %s never reached %s (last %q)", commandID, status, r.Status.String)
	return r
}

// drained waits until the sender has settled every command (nothing pending or unacked).
func (e *env) drained() {
	e.t.Helper()
	testenv.Eventually(e.t, 20*time.Second, func() bool {
		// REPLIES is a work queue: a command leaves the stream once acked or terminated.
		s, err := e.js.Stream(context.Background(), queue.StreamReplies)
		if err != nil {
			return false
		}
		si, err := s.Info(context.Background())
		if err != nil || si.State.Msgs != 0 {
			return false
		}
		c, err := e.js.Consumer(context.Background(), queue.StreamReplies, queue.ConsumerSender)
		if err != nil {
			return false
		}
		info, err := c.Info(context.Background())
		return err == nil && info.NumPending == 0 && info.NumAckPending == 0
	}, "REPLIES never drained")
}

// events returns the agent events published for the conversation.
func (e *env) events(convID string) []event.AgentEvent {
	e.t.Helper()
	var out []event.AgentEvent
	for _, m := range testenv.StreamMsgs(e.t, e.js, queue.StreamEvents) {
		if m.Subject != queue.EventSubject(convID) {
			continue
		}
		ev, err := event.Decode[event.AgentEvent](m.Data)
		if err != nil {
			e.t.Fatalf("event %d: %v", m.Sequence, err)
		}
		out = append(out, ev)
	}
	return out
}

func eventData(t testing.TB, ev event.AgentEvent) event.MessageData {
	t.Helper()
	var d event.MessageData
	if err := json.Unmarshal(ev.Data, &d); err != nil {
		t.Fatal(err)
	}
	return d
}

// statusEvents lists the message_status events' statuses, in order.
func statusEvents(t testing.TB, evs []event.AgentEvent) []string {
	var out []string
	for _, ev := range evs {
		if ev.Event == event.EventMessageStatus {
			out = append(out, eventData(t, ev).Status)
		}
	}
	return out
}

func countEvents(evs []event.AgentEvent, name string) int {
	n := 0
	for _, ev := range evs {
		if ev.Event == name {
			n++
		}
	}
	return n
}

// dlq returns the dead-lettered reply commands' error headers.
func (e *env) dlq() []string {
	e.t.Helper()
	var out []string
	for _, m := range testenv.StreamMsgs(e.t, e.js, queue.StreamDLQ) {
		if strings.HasPrefix(m.Subject, queue.SubjectDLQReplies) {
			out = append(out, m.Header.Get(queue.HeaderError))
		}
	}
	return out
}
