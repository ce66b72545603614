package netcore

import (
	"encoding/json"
	"fmt"
	"net/http"

	"github.com/chatwire/chatwire/pkg/provider/fakeapi"
	"github.com/chatwire/chatwire/pkg/provider/phonenum"
)

// FakeServer is an httptest stand-in for Netcore's WhatsApp message API, for tests and benchmarks
// of code that sends through Netcore. It checks requests the way the documented API does (method,
// path, Bearer key, message[] body shape) and answers with the documented shapes; a script of
// replies reproduces Netcore's failures. The contract tests in this package keep it honest. URL,
// APIKey, Close, Client, SetLatency, Enqueue, Requests and Calls come from fakeapi.Server.
type FakeServer struct {
	*fakeapi.Server[SendRequest]
}

// FakeRequest is one request the fake received; ID is the ncmessage_id it returned when accepted.
type FakeRequest = fakeapi.Request[SendRequest]

// FakeReply is a scripted answer. A zero Status means "accept the message"; AcceptThenFail
// reproduces a response lost after Netcore took the message.
type FakeReply = fakeapi.Reply

// FakeFailure is Netcore's documented failure body with the given code and message.
func FakeFailure(httpStatus int, code, msg string) FakeReply {
	b, _ := json.Marshal(SendResponse{Status: "failure", Error: &SendErrorBody{Code: sendCode(code), Message: msg}})
	return FakeReply{Status: httpStatus, Body: string(b)}
}

// Documented answers, for scripts.
var (
	// FakeUnavailable is a 503.
	FakeUnavailable = FakeFailure(http.StatusServiceUnavailable, "503", "Service temporarily unavailable")
	// FakeRateLimited is a 429 with Retry-After: 1.
	FakeRateLimited = FakeReply{Status: http.StatusTooManyRequests,
		Body:   `{"status":"failure","error":{"code":"429","message":"Too many requests"}}`,
		Header: http.Header{"Retry-After": []string{"1"}}}
	// FakeOutsideWindow is 8007: outside the 24-hour customer window.
	FakeOutsideWindow = FakeFailure(http.StatusBadRequest, CodeWindowClosed,
		"Message failed to send because more than 24 hours have passed since the customer last replied")
)

// NewFake starts a fake Netcore that accepts apiKey. Close it when done.
func NewFake(apiKey string) *FakeServer {
	return &FakeServer{fakeapi.NewServer(apiKey, fakeapi.API[SendRequest]{
		Path:       SendPath,
		AuthScheme: "Bearer ",
		IDPrefix:   "nc-",
		Accepted:   func(id string) string { return fmt.Sprintf(`{"status":"success","data":{"id":%q}}`, id) },
		Refused:    fakeRefused,
		Validate:   FakeValidate,
	})}
}

// AcceptedFor counts the messages accepted with this x-apiheader.
func (f *FakeServer) AcceptedFor(ref string) int {
	return f.CountAccepted(func(b SendRequest) bool { return len(b.Message) > 0 && b.Message[0].XAPIHeader == ref })
}

// fakeRefused is Netcore's failure body for a request it turns away. The codes of the fake's own
// validation failures are illustrative: Netcore documents 8001–8008 without a public list of
// which is which, except 8007.
func fakeRefused(status int, why fakeapi.Refusal, detail string) string {
	code, msg := "8001", detail
	switch why {
	case fakeapi.RefuseMethod:
		code, msg = "405", "Method not allowed"
	case fakeapi.RefusePath:
		code, msg = "404", "Not found"
	case fakeapi.RefuseAuth:
		code, msg = "401", "Unauthorized: invalid API key"
	case fakeapi.RefuseContentType:
		msg = "Content-Type must be application/json"
	case fakeapi.RefuseBody:
		msg = "Invalid JSON payload: " + detail
	}
	return FakeFailure(status, code, msg).Body
}

// FakeValidate checks a body against the documented request shape and returns what is wrong, or "".
func FakeValidate(b SendRequest) string {
	if len(b.Message) != 1 {
		return "message must hold exactly one message"
	}
	m := b.Message[0]
	if len(m.RecipientWhatsapp) < 8 || len(m.RecipientWhatsapp) > 15 || phonenum.Digits(m.RecipientWhatsapp) != m.RecipientWhatsapp {
		return "recipient_whatsapp must be the country code and number, digits only"
	}
	if m.RecipientType != "individual" {
		return "recipient_type must be individual"
	}
	switch m.MessageType {
	case SendTypeText:
		if len(m.TypeText) != 1 || m.TypeText[0].Content == "" {
			return "type_text[0].content is required for message_type text"
		}
		if p := m.TypeText[0].PreviewURL; p != "true" && p != "false" {
			return `type_text[0].preview_url must be "true" or "false"`
		}
		if len(m.TypeMedia) != 0 {
			return "type_media is not allowed for message_type text"
		}
	case SendTypeMedia:
		if len(m.TypeMedia) != 1 || m.TypeMedia[0].Attachment.AttachmentURL == "" {
			return "type_media[0].attachment.attachment_url is required for message_type media"
		}
		switch m.TypeMedia[0].Attachment.AttachmentType {
		case SendAttachImage, SendAttachDocument, SendAttachVideo, SendAttachAudio:
		default:
			return "attachment_type must be image, document, video or audio"
		}
	default:
		return "message_type must be text or media"
	}
	return ""
}
