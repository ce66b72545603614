package notify

import (
	"encoding/json"
	"errors"
	"testing"

	"github.com/chatwire/chatwire/pkg/event"
)

func TestParseClientMessage(t *testing.T) {
	ok := map[string]ClientMessage{
		`{"type":"join_conversation","conversation_id":"c1"}`:  {Type: MsgJoin, ConversationID: "c1"},
		`{"type":"leave_conversation","conversation_id":"c1"}`: {Type: MsgLeave, ConversationID: "c1"},
		`{"type":"resume","after_seq":41,"epoch":"e"}`:         {Type: MsgResume, AfterSeq: 41, Epoch: "e"},
		`{"type":"resume","after_seq":0}`:                      {Type: MsgResume},
		`{"type":"auth","token":"t"}`:                          {Type: MsgAuth, Token: "t"},
	}
	for in, want := range ok {
		got, err := ParseClientMessage([]byte(in))
		if err != nil || got != want {
			t.Errorf("%s: got %+v, %v; want %+v", in, got, err, want)
		}
	}
	bad := []string{
		``, `null`, `[]`, `"x"`, `{}`, `{"type":"subscribe_all"}`,
		`{"type":"join_conversation"}`,
		`{"type":"join_conversation","conversation_id":""}`,
		`{"type":"resume"}`, `{"type":"resume","after_seq":-1}`, `{"type":"resume","after_seq":"41"}`,
		`{"type":"resume","after_seq":1.5}`, `{"type":"resume","after_seq":null}`,
		`{"type":"auth"}`,
	}
	for _, in := range bad {
		if _, err := ParseClientMessage([]byte(in)); !errors.Is(err, ErrBadMessage) {
			t.Errorf("%s: err = %v, want ErrBadMessage", in, err)
		}
	}
}

func TestEncodeEventFrame(t *testing.T) {
	ev := event.AgentEvent{V: 1, ID: "ev1", Event: event.EventNewMessage, ConversationID: "c1", Team: "support",
		Data: json.RawMessage(`{"id":"m1"}`)}
	b, err := encodeEvent(&ev, 42)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"event":"new_message","seq":42,"conversation_id":"c1","team":"support","id":"ev1","data":{"id":"m1"}}`
	if string(b) != want {
		t.Fatalf("frame = %s\nwant    %s", b, want)
	}
}

func FuzzParseClientMessage(f *testing.F) {
	for _, s := range []string{
		`{"type":"join_conversation","conversation_id":"c1"}`,
		`{"type":"resume","after_seq":41,"epoch":"e"}`,
		`{"type":"auth","token":"t"}`,
		`{"type":"resume","after_seq":1e3}`,
		`{"type":"leave_conversation","conversation_id":"\u0000"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := ParseClientMessage(data)
		if err != nil {
			if !errors.Is(err, ErrBadMessage) {
				t.Fatalf("error does not wrap ErrBadMessage: %v", err)
			}
			return
		}
		if (m.Type == MsgJoin || m.Type == MsgLeave) && (m.ConversationID == "" || len(m.ConversationID) > maxConversationIDLen) {
			t.Fatalf("accepted %+v", m)
		}
	})
}

func FuzzVerifyToken(f *testing.F) {
	v, _ := NewHS256Verifier(testSecret)
	tok, _ := MintHS256(testSecret, "a", "n", []string{"t"}, "agent", 1e12)
	f.Add(tok)
	f.Add("eyJhbGciOiJub25lIn0.eyJzdWIiOiJhIn0.")
	f.Add("a.b.c")
	f.Fuzz(func(t *testing.T, s string) {
		a, err := v.Verify(s)
		if err == nil && a.ID == "" {
			t.Fatal("accepted a token without subject")
		}
	})
}
