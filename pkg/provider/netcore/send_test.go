package netcore

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/chatwire/chatwire/pkg/event"
)

// Documented shapes (shared/PROVIDERS.md, Netcore "Send"). The contract tests compare our requests
// and the fake's answers against these, so neither can drift from the documentation.
const (
	sendDocRequest = `{ "message": [{
    "recipient_whatsapp": "919201053157", "recipient_type": "individual",
    "message_type": "text", "x-apiheader": "<our ref>",
    "type_text": [{ "preview_url": "false", "content": "Your order ships today." }]
}]}`
	sendDocSuccess = `{"status":"success","data":{"id":"<ncmessage_id>"}}`
	sendDocFailure = `{"status":"failure","error":{"code":"8006","message":"…"}}`
)

func sendShape(t *testing.T, raw []byte) any {
	t.Helper()
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		t.Fatalf("not JSON: %v: %s", err, raw)
	}
	var walk func(any) any
	walk = func(v any) any {
		switch x := v.(type) {
		case map[string]any:
			out := map[string]any{}
			for k, e := range x {
				out[k] = walk(e)
			}
			return out
		case []any:
			out := make([]any, len(x))
			for i, e := range x {
				out[i] = walk(e)
			}
			return out
		case string:
			return "string"
		case bool:
			return "bool"
		case float64:
			return "number"
		}
		return "null"
	}
	return walk(v)
}

func sendFake(t *testing.T) (*FakeServer, *Sender) {
	t.Helper()
	f := NewFake("nc-key")
	t.Cleanup(f.Close)
	return f, NewSender(f.URL, f.APIKey, f.Client())
}

func TestSendContractTextRequestMatchesDocumentation(t *testing.T) {
	f, s := sendFake(t)
	id, err := s.Send(context.Background(), "<our ref>", "919201053157", "Your order ships today.", nil)
	if err != nil {
		t.Fatalf("send: %v", err)
	}
	reqs := f.Requests()
	if len(reqs) != 1 {
		t.Fatalf("fake got %d requests", len(reqs))
	}
	var got, want any
	_ = json.Unmarshal(reqs[0].Raw, &got)
	_ = json.Unmarshal([]byte(sendDocRequest), &want)
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("request body\n got %s\nwant %s", reqs[0].Raw, sendDocRequest)
	}
	if reqs[0].Auth != "Bearer nc-key" {
		t.Fatalf("Authorization = %q", reqs[0].Auth)
	}
	if id == "" || id != reqs[0].ID {
		t.Fatalf("returned id %q, fake issued ncmessage_id %q", id, reqs[0].ID)
	}
}

func TestSendAcceptsLegacyFullURL(t *testing.T) {
	f, _ := sendFake(t)
	s := NewSender(f.URL+"/api/v2/message/", f.APIKey, f.Client())
	if _, err := s.Send(context.Background(), "r", "919201053157", "hi", nil); err != nil {
		t.Fatalf("send via a NETCORE_API_URL ending in /api/v2/message/: %v", err)
	}
}

func TestSendContractFakeAnswersAsDocumented(t *testing.T) {
	for name, tc := range map[string]struct {
		reply FakeReply
		doc   string
	}{
		"success": {FakeReply{}, sendDocSuccess},
		"8007":    {FakeOutsideWindow, sendDocFailure},
		"503":     {FakeUnavailable, sendDocFailure},
		"429":     {FakeRateLimited, sendDocFailure},
	} {
		t.Run(name, func(t *testing.T) {
			f, _ := sendFake(t)
			f.Enqueue(tc.reply)
			body, _ := json.Marshal(NewSendRequest("x", "919201053157", "hi", nil))
			req, _ := http.NewRequest(http.MethodPost, f.URL+SendPath, strings.NewReader(string(body)))
			req.Header.Set("Authorization", "Bearer "+f.APIKey)
			req.Header.Set("Content-Type", "application/json")
			resp, err := f.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var raw json.RawMessage
			if err := json.NewDecoder(resp.Body).Decode(&raw); err != nil {
				t.Fatalf("fake answered non-JSON: %v", err)
			}
			if got, want := sendShape(t, raw), sendShape(t, []byte(tc.doc)); !reflect.DeepEqual(got, want) {
				t.Fatalf("fake answer shape %v, documented %v (%s)", got, want, raw)
			}
		})
	}
}

func TestSendInterpretsDocumentedAnswers(t *testing.T) {
	cases := []struct {
		name          string
		status        int
		header        http.Header
		body          string
		wantID        string
		wantPermanent bool
		wantAmbiguous bool
		wantCode      string
		wantWait      time.Duration
	}{
		{name: "success", status: 200, body: sendDocSuccess, wantID: "<ncmessage_id>"},
		{name: "failure with 200", status: 200, body: sendDocFailure, wantPermanent: true, wantCode: "8006"},
		{name: "8007 outside window", status: 400, body: FakeOutsideWindow.Body, wantPermanent: true, wantCode: "8007"},
		{name: "numeric code", status: 200, body: `{"status":"failure","error":{"code":8003,"message":"bad"}}`, wantPermanent: true, wantCode: "8003"},
		{name: "bad key", status: 401, body: `{"status":"failure","error":{"code":"401","message":"Unauthorized"}}`, wantPermanent: true, wantCode: "401"},
		{name: "plain 403", status: 403, body: `forbidden`, wantPermanent: true, wantCode: "http_403"},
		{name: "503 retries", status: 503, body: `<html>`, wantCode: "http_503"},
		{name: "429 honours Retry-After", status: 429, header: http.Header{"Retry-After": {"3"}}, body: ``, wantCode: "http_429", wantWait: 3 * time.Second},
		{name: "504 may have been accepted", status: 504, body: ``, wantCode: "http_504", wantAmbiguous: true},
		{name: "unreadable 200", status: 200, body: `{"status":"queued?"}`, wantCode: "bad_response", wantAmbiguous: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := tc.header
			if h == nil {
				h = http.Header{}
			}
			id, err := sendInterpret(tc.status, h, []byte(tc.body))
			if tc.wantID != "" {
				if err != nil || id != tc.wantID {
					t.Fatalf("got %q, %v; want %q", id, err, tc.wantID)
				}
				return
			}
			var se *SendError
			if !errors.As(err, &se) {
				t.Fatalf("error %v is not a *SendError", err)
			}
			if se.Permanent() != tc.wantPermanent || se.MaybeAccepted() != tc.wantAmbiguous ||
				se.ProviderCode() != tc.wantCode || se.RetryAfter() != tc.wantWait {
				t.Fatalf("got permanent=%v ambiguous=%v code=%q wait=%v", se.Permanent(), se.MaybeAccepted(), se.ProviderCode(), se.RetryAfter())
			}
			if se.ProviderText() == "" {
				t.Fatal("empty reason")
			}
		})
	}
}

func TestSendThroughFakeFailures(t *testing.T) {
	f, s := sendFake(t)
	f.Enqueue(FakeUnavailable, FakeOutsideWindow)
	_, err := s.Send(context.Background(), "r1", "919201053157", "hi", nil)
	var se *SendError
	if !errors.As(err, &se) || se.Permanent() || se.MaybeAccepted() {
		t.Fatalf("503: got %v", err)
	}
	_, err = s.Send(context.Background(), "r1", "919201053157", "hi", nil)
	if !errors.As(err, &se) || !se.Permanent() || se.Code != CodeWindowClosed || !strings.Contains(se.Text, "24 hours") {
		t.Fatalf("8007: got %v", err)
	}
	if f.AcceptedFor("r1") != 0 {
		t.Fatal("a refused message was accepted")
	}
	_, err = NewSender(f.URL, "wrong", f.Client()).Send(context.Background(), "r2", "919201053157", "hi", nil)
	if !errors.As(err, &se) || !se.Permanent() || se.HTTPStatus != 401 {
		t.Fatalf("bad key: %v", err)
	}
}

func TestSendMediaRequests(t *testing.T) {
	f, s := sendFake(t)
	for _, m := range []*event.Media{
		{URL: "https://cdn.example/p.png", MimeType: "image/png", Caption: "label"},
		{URL: "https://cdn.example/i.pdf", MimeType: "application/pdf", Filename: "invoice.pdf"},
	} {
		if _, err := s.Send(context.Background(), "ref", "14155550123", "", m); err != nil {
			t.Fatalf("media %s: %v", m.MimeType, err)
		}
	}
	reqs := f.Requests()
	a := reqs[0].Body.Message[0]
	if a.MessageType != SendTypeMedia || a.TypeMedia[0].Attachment.AttachmentType != SendAttachImage ||
		a.TypeMedia[0].Attachment.Caption != "label" || a.RecipientWhatsapp != "14155550123" {
		t.Fatalf("image request %s", reqs[0].Raw)
	}
	d := reqs[1].Body.Message[0].TypeMedia[0].Attachment
	if d.AttachmentType != SendAttachDocument || d.Filename != "invoice.pdf" {
		t.Fatalf("document request %s", reqs[1].Raw)
	}
}

func TestSendFakeRefusesMalformedRequests(t *testing.T) {
	f, _ := sendFake(t)
	for _, body := range []string{
		// The Meta Cloud API body the original system wrongly sent.
		`{"messaging_product":"whatsapp","to":"919201053157","type":"text","text":{"body":"hi"}}`,
		`{"message":[{"recipient_whatsapp":"919201053157","recipient_type":"individual","message_type":"text","type_text":[{"preview_url":false,"content":"hi"}]}]}`,
		`{"message":[{"recipient_whatsapp":"+919201053157","recipient_type":"individual","message_type":"text","type_text":[{"preview_url":"false","content":"hi"}]}]}`,
		`{"message":[{"recipient_whatsapp":"919201053157","recipient_type":"individual","message_type":"media","type_media":[{"attachment":{"attachment_type":"image"}}]}]}`,
	} {
		req, _ := http.NewRequest(http.MethodPost, f.URL+SendPath, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+f.APIKey)
		req.Header.Set("Content-Type", "application/json")
		resp, err := f.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("%s: status %d, want 400", body, resp.StatusCode)
		}
	}
}

func TestSendNetworkErrors(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close()
	_, err := NewSender(url, "k", nil).Send(context.Background(), "r", "919201053157", "hi", nil)
	var se *SendError
	if !errors.As(err, &se) || se.Permanent() || se.MaybeAccepted() {
		t.Fatalf("dial failure: %v", err)
	}
	f, s := sendFake(t)
	f.SetLatency(time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err = s.Send(ctx, "r", "919201053157", "hi", nil)
	if !errors.As(err, &se) || se.Permanent() || !se.MaybeAccepted() || se.Code != "timeout" {
		t.Fatalf("timeout: %v", err)
	}
}
