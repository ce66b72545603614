package interakt

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/chatwire/chatwire/pkg/event"
)

// SendPath is the path of Interakt's public message API.
const SendPath = "/v1/public/message/"

// sendMaxResponse bounds how much of a response body is read: Interakt answers a few hundred bytes.
const sendMaxResponse = 64 << 10

// Sender sends session messages (text, image, document, video, audio by URL) through Interakt's
// public message API. It is safe for concurrent use.
type Sender struct {
	url    string
	auth   string
	client *http.Client
}

// NewSender returns a Sender for the API at baseURL (https://api.interakt.ai) with the API key as
// the Interakt dashboard gives it (already base64; it is sent as "Authorization: Basic <key>").
// client's Timeout is a backstop; callers bound each send with a context.
func NewSender(baseURL, apiKey string, client *http.Client) *Sender {
	if client == nil {
		client = &http.Client{Timeout: 30 * time.Second}
	}
	auth := strings.TrimSpace(apiKey)
	if !strings.HasPrefix(strings.ToLower(auth), "basic ") {
		auth = "Basic " + auth
	}
	return &Sender{url: strings.TrimSuffix(baseURL, "/") + SendPath, auth: auth, client: client}
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
	r := SendRequest{FullPhoneNumber: sendPhone(phone), CallbackData: ref, Type: SendTypeText,
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

// sendPhone keeps the stored number's digits: a stored "+91 98765 43210" becomes "919876543210".
func sendPhone(p string) string {
	var b strings.Builder
	for _, r := range p {
		if r >= '0' && r <= '9' {
			b.WriteRune(r)
		}
	}
	return b.String()
}

// Send sends one reply to phone and returns Interakt's message id. ref (our message id) travels as
// callbackData so a delivery receipt can be matched even when this response is lost. Errors are
// *SendError.
func (s *Sender) Send(ctx context.Context, ref, phone, text string, media *event.Media) (string, error) {
	body, err := json.Marshal(NewSendRequest(ref, phone, text, media))
	if err != nil {
		return "", &SendError{Code: "encode", Text: err.Error(), Err: err}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.url, bytes.NewReader(body))
	if err != nil {
		return "", &SendError{Code: "request", Text: err.Error(), Err: err}
	}
	req.Header.Set("Authorization", s.auth)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	resp, err := s.client.Do(req)
	if err != nil {
		return "", sendNetworkError(err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, sendMaxResponse))
	if err != nil {
		// The request was answered but the body was cut: Interakt may have accepted it.
		return "", &SendError{HTTPStatus: resp.StatusCode, Code: "network", Text: "reading response: " + err.Error(),
			Temporary: true, Ambiguous: true, Err: err}
	}
	return sendInterpret(resp.StatusCode, resp.Header, raw)
}

// sendInterpret turns an HTTP answer into Interakt's message id or a classified *SendError.
func sendInterpret(status int, h http.Header, raw []byte) (string, error) {
	var r SendResponse
	jsonErr := json.Unmarshal(raw, &r)
	if status >= 200 && status < 300 {
		if jsonErr != nil {
			// A 2xx we cannot read: the message may well be on its way, so the outcome is unknown.
			return "", &SendError{HTTPStatus: status, Code: "bad_response",
				Text: "unreadable success response: " + sendSnippet(raw), Temporary: true, Ambiguous: true}
		}
		if !r.Result {
			return "", sendRefused(status, r.Message)
		}
		return r.ID, nil
	}
	text := r.Message
	if jsonErr != nil || text == "" {
		text = sendSnippet(raw)
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

func sendSnippet(raw []byte) string {
	s := strings.TrimSpace(string(raw))
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	if s == "" {
		s = "(empty body)"
	}
	return s
}

// sendNetworkError classifies a failed round trip. A dial failure never reached Interakt; any other
// failure (timeout, reset, EOF) may have happened after Interakt accepted the message.
func sendNetworkError(err error) *SendError {
	e := &SendError{Code: "network", Text: err.Error(), Temporary: true, Err: err}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) || sendIsTimeout(err) {
		e.Code = "timeout"
	}
	e.Ambiguous = !sendIsDialError(err)
	return e
}
