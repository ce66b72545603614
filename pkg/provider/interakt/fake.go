package interakt

import (
	"encoding/json"
	"fmt"
	"net/http"

	"github.com/chatwire/chatwire/pkg/provider/fakeapi"
	"github.com/chatwire/chatwire/pkg/provider/phonenum"
)

// FakeServer is an httptest stand-in for Interakt's public message API, for tests and benchmarks
// of code that sends through Interakt. It checks requests the way the documented API does (method,
// path, Basic key, body shape) and answers with the documented shapes; a script of replies lets a
// test reproduce Interakt's failures. The contract tests in this package keep it honest. URL,
// APIKey, Close, Client, SetLatency, Enqueue, Requests and Calls come from fakeapi.Server.
type FakeServer struct {
	*fakeapi.Server[SendRequest]
}

// FakeRequest is one request the fake received.
type FakeRequest = fakeapi.Request[SendRequest]

// FakeReply is a scripted answer. A zero Status means "accept the message"; AcceptThenFail
// reproduces a response lost after Interakt took the message (a 504 from a proxy, say).
type FakeReply = fakeapi.Reply

// Documented answers, for scripts.
var (
	// FakeUnavailable is a 503.
	FakeUnavailable = FakeReply{Status: http.StatusServiceUnavailable, Body: `{"result":false,"message":"Service Unavailable"}`}
	// FakeRateLimited is a 429 with Retry-After: 1.
	FakeRateLimited = FakeReply{Status: http.StatusTooManyRequests, Body: `{"result":false,"message":"Too many requests"}`,
		Header: http.Header{"Retry-After": []string{"1"}}}
	// FakeWindowClosed is Interakt refusing free-form text outside the 24-hour window: HTTP 200
	// with result:false.
	FakeWindowClosed = FakeReply{Status: http.StatusOK,
		Body: `{"result":false,"message":"Message could not be sent: the 24 hour customer service window is closed, use a template"}`}
	// FakeRefused is a generic result:false with HTTP 200.
	FakeRefused = FakeReply{Status: http.StatusOK, Body: `{"result":false,"message":"Invalid phone number"}`}
)

// NewFake starts a fake Interakt that accepts apiKey. Close it when done.
func NewFake(apiKey string) *FakeServer {
	return &FakeServer{fakeapi.NewServer(apiKey, fakeapi.API[SendRequest]{
		Path:       SendPath,
		AuthScheme: "Basic ",
		IDPrefix:   "ik-",
		Accepted: func(id string) string {
			return fmt.Sprintf(`{"result":true,"message":"Message created successfully","id":%q}`, id)
		},
		Refused:  fakeRefused,
		Validate: FakeValidate,
	})}
}

// AcceptedFor counts the messages accepted with this callbackData: more than one is a duplicate
// the customer would see.
func (f *FakeServer) AcceptedFor(callbackData string) int {
	return f.CountAccepted(func(b SendRequest) bool { return b.CallbackData == callbackData })
}

// fakeRefused is Interakt's answer to a request it turns away: result:false and a message.
func fakeRefused(_ int, why fakeapi.Refusal, detail string) string {
	msg := detail
	switch why {
	case fakeapi.RefuseMethod:
		msg = "Method not allowed"
	case fakeapi.RefusePath:
		msg = "Not found"
	case fakeapi.RefuseAuth:
		msg = "Invalid API key"
	case fakeapi.RefuseContentType:
		msg = "Content-Type must be application/json"
	case fakeapi.RefuseBody:
		msg = "Invalid request body: " + detail
	}
	b, _ := json.Marshal(SendResponse{Result: false, Message: msg})
	return string(b)
}

// FakeValidate checks a body against the documented request shape and returns what is wrong, or "".
func FakeValidate(b SendRequest) string {
	if len(b.FullPhoneNumber) < 8 || len(b.FullPhoneNumber) > 15 || phonenum.Digits(b.FullPhoneNumber) != b.FullPhoneNumber {
		return "fullPhoneNumber must be the country code and number, digits only"
	}
	switch b.Type {
	case SendTypeText:
		if b.Data.Message == "" {
			return "data.message is required for type Text"
		}
		if b.Data.MediaURL != "" {
			return "data.mediaUrl is not allowed for type Text"
		}
	case SendTypeImage, SendTypeDocument, SendTypeVideo, SendTypeAudio:
		if b.Data.MediaURL == "" {
			return "data.mediaUrl is required for type " + b.Type
		}
	default:
		return "type must be Text, Image, Document, Video or Audio"
	}
	return ""
}
