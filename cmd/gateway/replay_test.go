package main

import (
	"bytes"
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/chatwire/chatwire/pkg/gateway"
	"github.com/chatwire/chatwire/pkg/queue"
	"github.com/chatwire/chatwire/pkg/testenv"
)

func TestReplayCommand(t *testing.T) {
	srv := testenv.StartNATS(t)
	_, js := srv.JetStream(t)
	ctx := testenv.Context(t, 30*time.Second)
	good, err := os.ReadFile("../../pkg/provider/netcore/testdata/webhook/text.json")
	if err != nil {
		t.Fatal(err)
	}
	for i, body := range [][]byte{[]byte("not json"), good} {
		m := nats.NewMsg(queue.InboundInvalidSubject("netcore"))
		m.Data = body
		m.Header.Set(jetstream.MsgIDHeader, "kept-"+string(rune('a'+i)))
		if _, err := js.PublishMsg(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	env := map[string]string{"NATS_URL": srv.URL}
	var stdout, stderr bytes.Buffer
	if err := replay(ctx, []string{"--channel", "netcore"}, func(k string) string { return env[k] }, &stdout, &stderr); err != nil {
		t.Fatalf("replay: %v\n%s", err, stderr.String())
	}
	var results []gateway.ReplayResult
	for _, line := range strings.Split(strings.TrimSpace(stdout.String()), "\n") {
		var r gateway.ReplayResult
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("output line %q: %v", line, err)
		}
		results = append(results, r)
	}
	if len(results) != 2 || results[0].Result != gateway.ReplayStillInvalid || results[1].Result != gateway.ReplayReplayed || results[1].Events == 0 {
		t.Fatalf("results: %+v", results)
	}
	if !strings.Contains(stderr.String(), "replay: 1 replayed, 1 still invalid") {
		t.Errorf("summary missing from stderr: %q", stderr.String())
	}
	s, _ := js.Stream(ctx, queue.StreamInbound)
	info, _ := s.Info(ctx, jetstream.WithSubjectFilter(queue.InboundMessageSubject("netcore")))
	if info.State.Subjects[queue.InboundMessageSubject("netcore")] == 0 {
		t.Errorf("no message published on %s", queue.InboundMessageSubject("netcore"))
	}
	if err := replay(ctx, []string{"--bogus"}, func(k string) string { return env[k] }, &stdout, &stderr); err == nil {
		t.Error("an unknown flag did not fail")
	}
}
