package ingest

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"

	"github.com/chatwire/chatwire/pkg/event"
)

// encodeAgentEvent writes exactly what event.Encode writes, for plain and awkward strings alike,
// so agents and the notifier cannot tell which one produced an event.
func TestEncodeAgentEventMatchesEncode(t *testing.T) {
	at := time.Date(2026, 2, 23, 10, 15, 1, 123456000, time.UTC)
	data, err := json.Marshal(event.MessageData{ID: "m1", ConversationID: "c1", Direction: "inbound",
		MessageType: "text", Content: "<b>Tom & \"Jerry\"</b>\u2028\x01 ünïcode \\", Channel: "netcore",
		SenderType: "customer", SenderName: "Asha", CreatedAt: at})
	if err != nil {
		t.Fatal(err)
	}
	for _, ev := range []event.AgentEvent{
		{ID: "msg:6b1c2f0e-5d55-4c4f-9a43-7e0f3f1d8a21", Event: event.EventNewMessage, ConversationID: "c1", Team: "sales", Data: data},
		{ID: "", Event: event.EventConversationUpdated, ConversationID: "c<2>", Team: "", Data: json.RawMessage(`{"a":1}`)},
		{ID: "id \"q\" & <x>\u2029", Event: "ev\n", Seq: 42, ConversationID: "ç", Team: "t\\", Data: nil},
		{ID: "x", Event: "y", Data: json.RawMessage(`"<&>"`)},
	} {
		got, err := encodeAgentEvent(&ev)
		if err != nil {
			t.Fatal(err)
		}
		want, err := event.Encode(&ev)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("encodeAgentEvent:\n got %s\nwant %s", got, want)
		}
		back, err := event.Decode[event.AgentEvent](got)
		if err != nil || back.ID != ev.ID || back.ConversationID != ev.ConversationID {
			t.Errorf("decoding %s: %+v, %v", got, back, err)
		}
	}
}
