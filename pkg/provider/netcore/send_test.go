package netcore

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/chatwire/chatwire/pkg/event"
	"github.com/chatwire/chatwire/pkg/provider/providertest"
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
	providertest.CheckOneSend(t, f.Requests(), id, sendDocRequest, "Bearer nc-key")
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
			providertest.CheckAnswerShape(t, f.Client(), f.URL+SendPath, "Bearer "+f.APIKey, string(body), tc.doc)
		})
	}
}

func TestSendInterpretsDocumentedAnswers(t *testing.T) {
	providertest.CheckInterpret(t, sendInterpret, []providertest.InterpretCase{
		{Name: "success", Status: 200, Body: sendDocSuccess, WantID: "<ncmessage_id>"},
		{Name: "failure with 200", Status: 200, Body: sendDocFailure, WantPermanent: true, WantCode: "8006"},
		{Name: "8007 outside window", Status: 400, Body: FakeOutsideWindow.Body, WantPermanent: true, WantCode: "8007"},
		{Name: "numeric code", Status: 200, Body: `{"status":"failure","error":{"code":8003,"message":"bad"}}`, WantPermanent: true, WantCode: "8003"},
		{Name: "bad key", Status: 401, Body: `{"status":"failure","error":{"code":"401","message":"Unauthorized"}}`, WantPermanent: true, WantCode: "401"},
		{Name: "plain 403", Status: 403, Body: `forbidden`, WantPermanent: true, WantCode: "http_403"},
		{Name: "503 retries", Status: 503, Body: `<html>`, WantCode: "http_503"},
		{Name: "429 honours Retry-After", Status: 429, Header: http.Header{"Retry-After": {"3"}}, Body: ``, WantCode: "http_429", WantWait: 3 * time.Second},
		{Name: "504 may have been accepted", Status: 504, Body: ``, WantCode: "http_504", WantAmbiguous: true},
		{Name: "unreadable 200", Status: 200, Body: `{"status":"queued?"}`, WantCode: "bad_response", WantAmbiguous: true},
	})
}

func TestSendThroughFakeFailures(t *testing.T) {
	f, s := sendFake(t)
	f.Enqueue(FakeUnavailable, FakeOutsideWindow)
	_, err := s.Send(context.Background(), "r1", "919201053157", "hi", nil)
	var se *SendError
	if !errors.As(err, &se) || se.Permanent() || se.MaybeAccepted() {
		t.Fatalf("503: got %v", err)
	}
	if want := "netcore: HTTP 503 http_503: "; !strings.HasPrefix(err.Error(), want) {
		t.Fatalf("error message %q, want it to start with %q", err, want)
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
	providertest.CheckRefused(t, f.Client(), f.URL+SendPath, "Bearer "+f.APIKey,
		// The Meta Cloud API body the original system wrongly sent.
		`{"messaging_product":"whatsapp","to":"919201053157","type":"text","text":{"body":"hi"}}`,
		`{"message":[{"recipient_whatsapp":"919201053157","recipient_type":"individual","message_type":"text","type_text":[{"preview_url":false,"content":"hi"}]}]}`,
		`{"message":[{"recipient_whatsapp":"+919201053157","recipient_type":"individual","message_type":"text","type_text":[{"preview_url":"false","content":"hi"}]}]}`,
		`{"message":[{"recipient_whatsapp":"919201053157","recipient_type":"individual","message_type":"media","type_media":[{"attachment":{"attachment_type":"image"}}]}]}`,
	)
}

func TestSendNetworkErrors(t *testing.T) {
	f, s := sendFake(t)
	f.SetLatency(time.Second)
	providertest.CheckNetworkErrors(t,
		func(ctx context.Context, url string) error {
			_, err := NewSender(url, "k", nil).Send(ctx, "r", "919201053157", "hi", nil)
			return err
		},
		func(ctx context.Context) error {
			_, err := s.Send(ctx, "r", "919201053157", "hi", nil)
			return err
		})
}
