package interakt

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/chatwire/chatwire/pkg/event"
	"github.com/chatwire/chatwire/pkg/provider/providertest"
)

// Documented shapes (shared/PROVIDERS.md, Interakt "Send"). The contract tests compare our
// requests and the fake's answers against these, so neither can drift from the documentation.
const (
	sendDocRequest = `{ "fullPhoneNumber": "919876543210", "callbackData": "<our id>", "type": "Text",
  "data": { "message": "Your order ships today." } }`
	sendDocSuccess = `{"result": true, "message": "Message created successfully", "id": "<message id>"}`
	sendDocRefusal = `{"result": false, "message": "Invalid phone number"}`
)

func sendFake(t *testing.T) (*FakeServer, *Sender) {
	t.Helper()
	f := NewFake("a2V5Og==")
	t.Cleanup(f.Close)
	return f, NewSender(f.URL, f.APIKey, f.Client())
}

func TestSendContractTextRequestMatchesDocumentation(t *testing.T) {
	f, s := sendFake(t)
	id, err := s.Send(context.Background(), "<our id>", "919876543210", "Your order ships today.", nil)
	if err != nil {
		t.Fatalf("send: %v", err)
	}
	providertest.CheckOneSend(t, f.Requests(), id, sendDocRequest, "Basic a2V5Og==")
}

func TestSendContractFakeAnswersAsDocumented(t *testing.T) {
	for name, tc := range map[string]struct {
		reply FakeReply
		doc   string
	}{
		"success": {FakeReply{}, sendDocSuccess},
		"refusal": {FakeRefused, sendDocRefusal},
		"window":  {FakeWindowClosed, sendDocRefusal},
		"503":     {FakeUnavailable, sendDocRefusal},
		"429":     {FakeRateLimited, sendDocRefusal},
	} {
		t.Run(name, func(t *testing.T) {
			f, _ := sendFake(t)
			f.Enqueue(tc.reply)
			providertest.CheckAnswerShape(t, f.Client(), f.URL+SendPath, "Basic "+f.APIKey,
				`{"fullPhoneNumber":"919876543210","callbackData":"x","type":"Text","data":{"message":"hi"}}`, tc.doc)
		})
	}
}

func TestSendInterpretsDocumentedAnswers(t *testing.T) {
	now := time.Now()
	providertest.CheckInterpret(t, sendInterpret, []providertest.InterpretCase{
		{Name: "success", Status: 200, Body: sendDocSuccess, WantID: "<message id>"},
		{Name: "result false with 200 is a failure", Status: 200, Body: sendDocRefusal, WantPermanent: true, WantCode: CodeRefused},
		{Name: "window error is permanent", Status: 200, Body: FakeWindowClosed.Body, WantPermanent: true, WantCode: CodeWindowClosed},
		{Name: "window error as 400", Status: 400, Body: `{"result":false,"message":"Outside 24 hour window"}`, WantPermanent: true, WantCode: CodeWindowClosed},
		{Name: "bad key", Status: 401, Body: `{"result":false,"message":"Invalid API key"}`, WantPermanent: true, WantCode: CodeUnauthorized},
		{Name: "503 retries", Status: 503, Body: `<html>unavailable</html>`, WantCode: "http_503"},
		{Name: "429 honours Retry-After", Status: 429, Header: http.Header{"Retry-After": {"7"}}, Body: `{}`, WantCode: "http_429", WantWait: 7 * time.Second},
		{Name: "504 may have been accepted", Status: 504, Body: ``, WantCode: "http_504", WantAmbiguous: true},
		{Name: "unreadable 200 may have been accepted", Status: 200, Body: `<html>`, WantCode: "bad_response", WantAmbiguous: true},
	})
	if d := SendRetryAfter(now.Add(3*time.Second).UTC().Format(http.TimeFormat), now); d < time.Second || d > 3*time.Second {
		t.Fatalf("Retry-After as a date: %v", d)
	}
}

func TestSendThroughFakeFailures(t *testing.T) {
	f, s := sendFake(t)
	f.Enqueue(FakeUnavailable, FakeWindowClosed)
	_, err := s.Send(context.Background(), "r1", "919876543210", "hi", nil)
	var se *SendError
	if !errors.As(err, &se) || se.Permanent() || se.MaybeAccepted() {
		t.Fatalf("503: got %v, want temporary and not accepted", err)
	}
	if want := "interakt: HTTP 503 http_503: "; !strings.HasPrefix(err.Error(), want) {
		t.Fatalf("error message %q, want it to start with %q", err, want)
	}
	_, err = s.Send(context.Background(), "r1", "919876543210", "hi", nil)
	if !errors.As(err, &se) || !se.Permanent() || se.Code != CodeWindowClosed {
		t.Fatalf("window: got %v", err)
	}
	if n := f.AcceptedFor("r1"); n != 0 {
		t.Fatalf("accepted %d", n)
	}

	bad := NewSender(f.URL, "wrong", f.Client())
	_, err = bad.Send(context.Background(), "r2", "919876543210", "hi", nil)
	if !errors.As(err, &se) || !se.Permanent() || se.HTTPStatus != 401 {
		t.Fatalf("bad key: got %v, want permanent 401", err)
	}
}

func TestSendMediaRequests(t *testing.T) {
	f, s := sendFake(t)
	media := []*event.Media{
		{URL: "https://cdn.example/p.jpg", MimeType: "image/jpeg", Caption: "your parcel"},
		{URL: "https://cdn.example/i.pdf", MimeType: "application/pdf", Filename: "invoice.pdf"},
	}
	for _, m := range media {
		if _, err := s.Send(context.Background(), "ref", "14155550123", "", m); err != nil {
			t.Fatalf("media %s: %v", m.MimeType, err)
		}
	}
	reqs := f.Requests()
	if reqs[0].Body.Type != SendTypeImage || reqs[0].Body.Data.MediaURL != media[0].URL || reqs[0].Body.Data.Message != "your parcel" {
		t.Fatalf("image request %s", reqs[0].Raw)
	}
	if reqs[1].Body.Type != SendTypeDocument || reqs[1].Body.Data.FileName != "invoice.pdf" {
		t.Fatalf("document request %s", reqs[1].Raw)
	}
	// No country-code assumption: a US number goes out as stored.
	if reqs[0].Body.FullPhoneNumber != "14155550123" {
		t.Fatalf("fullPhoneNumber %q", reqs[0].Body.FullPhoneNumber)
	}
}

func TestSendFakeRefusesMalformedRequests(t *testing.T) {
	f, _ := sendFake(t)
	providertest.CheckRefused(t, f.Client(), f.URL+SendPath, "Basic "+f.APIKey,
		`{"fullPhoneNumber":"9876543210x","type":"Text","data":{"message":"hi"}}`,
		`{"countryCode":"+91","fullPhoneNumber":"919876543210","type":"Text","data":{"message":"hi"}}`,
		`{"fullPhoneNumber":"919876543210","type":"Text","data":{}}`,
		`{"fullPhoneNumber":"919876543210","type":"Image","data":{"message":"x"}}`,
		`{"fullPhoneNumber":"919876543210","type":"Sticker","data":{"message":"x"}}`,
	)
	if f.AcceptedFor("") != 0 {
		t.Fatal("fake accepted a malformed request")
	}
}

func TestSendNetworkErrors(t *testing.T) {
	f, s := sendFake(t)
	f.SetLatency(time.Second)
	providertest.CheckNetworkErrors(t,
		func(ctx context.Context, url string) error {
			_, err := NewSender(url, "k", nil).Send(ctx, "r", "919876543210", "hi", nil)
			return err
		},
		func(ctx context.Context) error {
			_, err := s.Send(ctx, "r", "919876543210", "hi", nil)
			return err
		})
}

func TestSendPhoneDigits(t *testing.T) {
	for in, want := range map[string]string{"+91 98765-43210": "919876543210", "919876543210": "919876543210", "447700900123": "447700900123"} {
		if got := NewSendRequest("r", in, "x", nil).FullPhoneNumber; got != want {
			t.Errorf("%q → %q, want %q", in, got, want)
		}
	}
}
