package event_test

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/chatwire/chatwire/pkg/event"
)

func TestRoundTrip(t *testing.T) {
	at := time.Date(2026, 2, 23, 10, 15, 1, 0, time.UTC)
	in := event.InboundMessage{
		ID: "01JABC", Channel: event.ChannelNetcore, Account: "912249757556", ExternalID: "wamid.X",
		FromPhone: "919201053157", FromName: "Ravi", ToPhone: "912249757556", Type: event.TypeImage,
		Media:      &event.Media{ProviderMediaID: "m1", MimeType: "image/jpeg", SHA256: "abc", Caption: "bill"},
		ReceivedAt: at, Payload: json.RawMessage(`{"message_id":"wamid.X"}`),
	}
	b, err := event.Encode(&in)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `"v":1`) {
		t.Fatalf("encoded without version: %s", b)
	}
	out, err := event.Decode[event.InboundMessage](b)
	if err != nil {
		t.Fatal(err)
	}
	in.V = event.Version
	if !reflect.DeepEqual(in, out) {
		t.Fatalf("round trip changed the message:\n in  %+v\n out %+v", in, out)
	}

	st := event.StatusUpdate{Channel: event.ChannelInterakt, ExternalID: "ik-1", Reference: "row-1", Status: event.StatusRead, At: at}
	b, _ = event.Encode(&st)
	gotSt, err := event.Decode[event.StatusUpdate](b)
	if err != nil || gotSt.Status != event.StatusRead || gotSt.Reference != "row-1" || !gotSt.At.Equal(at) {
		t.Fatalf("status round trip: %+v, %v", gotSt, err)
	}

	rc := event.ReplyCommand{CommandID: "c1", ConversationID: "conv", Text: "hi", AgentID: "a1", SenderName: "Asha"}
	b, _ = event.Encode(&rc)
	gotRc, err := event.Decode[event.ReplyCommand](b)
	if err != nil || gotRc != (event.ReplyCommand{V: 1, CommandID: "c1", ConversationID: "conv", Text: "hi", AgentID: "a1", SenderName: "Asha"}) {
		t.Fatalf("reply round trip: %+v, %v", gotRc, err)
	}

	ev := event.AgentEvent{ID: "msg:1", Event: event.EventNewMessage, ConversationID: "conv", Team: "support", Data: json.RawMessage(`{"id":"1"}`)}
	b, _ = event.Encode(&ev)
	gotEv, err := event.Decode[event.AgentEvent](b)
	if err != nil || gotEv.ID != "msg:1" || string(gotEv.Data) != `{"id":"1"}` {
		t.Fatalf("agent event round trip: %+v, %v", gotEv, err)
	}
}

func TestDecodeRejects(t *testing.T) {
	for name, tc := range map[string]struct {
		data string
		want error
	}{
		"not json":        {`{`, event.ErrInvalid},
		"missing version": {`{"channel":"interakt","external_id":"x","from_phone":"1","type":"text"}`, event.ErrVersion},
		"future version":  {`{"v":2,"channel":"interakt","external_id":"x","from_phone":"1","type":"text"}`, event.ErrVersion},
		"unknown channel": {`{"v":1,"channel":"telegram","external_id":"x","from_phone":"1","type":"text"}`, event.ErrInvalid},
		"no external id":  {`{"v":1,"channel":"interakt","from_phone":"1","type":"text"}`, event.ErrInvalid},
		"no phone":        {`{"v":1,"channel":"interakt","external_id":"x","type":"text"}`, event.ErrInvalid},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := event.Decode[event.InboundMessage]([]byte(tc.data))
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
		})
	}
	if _, err := event.Decode[event.ReplyCommand]([]byte(`{"v":1,"command_id":"c","conversation_id":"x"}`)); !errors.Is(err, event.ErrInvalid) {
		t.Errorf("reply without text or media: err = %v", err)
	}
	if _, err := event.Decode[event.StatusUpdate]([]byte(`{"v":1,"channel":"netcore","external_id":"x","status":"bounced"}`)); !errors.Is(err, event.ErrInvalid) {
		t.Errorf("status bounced: err = %v", err)
	}
}

func TestStatusRankOnlyForward(t *testing.T) {
	order := []string{event.StatusPending, event.StatusSent, event.StatusDelivered, event.StatusRead, event.StatusFailed}
	for i := 1; i < len(order); i++ {
		if event.StatusRank(order[i]) <= event.StatusRank(order[i-1]) {
			t.Errorf("%s should rank above %s", order[i], order[i-1])
		}
	}
	if event.StatusRank("bogus") != 0 {
		t.Error("unknown status should rank 0")
	}
}

func FuzzDecode(f *testing.F) {
	f.Add([]byte(`{"v":1,"channel":"interakt","external_id":"x","from_phone":"1","type":"text"}`))
	f.Add([]byte(`{"v":1,"command_id":"c","conversation_id":"x","text":"t"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _ = event.Decode[event.InboundMessage](b)
		_, _ = event.Decode[event.StatusUpdate](b)
		_, _ = event.Decode[event.ReplyCommand](b)
		_, _ = event.Decode[event.AgentEvent](b)
	})
}
