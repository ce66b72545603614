package agentapi

import (
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/chatwire/chatwire/pkg/event"
)

// FuzzCursor: any ?before= value is refused or decodes to a cursor that encodes back to itself.
func FuzzCursor(f *testing.F) {
	at := time.Date(2026, 2, 23, 10, 0, 0, 123456000, time.UTC)
	f.Add(cursor{kind: "c", at: at, id: "0b8f6a52-3f0e-4c2b-9d7e-5f1a2b3c4d5e"}.String())
	f.Add(cursor{kind: "c", null: true, id: "0b8f6a52-3f0e-4c2b-9d7e-5f1a2b3c4d5e"}.String())
	f.Add(cursor{kind: "m", at: at, id: "0b8f6a52-3f0e-4c2b-9d7e-5f1a2b3c4d5e"}.String())
	f.Add("MXxjfC18MGI4ZjZhNTI")
	f.Add("")
	f.Fuzz(func(t *testing.T, s string) {
		for _, kind := range []string{"c", "m"} {
			c, err := parseCursor(s, kind)
			if err != nil || c == nil {
				continue
			}
			c2, err := parseCursor(c.String(), kind)
			if err != nil || c2 == nil || c2.id != c.id || c2.null != c.null || !c2.at.Equal(c.at) {
				t.Fatalf("%q decodes to %+v, which does not round-trip (%+v, %v)", s, c, c2, err)
			}
		}
	})
}

// FuzzReplyRequest: any body is refused with a message or yields a command the sender accepts.
func FuzzReplyRequest(f *testing.F) {
	for _, s := range []string{
		`{"text":"hi"}`, `{"command_id":"crm-1","text":"Your order ships today."}`,
		`{"media":{"url":"https://cdn.example.com/a.pdf","mime_type":"application/pdf","filename":"a.pdf"}}`,
		`{"text":5}`, `[]`, `{"text":"a\u0000b"}`, `{"media":{"url":"ftp://x"}}`, `{"text":"hi"} {}`, ``,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, body string) {
		var r replyRequest
		err := decodeJSON(strings.NewReader(body), &r)
		var media *event.Media
		if err == nil {
			media, err = r.validate()
		}
		if err != nil {
			if _, ok := err.(*badRequest); !ok || err.Error() == "" {
				t.Fatalf("%q: error %T %v, want a badRequest with a message", body, err, err)
			}
			return
		}
		cmd := &event.ReplyCommand{CommandID: "x", ConversationID: "c", Text: r.Text, Media: media}
		if r.CommandID != "" {
			cmd.CommandID = r.CommandID
		}
		data, err := event.Encode(cmd)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := event.Decode[event.ReplyCommand](data); err != nil {
			t.Fatalf("%q: accepted, but the sender would refuse the command: %v", body, err)
		}
		if !utf8.ValidString(r.Text) || utf8.RuneCountInString(r.Text) > maxTextRunes {
			t.Fatalf("%q: accepted invalid text", body)
		}
	})
}

// FuzzPatchRequest: any body is refused with a message or yields a valid change.
func FuzzPatchRequest(f *testing.F) {
	for _, s := range []string{
		`{"status":"resolved"}`, `{"assigned_team":"Sales","assigned_agent":"a-1"}`, `{"assigned_team":null}`,
		`{"status":null}`, `{"status":5}`, `{}`, `{"x":1}`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, body string) {
		var r patchRequest
		err := decodeJSON(strings.NewReader(body), &r)
		var p patch
		if err == nil {
			p, err = r.validate()
		}
		if err != nil {
			if _, ok := err.(*badRequest); !ok || err.Error() == "" {
				t.Fatalf("%q: error %T %v, want a badRequest with a message", body, err, err)
			}
			return
		}
		if p.status != nil && !oneOf(*p.status, statuses) {
			t.Fatalf("%q: accepted status %q", body, *p.status)
		}
		if p.status == nil && !p.setTeam && !p.setA {
			t.Fatalf("%q: accepted a change of nothing", body)
		}
	})
}
