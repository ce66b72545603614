package interakt

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

// Documented shapes (shared/PROVIDERS.md, Interakt "Send"). The contract tests compare our
// requests and the fake's answers against these, so neither can drift from the documentation.
const (
	sendDocRequest = `{ "fullPhoneNumber": "919876543210", "callbackData": "<our id>", "type": "Text",
  "data": { "message": "Your order ships today." } }`
	sendDocSuccess = `{"result": true, "message": "Message created successfully", "id": "<message id>"}`
	sendDocRefusal = `{"result": false, "message": "Invalid phone number"}`
)

// sendShape replaces every JSON leaf by its kind, so two documents compare by structure.
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
	reqs := f.Requests()
	if len(reqs) != 1 {
		t.Fatalf("fake got %d requests, want 1", len(reqs))
	}
	var got, want any
	_ = json.Unmarshal(reqs[0].Raw, &got)
	_ = json.Unmarshal([]byte(sendDocRequest), &want)
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("request body\n got %s\nwant %s", reqs[0].Raw, sendDocRequest)
	}
	if reqs[0].Auth != "Basic a2V5Og==" {
		t.Fatalf("Authorization = %q, want the key as configured after Basic", reqs[0].Auth)
	}
	if id == "" || id != reqs[0].ID {
		t.Fatalf("returned id %q, fake issued %q", id, reqs[0].ID)
	}
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
			req, _ := http.NewRequest(http.MethodPost, f.URL+SendPath,
				strings.NewReader(`{"fullPhoneNumber":"919876543210","callbackData":"x","type":"Text","data":{"message":"hi"}}`))
			req.Header.Set("Authorization", "Basic "+f.APIKey)
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
	now := time.Now()
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
		{name: "success", status: 200, body: sendDocSuccess, wantID: "<message id>"},
		{name: "result false with 200 is a failure", status: 200, body: sendDocRefusal, wantPermanent: true, wantCode: CodeRefused},
		{name: "window error is permanent", status: 200, body: FakeWindowClosed.Body, wantPermanent: true, wantCode: CodeWindowClosed},
		{name: "window error as 400", status: 400, body: `{"result":false,"message":"Outside 24 hour window"}`, wantPermanent: true, wantCode: CodeWindowClosed},
		{name: "bad key", status: 401, body: `{"result":false,"message":"Invalid API key"}`, wantPermanent: true, wantCode: CodeUnauthorized},
		{name: "503 retries", status: 503, body: `<html>unavailable</html>`, wantCode: "http_503"},
		{name: "429 honours Retry-After", status: 429, header: http.Header{"Retry-After": {"7"}}, body: `{}`, wantCode: "http_429", wantWait: 7 * time.Second},
		{name: "504 may have been accepted", status: 504, body: ``, wantCode: "http_504", wantAmbiguous: true},
		{name: "unreadable 200 may have been accepted", status: 200, body: `<html>`, wantCode: "bad_response", wantAmbiguous: true},
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
	for _, body := range []string{
		`{"fullPhoneNumber":"9876543210x","type":"Text","data":{"message":"hi"}}`,
		`{"countryCode":"+91","fullPhoneNumber":"919876543210","type":"Text","data":{"message":"hi"}}`,
		`{"fullPhoneNumber":"919876543210","type":"Text","data":{}}`,
		`{"fullPhoneNumber":"919876543210","type":"Image","data":{"message":"x"}}`,
		`{"fullPhoneNumber":"919876543210","type":"Sticker","data":{"message":"x"}}`,
	} {
		req, _ := http.NewRequest(http.MethodPost, f.URL+SendPath, strings.NewReader(body))
		req.Header.Set("Authorization", "Basic "+f.APIKey)
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
	if f.AcceptedFor("") != 0 {
		t.Fatal("fake accepted a malformed request")
	}
}

func TestSendNetworkErrors(t *testing.T) {
	// Nothing listens: the request never left, so it is safe to retry at once.
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close()
	_, err := NewSender(url, "k", nil).Send(context.Background(), "r", "919876543210", "hi", nil)
	var se *SendError
	if !errors.As(err, &se) || se.Permanent() || se.MaybeAccepted() {
		t.Fatalf("dial failure: %v (ambiguous=%v)", err, se != nil && se.MaybeAccepted())
	}

	// A timeout after the request was written: Interakt may have taken it.
	f, s := sendFake(t)
	f.SetLatency(time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err = s.Send(ctx, "r", "919876543210", "hi", nil)
	if !errors.As(err, &se) || se.Permanent() || !se.MaybeAccepted() || se.Code != "timeout" {
		t.Fatalf("timeout: %v", err)
	}
}

func TestSendPhoneDigits(t *testing.T) {
	for in, want := range map[string]string{"+91 98765-43210": "919876543210", "919876543210": "919876543210", "447700900123": "447700900123"} {
		if got := NewSendRequest("r", in, "x", nil).FullPhoneNumber; got != want {
			t.Errorf("%q → %q, want %q", in, got, want)
		}
	}
}
