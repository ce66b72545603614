package main

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/chatwire/chatwire/pkg/event"
	"github.com/chatwire/chatwire/pkg/queue"
	"github.com/chatwire/chatwire/pkg/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// `ingestor migrate` brings an empty database to the current schema and exits.
func TestMigrateCommand(t *testing.T) {
	t.Parallel()
	url := testenv.EmptyDatabaseURL(t)
	var out testenv.Buffer
	env := map[string]string{"DATABASE_URL": url, "LOG_FORMAT": "text"}
	if err := run(testenv.Context(t, time.Minute), []string{"migrate"}, func(k string) string { return env[k] }, &out); err != nil {
		t.Fatalf("migrate: %v\n%s", err, out.String())
	}
	d := testenv.Open(t, url)
	var n int
	if err := d.Get(&n, `SELECT count(*) FROM information_schema.columns WHERE table_name = 'chat_messages' AND column_name = 'classify_pending'`); err != nil || n != 1 {
		t.Fatalf("classify_pending column after migrate: n=%d err=%v", n, err)
	}
	if err := run(testenv.Context(t, time.Minute), []string{"migrate"}, func(k string) string { return env[k] }, &out); err != nil {
		t.Fatalf("second migrate: %v", err)
	}
	if err := run(context.Background(), []string{"bogus"}, func(k string) string { return env[k] }, io.Discard); err == nil {
		t.Error("unknown subcommand accepted")
	}
}

// The whole process: migrates an empty database at start-up, stores a published message and
// classifies it with the default rules classifier, serves /readyz and /metrics, and stops cleanly.
func TestRunProcess(t *testing.T) {
	t.Parallel()
	url := testenv.EmptyDatabaseURL(t)
	srv := testenv.StartNATS(t)
	addr := testenv.FreeAddr(t)
	env := map[string]string{
		"DATABASE_URL": url, "NATS_URL": srv.URL, "HTTP_ADDR": addr, "LOG_FORMAT": "text",
		"INGEST_BATCH_MAX_WAIT": "20ms",
	}
	var out testenv.Buffer
	proc := testenv.Background(t, func(ctx context.Context) error { return run(ctx, nil, func(k string) string { return env[k] }, &out) })
	testenv.WaitReady(t, addr, 30*time.Second, out.String)

	_, js := srv.JetStream(t)
	m := &event.InboundMessage{ID: "01J0000000000000000000000A", Channel: "interakt", ExternalID: "run-1",
		FromPhone: "919876543210", FromName: "Asha", Type: "text", Text: "payment deducted twice, refund please",
		ReceivedAt: time.Now().UTC()}
	data, _ := event.Encode(m)
	if _, err := js.Publish(testenv.Context(t, 5*time.Second), queue.InboundMessageSubject("interakt"), data,
		jetstream.WithMsgID(queue.MsgID("interakt", "run-1"))); err != nil {
		t.Fatal(err)
	}
	d := testenv.Open(t, url)
	testenv.Eventually(t, 20*time.Second, func() bool {
		var team *string
		err := d.Get(&team, `SELECT suggested_team FROM chat_messages WHERE external_message_id = 'run-1'`)
		return err == nil && team != nil && *team != ""
	}, "message not stored and classified:\n%s", out.String())

	// The stored counter moves once the batch's events are confirmed, which may be a moment after
	// the classify worker has already stored the team.
	names := []string{"chatwire_ingestor_messages_stored_total", "chatwire_ingestor_commit_seconds",
		"chatwire_ingestor_batch_size", "chatwire_ingestor_consumer_lag", "chatwire_ingestor_classify_jobs_total"}
	var missing []string
	testenv.Eventually(t, 10*time.Second, func() bool {
		resp, err := http.Get("http://" + addr + "/metrics")
		if err != nil {
			return false
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		missing = missing[:0]
		for _, name := range names {
			if !strings.Contains(string(body), name) {
				missing = append(missing, name)
			}
		}
		return len(missing) == 0
	}, "/metrics lacks %v", &missing)
	if strings.Contains(out.String(), "919876543210") || strings.Contains(out.String(), "refund please") {
		t.Error("logs contain a full phone number or a message body")
	}

	if err := proc.Stop(); err != nil {
		t.Errorf("run returned %v after SIGTERM-like cancel", err)
	}
}
