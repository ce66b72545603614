package ingest_test

import (
	"context"
	"encoding/json"
	"errors"
	"sort"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/oklog/ulid/v2"

	"github.com/chatwire/chatwire/pkg/classify"
	"github.com/chatwire/chatwire/pkg/event"
	"github.com/chatwire/chatwire/pkg/ingest"
	"github.com/chatwire/chatwire/pkg/queue"
	"github.com/chatwire/chatwire/pkg/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// env is one test's infrastructure: a fresh database and a private JetStream server.
type env struct {
	t     *testing.T
	dbURL string
	db    *sqlx.DB
	srv   *testenv.NATSServer
	nc    *nats.Conn
	js    jetstream.JetStream // the publisher's (gateway's) connection
}

func newEnv(t *testing.T) *env {
	t.Helper()
	e := &env{t: t, dbURL: testenv.DatabaseURL(t)}
	e.db = testenv.Open(t, e.dbURL)
	e.srv = testenv.StartNATS(t)
	e.nc, e.js = e.srv.JetStream(t)
	return e
}

// replica is one running ingestor with its own NATS connection and database pool, as a separate
// process would have.
type replica struct {
	in     *ingest.Ingestor
	nc     *nats.Conn
	cancel context.CancelFunc
	done   chan struct{} // closed when Run returned
	err    error         // what Run returned
}

func (r *replica) stop() error {
	r.cancel()
	select {
	case <-r.done:
		return r.err
	case <-time.After(20 * time.Second):
		return errors.New("ingestor did not stop within 20s")
	}
}

func fastConfig() ingest.Config {
	return ingest.Config{BatchSize: 50, BatchMaxWait: 20 * time.Millisecond, Workers: 2, LagInterval: 200 * time.Millisecond}
}

// newReplica builds an ingestor without starting it (so a test can install hooks first).
func (e *env) newReplica(cfg ingest.Config) *replica {
	e.t.Helper()
	nc, js := e.connect()
	d := testenv.Open(e.t, e.dbURL)
	return &replica{in: ingest.New(d, js, cfg, testenv.Logger(e.t)), nc: nc}
}

func (r *replica) start(t *testing.T) *replica {
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel, r.done = cancel, make(chan struct{})
	go func() { r.err = r.in.Run(ctx); close(r.done) }()
	t.Cleanup(func() { cancel(); <-r.done })
	return r
}

func (e *env) startIngestor(cfg ingest.Config) *replica {
	return e.newReplica(cfg).start(e.t)
}

// startClassifier runs a classify worker with clf.
func (e *env) startClassifier(clf ingest.Classifier, cfg ingest.ClassifyConfig) {
	e.t.Helper()
	_, js := e.connect()
	w := ingest.NewClassifyWorker(testenv.Open(e.t, e.dbURL), js, clf, cfg, testenv.Logger(e.t))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = w.Run(ctx); close(done) }()
	e.t.Cleanup(func() { cancel(); <-done })
}

// connect opens another connection to the test's server, as another process would, without
// declaring the topology again (which would undo setConsumer).
func (e *env) connect() (*nats.Conn, jetstream.JetStream) {
	e.t.Helper()
	nc, err := nats.Connect(e.srv.URL, nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond))
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		e.t.Fatal(err)
	}
	return nc, js
}

// setConsumer changes a durable consumer's settings for this test's server.
func (e *env) setConsumer(stream, name string, change func(*jetstream.ConsumerConfig)) {
	e.t.Helper()
	ctx := testenv.Context(e.t, 10*time.Second)
	c, err := e.js.Consumer(ctx, stream, name)
	if err != nil {
		e.t.Fatal(err)
	}
	cfg := c.CachedInfo().Config
	change(&cfg)
	if _, err := e.js.UpdateConsumer(ctx, stream, cfg); err != nil {
		e.t.Fatalf("updating consumer %s: %v", name, err)
	}
}

var t0 = time.Date(2026, 2, 23, 10, 15, 0, 0, time.UTC)

// inbound builds a customer message as the gateway would publish it.
func inbound(ch, ext, phone string, at time.Time) *event.InboundMessage {
	return &event.InboundMessage{
		ID: ulid.Make().String(), Channel: ch, ExternalID: ext, FromPhone: phone, FromName: "Asha",
		Type: event.TypeText, Text: "Where is my order " + ext + "?", ReceivedAt: at,
		Payload: json.RawMessage(`{"message_id":"` + ext + `"}`),
	}
}

// publish puts m on INBOUND with the gateway's Nats-Msg-Id (or msgID when given).
func (e *env) publish(m *event.InboundMessage, msgID string) {
	e.t.Helper()
	data, err := event.Encode(m)
	if err != nil {
		e.t.Fatal(err)
	}
	if msgID == "" {
		msgID = queue.MsgID(m.Channel, m.ExternalID)
	}
	e.publishRaw(queue.InboundMessageSubject(m.Channel), data, msgID)
}

func (e *env) publishStatus(s *event.StatusUpdate) {
	e.t.Helper()
	data, err := event.Encode(s)
	if err != nil {
		e.t.Fatal(err)
	}
	e.publishRaw(queue.InboundStatusSubject(s.Channel), data, ulid.Make().String())
}

func (e *env) publishRaw(subject string, data []byte, msgID string) {
	e.t.Helper()
	ctx := testenv.Context(e.t, 10*time.Second)
	var opts []jetstream.PublishOpt
	if msgID != "" {
		opts = append(opts, jetstream.WithMsgID(msgID))
	}
	if _, err := e.js.Publish(ctx, subject, data, opts...); err != nil {
		e.t.Fatalf("publish %s: %v", subject, err)
	}
}

// drained waits until the consumer has delivered and settled everything.
func (e *env) drained(stream, consumer string, d time.Duration) {
	e.t.Helper()
	// Every message the stream holds now must be settled. NumPending alone is not enough: the
	// server counts a just-published message into it asynchronously, so right after a publish a
	// consumer can look drained before it has seen the message.
	last := testenv.StreamInfo(e.t, e.js, stream).State.LastSeq
	testenv.Eventually(e.t, d, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		c, err := e.js.Consumer(ctx, stream, consumer)
		if err != nil {
			return false
		}
		ci := c.CachedInfo()
		return ci.AckFloor.Stream >= last && ci.NumPending == 0 && ci.NumAckPending == 0 && ci.NumRedelivered == 0
	}, "consumer %s has not settled every message up to stream sequence %d", consumer, last)
}

// streamMsgs reads every message currently in a stream.
func (e *env) streamMsgs(stream string) []*jetstream.RawStreamMsg {
	e.t.Helper()
	return testenv.StreamMsgs(e.t, e.js, stream)
}

// events returns the agent events on EVENTS, optionally only those named name.
func (e *env) events(name string) []event.AgentEvent {
	e.t.Helper()
	var out []event.AgentEvent
	for _, m := range e.streamMsgs(queue.StreamEvents) {
		ev, err := event.Decode[event.AgentEvent](m.Data)
		if err != nil {
			e.t.Fatalf("event seq %d: %v", m.Sequence, err)
		}
		if name == "" || ev.Event == name {
			out = append(out, ev)
		}
	}
	return out
}

func (e *env) dlq(subject string) []*jetstream.RawStreamMsg {
	var out []*jetstream.RawStreamMsg
	for _, m := range e.streamMsgs(queue.StreamDLQ) {
		if m.Subject == subject {
			out = append(out, m)
		}
	}
	return out
}

func (e *env) count(q string, args ...any) int {
	e.t.Helper()
	var n int
	if err := e.db.Get(&n, q, args...); err != nil {
		e.t.Fatalf("%s: %v", q, err)
	}
	return n
}

type conversation struct {
	ID           string     `db:"id"`
	Status       string     `db:"status"`
	Unread       int        `db:"unread_count"`
	Channel      string     `db:"channel"`
	Name         *string    `db:"customer_name"`
	AssignedTeam *string    `db:"assigned_team"`
	LastAt       *time.Time `db:"last_message_at"`
}

func (e *env) conversation(phone string) conversation {
	e.t.Helper()
	var c conversation
	if err := e.db.Get(&c, `SELECT id, status, unread_count, channel, customer_name, assigned_team, last_message_at
	                          FROM conversations WHERE phone_number = $1`, phone); err != nil {
		e.t.Fatalf("conversation %s: %v", phone, err)
	}
	return c
}

// dataOf decodes an event's data.
func dataOf[T any](t *testing.T, ev event.AgentEvent) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(ev.Data, &v); err != nil {
		t.Fatalf("event %s data: %v", ev.ID, err)
	}
	return v
}

// ids lists events' ids, sorted.
func ids(evs []event.AgentEvent) []string {
	out := make([]string, 0, len(evs))
	for _, ev := range evs {
		out = append(out, ev.ID)
	}
	sort.Strings(out)
	return out
}

func phone(i int) string { return "9198765" + strconv.Itoa(10000+i) }

// fixedClassifier answers every text the same way and counts calls.
type fixedClassifier struct {
	mu    sync.Mutex
	r     classify.Result
	err   error
	calls int
}

func (f *fixedClassifier) Classify(ctx context.Context, text string) (classify.Result, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	return f.r, f.err
}

// hungClassifier never answers and ignores its context, like a client stuck on a dead socket.
type hungClassifier struct{ release chan struct{} }

func (h *hungClassifier) Classify(ctx context.Context, text string) (classify.Result, error) {
	<-h.release
	return classify.Result{}, errors.New("released")
}
