package interakt

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

func ts(s string) time.Time {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		panic(err)
	}
	return t
}

// parseCase is what one testdata webhook must parse into.
type parseCase struct {
	msgs     []wantMsg
	statuses []wantStatus
	ignored  []string // reasons, prefix match
	err      bool     // Parse must fail with ErrParse
}

func TestParseTestdata(t *testing.T) {
	const asha = "919876543210"
	at := ts("2026-02-23T10:15:01Z")
	msg := func(id, typ, text string, media *event.Media) wantMsg {
		return wantMsg{ExternalID: id, Type: typ, Text: text, FromPhone: asha, FromName: "Asha", ReceivedAt: at, Media: media}
	}
	statusAt := func(s string) wantStatus {
		return wantStatus{ExternalID: "9f3e7a55-1c2d-4b8e-8a11-000000000001", Reference: "01JMZ8Q3V8T4ZP3W7H5C2N9K6R", Status: s}
	}
	wfQA := "Q: What is your order number? / A: ORD-5521\nQ: Please share a photo of the damage / A: \nQ: Refund or replacement? / A: Refund"
	tests := map[string]parseCase{
		"text":  {msgs: []wantMsg{msg("5b6a0c1e-0001-4e8a-9f00-aa0000000001", "text", "Where is my order?", nil)}},
		"image": {msgs: []wantMsg{msg("5b6a0c1e-0002-4e8a-9f00-aa0000000002", "image", "Damaged box", &event.Media{URL: "https://interakt-media.example/whatsapp/abc123/photo.jpg?sig=x", Caption: "Damaged box"})}},
		"video": {msgs: []wantMsg{msg("5b6a0c1e-0003-4e8a-9f00-aa0000000003", "video", "", &event.Media{URL: "https://interakt-media.example/whatsapp/abc124/clip.mp4"})}},
		"audio": {msgs: []wantMsg{msg("5b6a0c1e-0004-4e8a-9f00-aa0000000004", "audio", "", &event.Media{URL: "https://interakt-media.example/whatsapp/abc125/voice.ogg"})}},
		"document": {msgs: []wantMsg{msg("5b6a0c1e-0005-4e8a-9f00-aa0000000005", "document", "Invoice for February",
			&event.Media{URL: "https://interakt-media.example/whatsapp/abc126/invoice-feb.pdf", Caption: "Invoice for February", Filename: "invoice-feb.pdf"})}},
		"location": {msgs: []wantMsg{msg("5b6a0c1e-0006-4e8a-9f00-aa0000000006", "location", "19.0760,72.8777 Warehouse 4 Andheri East, Mumbai", nil)}},
		"sticker":  {msgs: []wantMsg{msg("5b6a0c1e-0007-4e8a-9f00-aa0000000007", "sticker", "", &event.Media{URL: "https://interakt-media.example/whatsapp/abc127/sticker.webp"})}},
		"button_reply": {msgs: []wantMsg{func() wantMsg {
			m := msg("5b6a0c1e-0008-4e8a-9f00-aa0000000008", "interactive", "Track my order", nil)
			m.ReplyTo = "wamid.HBgMOTE5ODc2NTQzMjEwFQIAERgSQUJDREVGMDEyMzQ1Njc4OQA="
			return m
		}()}},
		"list_reply":              {msgs: []wantMsg{msg("5b6a0c1e-0009-4e8a-9f00-aa0000000009", "interactive", "Refund status", nil)}},
		"button_reply_unparsable": {msgs: []wantMsg{msg("5b6a0c1e-0010-4e8a-9f00-aa0000000010", "interactive", "Yes please", nil)}},
		"template":                {msgs: []wantMsg{msg("5b6a0c1e-0011-4e8a-9f00-aa0000000011", "template", "Hi Asha, your order #1234 has shipped.", nil)}},
		"contacts": {msgs: []wantMsg{msg("5b6a0c1e-0012-4e8a-9f00-aa0000000012", "contacts",
			`[{"name":{"formatted_name":"Ravi"},"phones":[{"phone":"+919811111111"}]}]`, nil)}},
		"unknown_type": {msgs: []wantMsg{msg("5b6a0c1e-0013-4e8a-9f00-aa0000000013", "unknown", `{"question":"Which slot?"}`, nil)}},
		"phone_already_prefixed": {msgs: []wantMsg{{ExternalID: "5b6a0c1e-0020-4e8a-9f00-aa0000000020", Type: "text", Text: "Hello",
			FromPhone: "919812345678", FromName: "Vikram", ReceivedAt: ts("2026-02-23T11:00:00.25Z")}}},
		"phone_other_country": {msgs: []wantMsg{{ExternalID: "5b6a0c1e-0021-4e8a-9f00-aa0000000021", Type: "text", Text: "Hi from SF",
			FromPhone: "14155550123", ReceivedAt: ts("2026-02-23T11:05:00Z")}}},
		"echo_agent":      {ignored: []string{"echo of outbound"}},
		"echo_public_api": {ignored: []string{"echo of outbound"}},
		"workflow": {msgs: []wantMsg{
			{ExternalID: "workflow_wf-7d1c2b_ans-1", Type: "text", Text: "ORD-5521", FromPhone: "919900112233", FromName: "Meera", ReceivedAt: ts("2026-02-23T12:00:05Z"), ClassifyText: wfQA},
			{ExternalID: "workflow_wf-7d1c2b_ans-2", Type: "image", FromPhone: "919900112233", FromName: "Meera", ReceivedAt: ts("2026-02-23T12:00:05Z"), ClassifyText: wfQA,
				Media: &event.Media{URL: "https://interakt-media.example/wf/damage.jpg"}},
			{ExternalID: "workflow_wf-7d1c2b_ans-3", Type: "text", Text: "Refund", FromPhone: "919900112233", FromName: "Meera", ReceivedAt: ts("2026-02-23T12:00:05Z"), ClassifyText: wfQA},
		}},
		"status_sent":      {statuses: []wantStatus{func() wantStatus { s := statusAt("sent"); s.At = ts("2026-02-23T13:00:01Z"); return s }()}},
		"status_delivered": {statuses: []wantStatus{func() wantStatus { s := statusAt("delivered"); s.At = ts("2026-02-23T13:00:02Z"); return s }()}},
		"status_read":      {statuses: []wantStatus{func() wantStatus { s := statusAt("read"); s.At = ts("2026-02-23T13:00:09Z"); return s }()}},
		"status_failed": {statuses: []wantStatus{func() wantStatus {
			s := statusAt("failed")
			s.At, s.ErrorCode, s.ErrorText = ts("2026-02-23T13:00:04Z"), "131026", "Message undeliverable"
			return s
		}()}},
		"clicked":               {ignored: []string{"button click"}},
		"invalid_not_json":      {err: true},
		"invalid_unknown_event": {err: true},
		"invalid_no_phone":      {err: true},
		"invalid_array":         {err: true},
	}
	providertest.EachWebhook(t, tests, func(t *testing.T, body []byte, tc parseCase) {
		res, err := Parse(body, parseNow)
		if !providertest.Parsed(t, err, ErrParse, tc.err, res) {
			return
		}
		providertest.CheckMessages(t, res.Messages, tc.msgs)
		for i, m := range res.Messages {
			if m.Channel != event.ChannelInterakt || m.ID != "" || !json.Valid(m.Payload) || m.ReceivedAt.Location() != time.UTC {
				t.Errorf("message %d: channel %q id %q payload valid %v loc %v", i, m.Channel, m.ID, json.Valid(m.Payload), m.ReceivedAt.Location())
			}
		}
		providertest.CheckStatuses(t, res.Statuses, tc.statuses)
		if len(res.Ignored) != len(tc.ignored) {
			t.Fatalf("got ignored %+v, want %v", res.Ignored, tc.ignored)
		}
		for i, r := range tc.ignored {
			if !strings.HasPrefix(res.Ignored[i].Reason, r) || res.Ignored[i].ExternalID == "" {
				t.Errorf("ignored %d: %+v, want reason %q", i, res.Ignored[i], r)
			}
		}
	})
}

func TestParseTimestampFallbacks(t *testing.T) {
	body := `{"timestamp":"2026-02-23T10:00:00Z","type":"message_received","data":{"customer":{"phone_number":"9876543210","country_code":"91"},
	 "message":{"id":"m1","message_content_type":"Text","message":"x","received_at_utc":"not a time"}}}`
	res, err := Parse([]byte(body), parseNow)
	if err != nil {
		t.Fatal(err)
	}
	if got := res.Messages[0].ReceivedAt; !got.Equal(ts("2026-02-23T10:00:00Z")) {
		t.Errorf("unreadable received_at_utc should fall back to the envelope timestamp, got %v", got)
	}
	body = strings.Replace(body, `"timestamp":"2026-02-23T10:00:00Z",`, ``, 1)
	res, err = Parse([]byte(body), parseNow)
	if err != nil {
		t.Fatal(err)
	}
	if got := res.Messages[0].ReceivedAt; !got.Equal(parseNow) {
		t.Errorf("no readable time at all should fall back to now, got %v", got)
	}
}

func TestParseNumericIDs(t *testing.T) {
	body := `{"type":"message_received","data":{"customer":{"phone_number":9876543210,"country_code":91},
	 "message":{"id":12345,"message_content_type":"Text","message":"hi","message_context":""}}}`
	res, err := Parse([]byte(body), parseNow)
	if err != nil {
		t.Fatal(err)
	}
	if m := res.Messages[0]; m.ExternalID != "12345" || m.FromPhone != "919876543210" {
		t.Errorf("numbers where strings are expected must still parse, got id %q phone %q", m.ExternalID, m.FromPhone)
	}
}

func FuzzParse(f *testing.F) {
	providertest.SeedWebhooks(f)
	f.Add([]byte(`{"type":"message_received","data":{"customer":null,"message":{"id":"1","message":{"a":[1,2]}}}}`))
	f.Add([]byte(`{"type":"workflow_response_update","data":{"id":"w","customer_number":"+1","data":[null,{},{"answer":{}}]}}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		res, err := Parse(body, parseNow)
		if err != nil {
			if !errors.Is(err, ErrParse) {
				t.Fatalf("error does not wrap ErrParse: %v", err)
			}
			return
		}
		for _, m := range res.Messages {
			if !json.Valid(m.Payload) {
				t.Fatalf("payload is not JSON: %q", m.Payload)
			}
			providertest.CheckWire(t, m)
		}
		for _, s := range res.Statuses {
			providertest.CheckWireStatus(t, s)
		}
	})
}
