package ingest

import (
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/chatwire/chatwire/pkg/event"
)

// FuzzInboundRow: whatever the gateway (or anyone) put on INBOUND, decoding and mapping it onto a
// row never panics, and a row that decodes is storable: a type the CHECK accepts, no NUL in text
// columns, a provider time with Postgres's precision.
func FuzzInboundRow(f *testing.F) {
	for _, s := range []string{
		`{"v":1,"id":"01J0","channel":"netcore","external_id":"wamid.1","from_phone":"+919201053157","type":"IMAGE","media":{"provider_media_id":"m1","caption":"lid"},"received_at":"2026-02-23T10:15:01.123456789Z","payload":{"a":1}}`,
		`{"v":1,"channel":"interakt","external_id":"5b6a","from_phone":"919876543210","from_name":"Asha","type":"text","text":"Where is my order?","classify_text":"Q: a / A: b"}`,
		`{"v":1,"channel":"interakt","external_id":"x\u0000","from_phone":"1","type":"weird","text":"a\u0000b","payload":null}`,
		`{"v":2}`, `[]`, `{"v":1,"channel":"netcore","external_id":"e","from_phone":"+","type":"text"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := event.Decode[event.InboundMessage](data)
		if err != nil {
			return
		}
		r := toRow(&m, time.Now())
		if !storedTypes[r.messageType] {
			t.Fatalf("type %q not accepted by the CHECK", r.messageType)
		}
		for _, s := range []string{r.content, r.externalID, r.senderName, r.mediaURL, r.phone, r.classify} {
			if strings.IndexByte(s, 0) >= 0 {
				t.Fatalf("NUL left in %q", s)
			}
		}
		if r.id != MessageRowID(&m) || r.id.String() == "" {
			t.Fatal("row id not derived from the delivery")
		}
		if r.createdAt.Nanosecond()%1000 != 0 {
			t.Fatalf("created_at %v finer than microseconds", r.createdAt)
		}
		if m.Channel == event.ChannelInterakt && r.interaktID != r.externalID {
			t.Fatal("interakt row without its legacy id")
		}
		if r.classify == "" && r.content != "" {
			t.Fatal("classify text lost")
		}
		_ = utf8.ValidString(r.content)
		mr := r.msgRow("c")
		_ = mr.Data()
	})
}

func TestMessageType(t *testing.T) {
	for in, want := range map[string]string{"TEXT": "text", " Image ": "image", "interactive": "interactive",
		"button": "unknown", "": "unknown", "contacts": "contacts", "reaction": "reaction"} {
		if got := messageType(in); got != want {
			t.Errorf("messageType(%q) = %q, want %q", in, got, want)
		}
	}
}
