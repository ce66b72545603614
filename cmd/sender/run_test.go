package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chatwire/chatwire/pkg/event"
	"github.com/chatwire/chatwire/pkg/provider/netcore"
	"github.com/chatwire/chatwire/pkg/queue"
	"github.com/chatwire/chatwire/pkg/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// The process starts without Interakt credentials, reports ready, fails Interakt replies with the
// clear reason, sends Netcore replies, and shuts down cleanly.
func TestRunWithOneProviderConfigured(t *testing.T) {
	dbURL := testenv.DatabaseURL(t)
	ns := testenv.StartNATS(t)
	_, js := ns.JetStream(t)
	db := testenv.Open(t, dbURL)
	fake := netcore.NewFake("k")
	defer fake.Close()
	addr := testenv.FreeAddr(t)
	env := map[string]string{
		"DATABASE_URL": dbURL, "NATS_URL": ns.URL, "HTTP_ADDR": addr, "LOG_FORMAT": "text",
		"NETCORE_API_URL": fake.URL + "/api/v2/message/", "NETCORE_API_KEY": "k",
	}
	testenv.Background(t, func(ctx context.Context) error {
		return run(ctx, nil, func(k string) string { return env[k] }, io.Discard)
	})
	testenv.WaitReady(t, addr, 20*time.Second, nil)

	conv := func(ch string) string {
		var id string
		if err := db.Get(&id, `INSERT INTO conversations (phone_number, channel) VALUES ($1, $2) RETURNING id`,
			fmt.Sprintf("9190000%05d", len(ch)), ch); err != nil {
			t.Fatal(err)
		}
		return id
	}
	// Counters are process-wide: compare increments, so the test also holds with -count=N.
	sent := `chatwire_sender_sends_total{outcome="sent",provider="netcore"}`
	unconfigured := `chatwire_sender_sends_total{outcome="unconfigured",provider="interakt"}`
	before := metrics(t, addr)
	for i, ch := range []string{event.ChannelInterakt, event.ChannelNetcore} {
		cmd := event.ReplyCommand{CommandID: fmt.Sprintf("c%d", i), ConversationID: conv(ch), Text: "hello"}
		data, _ := event.Encode(&cmd)
		if _, err := js.Publish(testenv.Context(t, 5*time.Second), queue.SubjectReplies, data); err != nil {
			t.Fatal(err)
		}
	}
	status := func(cmdID string) (s, reason string) {
		_ = db.QueryRow(`SELECT coalesce(status, ''), coalesce(error_text, '') FROM chat_messages WHERE command_id = $1`, cmdID).Scan(&s, &reason)
		return
	}
	testenv.Eventually(t, 20*time.Second, func() bool { s, _ := status("c0"); return s == "failed" }, "interakt reply not failed")
	testenv.Eventually(t, 20*time.Second, func() bool { s, _ := status("c1"); return s == "sent" }, "netcore reply not sent")
	if _, reason := status("c0"); reason != "channel interakt is not configured" {
		t.Fatalf("reason %q", reason)
	}
	// The counters move once each command is settled, a moment after its row's status.
	var after string
	testenv.Eventually(t, 10*time.Second, func() bool {
		after = metrics(t, addr)
		return metricValue(after, sent)-metricValue(before, sent) >= 1 &&
			metricValue(after, unconfigured)-metricValue(before, unconfigured) >= 1
	}, "send counters did not move")
	for _, m := range []string{sent, unconfigured} {
		if got := metricValue(after, m) - metricValue(before, m); got != 1 {
			t.Errorf("%s grew by %v, want 1", m, got)
		}
	}
	if !strings.Contains(after, "chatwire_sender_provider_request_seconds_bucket") {
		t.Error("metrics lack chatwire_sender_provider_request_seconds_bucket")
	}
}

func metrics(t *testing.T, addr string) string {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return string(body)
}

// metricValue reads one series' value from a Prometheus text exposition; 0 when absent.
func metricValue(exposition, series string) float64 {
	for _, line := range strings.Split(exposition, "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			f, _ := strconv.ParseFloat(strings.TrimSpace(v), 64)
			return f
		}
	}
	return 0
}
