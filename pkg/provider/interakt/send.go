package interakt

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/chatwire/chatwire/pkg/event"
	"github.com/chatwire/chatwire/pkg/provider/phonenum"
	"github.com/chatwire/chatwire/pkg/provider/sendapi"
)

// SendPath is the path of Interakt's public message API.
const SendPath = "/v1/public/message/"

// Sender sends session messages (text, image, document, video, audio by URL) through Interakt's
// public message API. It is safe for concurrent use.
type Sender struct {
	api *sendapi.Client
}

// NewSender returns a Sender for the API at baseURL (https://api.interakt.ai) with the API key as
// the Interakt dashboard gives it (already base64; it is sent as "Authorization: Basic <key>").
// client's Timeout is a backstop (30 s when nil); callers bound each send with a context.
func NewSender(baseURL, apiKey string, client *http.Client) *Sender {
	auth := strings.TrimSpace(apiKey)
	if !strings.HasPrefix(strings.ToLower(auth), "basic ") {
		auth = "Basic " + auth
	}
	return &Sender{api: sendapi.NewClient("interakt", strings.TrimSuffix(baseURL, "/")+SendPath, auth, client)}
}

// SendRequest is Interakt's message body. fullPhoneNumber is the number as stored (country code
// and number, digits only), never rebuilt from an assumed country code.
type SendRequest struct {
	FullPhoneNumber string   `json:"fullPhoneNumber"`
	CallbackData    string   `json:"callbackData,omitempty"`
	Type            string   `json:"type"`
	Data            SendData `json:"data"`
}

// SendData is the content of a SendRequest: the text (or a media caption) and, for media, its URL.
type SendData struct {
	Message  string `json:"message,omitempty"`
	MediaURL string `json:"mediaUrl,omitempty"`
	FileName string `json:"fileName,omitempty"`
}

// SendResponse is Interakt's answer. Result false can arrive with HTTP 200 and is a failure.
type SendResponse struct {
	Result  bool   `json:"result"`
	Message string `json:"message"`
	ID      string `json:"id"`
}

// Interakt message types for sends.
const (
	SendTypeText     = "Text"
	SendTypeImage    = "Image"
	SendTypeDocument = "Document"
	SendTypeVideo    = "Video"
	SendTypeAudio    = "Audio"
)

// NewSendRequest builds the body for one reply. ref is our message id, echoed back by Interakt's
// delivery webhooks as callbackData.
func NewSendRequest(ref, phone, text string, media *event.Media) SendRequest {
	r := SendRequest{FullPhoneNumber: phonenum.Digits(phone), CallbackData: ref, Type: SendTypeText,
		Data: SendData{Message: text}}
	if media != nil && media.URL != "" {
		r.Type = SendMediaType(media)
		r.Data.MediaURL = media.URL
		if media.Caption != "" {
			r.Data.Message = media.Caption
		}
		if r.Type == SendTypeDocument {
			r.Data.FileName = media.Filename
		}
	}
	return r
}

// SendMediaType picks Interakt's type for an attachment from its MIME type (document otherwise).
func SendMediaType(m *event.Media) string {
	mt := strings.ToLower(m.MimeType)
	switch {
	case strings.HasPrefix(mt, "image/"):
		return SendTypeImage
	case strings.HasPrefix(mt, "video/"):
		return SendTypeVideo
	case strings.HasPrefix(mt, "audio/"):
		return SendTypeAudio
	}
	return SendTypeDocument
}

// Send sends one reply to phone and returns Interakt's message id. ref (our message id) travels as
// callbackData so a delivery receipt can be matched even when this response is lost. Errors are
// *SendError.
func (s *Sender) Send(ctx context.Context, ref, phone, text string, media *event.Media) (string, error) {
	return s.api.Post(ctx, NewSendRequest(ref, phone, text, media), sendInterpret)
}

// sendInterpret turns an HTTP answer into Interakt's message id or a classified *SendError.
func sendInterpret(status int, h http.Header, raw []byte) (string, error) {
	var r SendResponse
	jsonErr := json.Unmarshal(raw, &r)
	if status >= 200 && status < 300 {
		if jsonErr != nil {
			// A 2xx we cannot read: the message may well be on its way, so the outcome is unknown.
			return "", &SendError{HTTPStatus: status, Code: "bad_response",
				Text: "unreadable success response: " + sendapi.Snippet(raw), Temporary: true, Ambiguous: true}
		}
		if !r.Result {
			return "", sendRefused(status, r.Message)
		}
		return r.ID, nil
	}
	text := r.Message
	if jsonErr != nil || text == "" {
		text = sendapi.Snippet(raw)
	}
	e := &SendError{HTTPStatus: status, Code: fmt.Sprintf("http_%d", status), Text: text}
	switch {
	case status == http.StatusTooManyRequests:
		e.Temporary, e.Wait = true, SendRetryAfter(h.Get("Retry-After"), time.Now())
	case status == http.StatusRequestTimeout:
		e.Temporary = true
	case status == http.StatusGatewayTimeout:
		// A proxy gave up waiting for Interakt, which may have accepted the message.
		e.Temporary, e.Ambiguous = true, true
	case status >= 500:
		e.Temporary, e.Wait = true, SendRetryAfter(h.Get("Retry-After"), time.Now())
	case status == http.StatusBadRequest && sendIsWindowError(text):
		e.Code = CodeWindowClosed
	}
	return "", e
}

// Codes chatwire gives Interakt refusals (Interakt answers with a message, not a code).
const (
	CodeRefused      = "refused"       // result:false
	CodeWindowClosed = "window_closed" // free-form text outside the 24-hour customer window
	CodeUnauthorized = "http_401"      // the API key was refused
)

// sendRefused classifies a result:false answer: Interakt processed the request and said no, so
// retrying the same request cannot help.
func sendRefused(status int, msg string) *SendError {
	code := CodeRefused
	if sendIsWindowError(msg) {
		code = CodeWindowClosed
	}
	if msg == "" {
		msg = "Interakt answered result:false"
	}
	return &SendError{HTTPStatus: status, Code: code, Text: msg}
}

// sendIsWindowError recognizes Interakt's refusal of free-form text outside the 24-hour window.
func sendIsWindowError(msg string) bool {
	m := strings.ToLower(msg)
	return strings.Contains(m, "24 hour") || strings.Contains(m, "24-hour") || strings.Contains(m, "24hr") ||
		strings.Contains(m, "customer service window") || strings.Contains(m, "session window") ||
		strings.Contains(m, "re-engagement") || strings.Contains(m, "outside the window")
}
