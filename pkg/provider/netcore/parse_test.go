package netcore

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/chatwire/chatwire/pkg/event"
	"github.com/chatwire/chatwire/pkg/provider/providertest"
)

var parseNow = time.Date(2026, 2, 23, 23, 59, 0, 0, time.UTC)

type (
	wantMsg    = providertest.WantMsg
	wantStatus = providertest.WantStatus
)

func unix(s int64) time.Time { return time.Unix(s, 0).UTC() }

// parseCase is what one testdata webhook must parse into.
type parseCase struct {
	msgs     []wantMsg
	statuses []wantStatus
	invalid  []string // reason prefixes
	err      bool     // Parse must fail with ErrParse
}

func TestParseTestdata(t *testing.T) {
	const cust, biz = "919201053157", "912249757556"
	msg := func(id, typ, text string, at int64, media *event.Media) wantMsg {
		return wantMsg{ExternalID: id, Type: typ, Text: text, FromPhone: cust, FromName: "Customer Name", ToPhone: biz,
			ReceivedAt: unix(at), Media: media}
	}
	reply := func(m wantMsg, to string) wantMsg { m.ReplyTo = to; return m }
	tests := map[string]parseCase{
		"text": {msgs: []wantMsg{msg("wamid.HBgMOTE5MjAxMDUzMTU3FQIAEhggQjQ1RkQ2MEFCQzEyMzQ1Njc4OTAA", "text", "Message content", 1740305701, nil)}},
		"batch_media": {msgs: []wantMsg{
			msg("wamid.IMG001", "image", "Broken seal", 1740305710, &event.Media{ProviderMediaID: "1234567890123456", MimeType: "image/jpeg",
				SHA256: "Qk1rE3dV3b9X7aC2bYy1w0u7o9kQf3n6Yq2o9c4m8s0=", Caption: "Broken seal"}),
			msg("wamid.DOC001", "document", "Invoice", 1740305711, &event.Media{ProviderMediaID: "2234567890123456", MimeType: "application/pdf",
				SHA256: "aGVsbG8gd29ybGQgc2hhMjU2IGRpZ2VzdCBoZXJlIQ==", Filename: "invoice-1234.pdf", Caption: "Invoice"}),
			msg("wamid.VID001", "video", "", 1740305712, &event.Media{ProviderMediaID: "3234567890123456", MimeType: "video/mp4", SHA256: "dmlkZW8="}),
			msg("wamid.AUD001", "audio", "", 1740305713, &event.Media{ProviderMediaID: "4234567890123456", MimeType: "audio/ogg; codecs=opus", SHA256: "YXVkaW8="}),
			msg("wamid.STK001", "sticker", "", 1740305714, &event.Media{ProviderMediaID: "5234567890123456", MimeType: "image/webp", SHA256: "c3RpY2tlcg=="}),
		}},
		"location_reaction": {msgs: []wantMsg{
			msg("wamid.LOC001", "location", "12.9716,77.5946 Home MG Road, Bengaluru", 1740305720, nil),
			reply(msg("wamid.REA001", "reaction", "👍", 1740305721, nil), "wamid.OUT777"),
		}},
		"replies": {msgs: []wantMsg{
			reply(msg("wamid.BTN001", "interactive", "Track order", 1740305730, nil), "a1b2c3d4-ncmsg-0001"),
			reply(msg("wamid.INT001", "interactive", "Yes, cancel it", 1740305731, nil), "a1b2c3d4-ncmsg-0002"),
			reply(msg("wamid.INT002", "interactive", "Tomorrow 10-12", 1740305732, nil), "wamid.OUT003"),
			msg("wamid.TXT002", "text", "lower-case type still works", 1740305733, nil),
		}},
		"contacts_unknown": {msgs: []wantMsg{
			msg("wamid.CON001", "contacts", "Ravi Kumar +91 98111 11111", 1740305740, nil),
			msg("wamid.UNK001", "unknown", "", 1740305741, nil),
		}},
		"delivery": {statuses: []wantStatus{
			{ExternalID: "a1b2c3d4-ncmsg-0001", Reference: "01JMZ8Q3V8T4ZP3W7H5C2N9K6R", Status: "sent", At: unix(1740305702)},
			{ExternalID: "a1b2c3d4-ncmsg-0001", Reference: "01JMZ8Q3V8T4ZP3W7H5C2N9K6R", Status: "delivered", At: time.Date(2026, 2, 23, 10, 15, 2, 0, time.UTC)},
			{ExternalID: "a1b2c3d4-ncmsg-0001", Status: "read", At: unix(1740305790)},
			{ExternalID: "a1b2c3d4-ncmsg-0002", Reference: "01JMZ8Q3V8T4ZP3W7H5C2N9K6S", Status: "failed", ErrorCode: "8007",
				ErrorText: "Message failed to send because more than 24 hours have passed", At: unix(1740305800)},
		}},
		"partly_invalid": {
			msgs:    []wantMsg{{ExternalID: "wamid.OK0001", Type: "text", Text: "kept", FromPhone: cust, ToPhone: biz, ReceivedAt: unix(1740305750)}},
			invalid: []string{"incoming_message: no message_id", "incoming_message: item is not an object", `delivery_status: unknown status "enqueued"`},
		},
		"empty_batch":      {},
		"invalid_not_json": {err: true},
		"invalid_shape":    {err: true},
	}
	providertest.EachWebhook(t, tests, func(t *testing.T, body []byte, tc parseCase) {
		res, err := Parse(body, parseNow)
		if !providertest.Parsed(t, err, ErrParse, tc.err, res) {
			return
		}
		providertest.CheckMessages(t, res.Messages, tc.msgs)
		for i, m := range res.Messages {
			if m.Channel != event.ChannelNetcore || m.Account != biz || !json.Valid(m.Payload) {
				t.Errorf("message %d: channel %q account %q payload valid %v", i, m.Channel, m.Account, json.Valid(m.Payload))
			}
			var own struct {
				MessageID string `json:"message_id"`
			}
			if err := json.Unmarshal(m.Payload, &own); err != nil || own.MessageID != m.ExternalID {
				t.Errorf("message %d: payload must be this message's own item, got message_id %q", i, own.MessageID)
			}
		}
		providertest.CheckStatuses(t, res.Statuses, tc.statuses)
		if len(res.Invalid) != len(tc.invalid) {
			t.Fatalf("got invalid %+v, want %v", res.Invalid, tc.invalid)
		}
		for i, r := range tc.invalid {
			if !strings.HasPrefix(res.Invalid[i].Reason, r) || !json.Valid(res.Invalid[i].Raw) {
				t.Errorf("invalid %d: %q, want reason %q and the raw item kept", i, res.Invalid[i].Reason, r)
			}
		}
	})
}

func TestParseTolerance(t *testing.T) {
	cases := map[string]struct {
		body string
		want string // text of the one message
	}{
		"single object instead of list": {`{"incoming_message":{"message_id":"m1","from":"911","message_type":"TEXT","text_type":{"text":"a"}}}`, "a"},
		"numeric epoch and ids":         {`{"incoming_message":[{"message_id":7,"from":919201053157,"received_at":1740305701,"message_type":"TEXT","text_type":{"text":"b"}}]}`, "b"},
		"millisecond epoch":             {`{"incoming_message":[{"message_id":"m3","from":"911","received_at":"1740305701000","message_type":"Text","text_type":{"text":"c"}}]}`, "c"},
		"context as empty string":       {`{"incoming_message":[{"message_id":"m4","from":"911","context":"","message_type":"TEXT","text_type":{"text":"d"}}]}`, "d"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			res, err := Parse([]byte(tc.body), parseNow)
			if err != nil {
				t.Fatal(err)
			}
			if len(res.Messages) != 1 || res.Messages[0].Text != tc.want {
				t.Fatalf("got %+v", res)
			}
			if at := res.Messages[0].ReceivedAt; name != "single object instead of list" && name != "context as empty string" && !at.Equal(unix(1740305701)) {
				t.Errorf("received_at %v", at)
			}
		})
	}
}

func FuzzParse(f *testing.F) {
	providertest.SeedWebhooks(f)
	f.Add([]byte(`{"incoming_message":[{"message_id":"x","from":"1","message_type":"CONTACTS","contacts_type":{"contacts":[{"name":"a"}]}}]}`))
	f.Add([]byte(`{"delivery_status":[{"x-apiheader":"r","status":"Failed","received_at":"NaN"}]}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		res, err := Parse(body, parseNow)
		if err != nil {
			if !errors.Is(err, ErrParse) {
				t.Fatalf("error does not wrap ErrParse: %v", err)
			}
			return
		}
		for _, m := range res.Messages {
			providertest.CheckWire(t, m)
		}
		for _, s := range res.Statuses {
			providertest.CheckWireStatus(t, s)
		}
		for _, inv := range res.Invalid {
			if len(inv.Raw) == 0 || inv.Reason == "" {
				t.Fatalf("invalid item without raw body or reason: %+v", inv)
			}
		}
	})
}
