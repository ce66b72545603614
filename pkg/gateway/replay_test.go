package gateway_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/chatwire/chatwire/pkg/event"
	"github.com/chatwire/chatwire/pkg/gateway"
	"github.com/chatwire/chatwire/pkg/queue"
	"github.com/chatwire/chatwire/pkg/testenv"
)

// TestReplayInvalidBodies: bodies kept on inbound.invalid.<channel> are re-parsed by the current
// parser; what it now understands is published exactly as the webhook would have been, once, and
// what it still refuses is reported with the reason.
func TestReplayInvalidBodies(t *testing.T) {
	t.Parallel()
	h := start(t, gateway.Config{})
	ctx := testenv.Context(t, 30*time.Second)

	// A body no parser understands, kept by the endpoint.
	if code, _ := h.post(event.ChannelInterakt, []byte(`{"hello":"world"}`)); code != http.StatusOK {
		t.Fatalf("invalid body answered %d", code)
	}
	// A body an older parser refused but this one understands, as it would have been kept.
	good := testdata(t, event.ChannelInterakt)["text.json"]
	m := nats.NewMsg(queue.InboundInvalidSubject(event.ChannelInterakt))
	m.Data = good
	m.Header.Set(jetstream.MsgIDHeader, "interakt:invalid:older-parser")
	if _, err := h.js.PublishMsg(ctx, m); err != nil {
		t.Fatal(err)
	}
	before := len(h.stored())

	replay := func(opt gateway.ReplayOptions) []gateway.ReplayResult {
		t.Helper()
		var got []gateway.ReplayResult
		if err := h.gw.Replay(ctx, h.js, opt, func(r gateway.ReplayResult) { got = append(got, r) }); err != nil {
			t.Fatalf("replay: %v", err)
		}
		return got
	}

	dry := replay(gateway.ReplayOptions{DryRun: true})
	if len(dry) != 2 || dry[0].Result != gateway.ReplayStillInvalid || dry[0].Reason == "" ||
		dry[1].Result != gateway.ReplayDryRun || dry[1].Events != 1 || dry[1].Channel != event.ChannelInterakt {
		t.Fatalf("dry run results: %+v", dry)
	}
	if n := len(h.stored()); n != before {
		t.Fatalf("dry run published: %d messages in INBOUND, was %d", n, before)
	}

	got := replay(gateway.ReplayOptions{Channel: event.ChannelInterakt})
	if len(got) != 2 || got[0].Result != gateway.ReplayStillInvalid || got[1].Result != gateway.ReplayReplayed || got[1].Events != 1 {
		t.Fatalf("replay results: %+v", got)
	}
	batch, err := gateway.Normalize(event.ChannelInterakt, good, time.Now())
	if err != nil || len(batch.Messages) != 1 {
		t.Fatalf("testdata text.json: %v", err)
	}
	want := queue.MsgID(event.ChannelInterakt, batch.Messages[0].ExternalID)
	stored := h.byMsgID()[want]
	if stored == nil || stored.Subject != queue.InboundMessageSubject(event.ChannelInterakt) {
		t.Fatalf("replayed message %s not on %s", want, queue.InboundMessageSubject(event.ChannelInterakt))
	}
	if _, err := event.Decode[event.InboundMessage](stored.Data); err != nil {
		t.Fatalf("replayed message does not decode: %v", err)
	}
	after := len(h.stored())
	if after != before+1 {
		t.Fatalf("INBOUND holds %d messages after replay, want %d", after, before+1)
	}

	// Replaying again stores nothing new; a start past the end reads nothing; other channels none.
	replay(gateway.ReplayOptions{})
	if n := len(h.stored()); n != after {
		t.Fatalf("second replay stored again: %d messages, want %d", n, after)
	}
	if r := replay(gateway.ReplayOptions{FromSeq: 1_000_000}); len(r) != 0 {
		t.Fatalf("replay from past the end: %+v", r)
	}
	if r := replay(gateway.ReplayOptions{Channel: event.ChannelNetcore}); len(r) != 0 {
		t.Fatalf("netcore replay read interakt bodies: %+v", r)
	}

	// A bad item of a Netcore batch is kept as a one-item body of its own, so it replays like any
	// body: here the parser still refuses it, and says why.
	mixed := []byte(`{"incoming_message":[
	  {"message_id":"wamid.REPLAY1","from":"919201053157","received_at":"1740305701","message_type":"TEXT","text_type":{"text":"hi"}},
	  {"message_id":"wamid.REPLAY2","received_at":"1740305701","message_type":"TEXT","text_type":{"text":"no sender"}}]}`)
	if code, _ := h.post(event.ChannelNetcore, mixed); code != http.StatusOK {
		t.Fatalf("netcore batch answered %d", code)
	}
	nc := replay(gateway.ReplayOptions{Channel: event.ChannelNetcore})
	if len(nc) != 1 || nc[0].Result != gateway.ReplayStillInvalid || nc[0].Invalid != 1 || nc[0].Reason == "" {
		t.Fatalf("netcore kept item replay: %+v", nc)
	}
	if err := h.gw.Replay(ctx, h.js, gateway.ReplayOptions{Channel: "telegram"}, func(gateway.ReplayResult) {}); err == nil {
		t.Fatal("replay of an unknown channel did not fail")
	}
}
